"""Nucleus detection reproduction (quick mode) and its detection figure."""

import numpy as np
import pytest

from sparsecode.papers import Report, nucleus
from sparsecode.viz.detections import plot_detections

_PNG = b"\x89PNG"


def test_nucleus_quick_scores_methods_and_writes_figures(tmp_path):
    report = nucleus.run(quick=True, device="cpu", out_dir=tmp_path)
    assert isinstance(report, Report)
    rows = {r["method"].split(" ")[0]: r for r in report.table}
    assert set(rows) == {"conv.", "blob_log", "peak_local_max"}
    for r in report.table:
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        p, q = r["precision"], r["recall"]
        assert r["f1"] == pytest.approx(0 if p + q == 0 else 2 * p * q / (p + q))
        assert r["time_s"] >= 0 and np.isfinite(r["threshold"])
    ours, blob = rows["conv."], rows["blob_log"]
    # the baseline works on the generated images, and ours detects nuclei
    assert blob["f1"] > 0.7, blob
    assert ours["f1"] > 0.25, ours
    # issue 14: above blob_log at its best threshold, or the note says why not
    assert ours["f1"] > blob["f1"] or any(
        "below blob_log" in n for n in report.notes)
    assert len(report.figures) == 3
    for path in report.figures:
        assert path.startswith(str(tmp_path))
        with open(path, "rb") as fh:
            assert fh.read(4) == _PNG
    md = report.to_markdown()
    assert "Reported in the paper" in md and "f1" in md


def test_plot_detections_writes_a_png_and_checks_input(tmp_path):
    img = np.random.default_rng(0).uniform(size=(20, 30, 3))
    out = plot_detections(img, [[3, 4]], tmp_path / "sub" / "d.png",
                          true_centres=np.empty((0, 2)), title="t")
    assert out.read_bytes()[:4] == _PNG
    grey = plot_detections(img[..., 0], [], tmp_path / "g.png")
    assert grey.stat().st_size > 0
    with pytest.raises(ValueError, match="image"):
        plot_detections(np.zeros((4, 4, 2)), [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="centres"):
        plot_detections(img, [[1, 2, 3]], tmp_path / "x.png")
