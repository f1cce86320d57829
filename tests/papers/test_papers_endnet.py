"""EndNet reproduction (quick mode): unmixing of real spectra at 30 dB."""

from pathlib import Path

from sparsecode.papers import Report, endnet


def test_endnet_quick_recovers_endmembers_and_beats_nmf(tmp_path):
    report = endnet.run(quick=True, device="cpu", out_dir=tmp_path)
    assert isinstance(report, Report)
    rows = {r["method"]: r for r in report.table}
    assert set(rows) == {"UnmixingAutoencoder", "NMF", "ATGP (init)"}
    assert {r["snr_db"] for r in report.table} == {30.0}
    ae, nmf = rows["UnmixingAutoencoder"], rows["NMF"]
    assert ae["mean_sad_rad"] < 0.1, ae
    assert ae["mean_sad_rad"] < nmf["mean_sad_rad"]
    assert ae["mean_sad_rad"] < rows["ATGP (init)"]["mean_sad_rad"]  # training helps
    assert 0 <= ae["abundance_rmse"] < nmf["abundance_rmse"]
    for row in report.table:
        assert all(isinstance(v, float | int | str) for v in row.values())
    assert len(report.figures) == 1 and Path(report.figures[0]).stat().st_size > 0
    assert (tmp_path / "report.md").is_file()
    assert any("PyPI" in note for note in report.notes)

