"""Chen et al. 2017 reproduction (quick mode): denoising SAE patch features."""

import pytest

from sparsecode.papers import Report, chen2017

FEATURES = ["denoising SAE patches", "SAE patches (no noise)", "PCA patches",
            "raw pixels", "PCA (same size)"]
CHANCE = {"digits": 0.1, "lfw_subset": 0.5}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("chen2017")
    return chen2017.run(quick=True, device="cpu", out_dir=out), out


def _rows(report):
    return {(r["dataset"], r["features"]): r for r in report.table}


def test_quick_run_returns_every_row_as_plain_values(report):
    report, _ = report
    assert isinstance(report, Report)
    rows = _rows(report)
    assert set(rows) == {(d, f) for d in CHANCE for f in FEATURES}
    for row in report.table:
        assert all(isinstance(v, (int, float, str)) for v in row.values())
        assert 0.0 <= row["cv_accuracy"] <= 1.0 and row["cv_std"] >= 0.0
    assert rows["digits", "raw pixels"]["n_features"] == 64
    assert rows["lfw_subset", "raw pixels"]["n_features"] == 625
    for d in CHANCE:
        sae = rows[d, "denoising SAE patches"]
        assert sae["n_features"] == 128 and sae["input_noise"] > 0
        assert rows[d, "SAE patches (no noise)"]["input_noise"] == 0
        assert rows[d, "PCA (same size)"]["n_features"] <= sae["n_features"]
        assert rows[d, "PCA patches"]["n_features"] == 4 * 25
    assert rows["digits", "raw pixels"]["n_images"] == 600  # quick subsample


def test_sae_features_beat_chance_and_reach_raw_pixels(report):
    rows = _rows(report[0])
    for d, chance in CHANCE.items():
        raw = rows[d, "raw pixels"]["cv_accuracy"]
        for f in FEATURES[:2]:
            acc = rows[d, f]["cv_accuracy"]
            # measured (quick): digits 0.945 / 0.958, lfw 0.975 / 0.985
            assert acc > chance + 0.35, (d, f, acc)
            # measured gaps to raw pixels: -0.007 .. +0.02
            assert acc >= raw - 0.04, (d, f, acc, raw)


def test_notes_say_where_noise_does_not_help(report):
    report, _ = report
    rows = _rows(report)
    for d in CHANCE:
        dn, plain = rows[d, FEATURES[0]], rows[d, FEATURES[1]]
        unclear = (dn["cv_accuracy"] - plain["cv_accuracy"]
                   <= max(dn["cv_std"], plain["cv_std"]))
        said = any(n.startswith(f"{d}: input noise does not clearly help")
                   for n in report.notes)
        assert said == unclear
        pca = rows[d, "PCA patches"]["cv_accuracy"]
        linear_wins = pca >= max(dn["cv_accuracy"], plain["cv_accuracy"])
        assert linear_wins == any(n.startswith(f"{d}: PCA patch codes")
                                  for n in report.notes)
    md = report.to_markdown()
    assert "cv_accuracy" in md and "Reported in the paper" in md


def test_figures_are_written_to_out_dir(report):
    report, out = report
    assert len(report.figures) == 2
    for path in report.figures:
        with open(path, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
        assert str(out) in path
    assert (out / "report.md").read_text().startswith("# Chen et al. 2017")
