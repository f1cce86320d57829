"""Detection metrics: one-to-one matching, pooling, peaks, threshold sweeps."""

import numpy as np
import pytest
import torch

from sparsecode.metrics.detection import (
    detection_scores,
    find_peaks,
    match_detections,
    threshold_sweep,
)


def test_perfect_shifted_and_distant_predictions():
    true = np.array([[10.0, 10.0], [30.0, 40.0]])
    s = match_detections(true, true, 2)
    assert (s["precision"], s["recall"], s["f1"]) == (1.0, 1.0, 1.0)
    s = match_detections(true + [1.5, 1.0], true, 2)  # 1.8 px away: matched
    assert s["tp"] == 2 and s["fp"] == 0
    s = match_detections(true + [3.0, 0.0], true, 2)  # 3 px away: not matched
    assert (s["tp"], s["fp"], s["fn"], s["f1"]) == (0, 2, 2, 0.0)


def test_matching_is_one_to_one():
    s = match_detections([[0, 0], [0, 1], [1, 0]], [[0, 0]], 3)
    assert (s["tp"], s["fp"], s["fn"]) == (1, 2, 0)
    assert s["precision"] == pytest.approx(1 / 3) and s["recall"] == 1.0
    assert s["f1"] == pytest.approx(0.5)


def test_hungarian_finds_more_pairs_than_greedy_nearest():
    # greedy nearest-first takes A-T1 (1.4 px) and leaves B without a partner;
    # the maximum matching pairs A-T2 and B-T1
    pred = [[0.0, 1.4], [0.0, -1.9]]
    true = [[0.0, 0.0], [0.0, 3.0]]
    assert match_detections(pred, true, 2.0)["tp"] == 2


def test_empty_sets():
    both = match_detections([], [], 2)
    assert (both["precision"], both["recall"], both["f1"]) == (1.0, 1.0, 1.0)
    miss = match_detections(np.empty((0, 2)), [[1, 1]], 2)
    assert (miss["precision"], miss["recall"], miss["f1"], miss["fn"]) == (
        0.0, 0.0, 0.0, 1)
    extra = match_detections([[1, 1]], [], 2)
    assert (extra["f1"], extra["fp"]) == (0.0, 1)


def test_scores_pool_counts_over_images():
    preds = [[[0, 0], [9, 9]], [], [[5, 5]]]
    trues = [[[0, 1]], [[3, 3]], [[5, 5]]]
    s = detection_scores(preds, trues, radius=2)
    assert (s["tp"], s["fp"], s["fn"]) == (2, 1, 1)
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    per = [match_detections(p, t, 2)["f1"] for p, t in zip(preds, trues, strict=True)]
    assert s["f1_mean"] == pytest.approx(np.mean(per))
    assert detection_scores([], [], 1)["f1"] == 1.0


def test_tensors_are_accepted():
    t = torch.tensor([[1.0, 2.0], [5.0, 5.0]])
    assert match_detections(t, t.numpy(), 1)["tp"] == 2


@pytest.mark.parametrize("pred, true, radius, match", [
    ([[0, 0, 0]], [[0, 0]], 1, "pred"),
    ([[0, 0]], [[np.nan, 0]], 1, "NaN"),
    ([[0, 0]], [[0, 0]], 0, "radius"),
    ([[0, 0]], [[0, 0]], "2", "radius"),
])
def test_bad_match_input(pred, true, radius, match):
    with pytest.raises(ValueError, match=match):
        match_detections(pred, true, radius)


def test_bad_pooled_input():
    with pytest.raises(ValueError, match="as many images"):
        detection_scores([[[0, 0]]], [], 1)


def _maps():
    m = np.zeros((2, 20, 20))
    m[0, 5, 5], m[0, 5, 7], m[0, 15, 15] = 1.0, 0.9, 0.3
    m[1, 10, 10] = 0.6
    return m


def test_find_peaks_threshold_and_min_distance():
    m = _maps()
    peaks = find_peaks(m, min_distance=3, threshold=0.2)
    assert sorted(map(tuple, peaks[0])) == [(5, 5), (15, 15)]  # (5, 7) suppressed
    assert [tuple(p) for p in peaks[1]] == [(10, 10)]
    close = find_peaks(m, min_distance=1, threshold=0.5)
    assert sorted(map(tuple, close[0])) == [(5, 5), (5, 7)]
    assert len(find_peaks(m, min_distance=1, threshold=2.0)[0]) == 0
    with pytest.raises(ValueError, match="maps"):
        find_peaks(m[0], min_distance=2, threshold=0.1)
    with pytest.raises(ValueError, match="min_distance"):
        find_peaks(m, min_distance=0, threshold=0.1)


def test_threshold_sweep_picks_the_best_f1():
    m = _maps()
    trues = [np.array([[5, 5], [15, 15]]), np.array([[10, 10]])]
    ths = [0.1, 0.4, 0.7, 0.95]
    best, rows = threshold_sweep(
        lambda t: find_peaks(m, min_distance=1, threshold=t), trues, ths, 1.5)
    assert [r["threshold"] for r in rows] == ths
    f1 = [r["f1"] for r in rows]
    assert best == ths[int(np.argmax(f1))] == 0.1  # (5, 7) is the only false one
    assert f1[0] == pytest.approx(6 / 7) and f1[-1] < f1[0]
    with pytest.raises(ValueError, match="thresholds"):
        threshold_sweep(lambda t: [[], []], trues, [], 1)
    with pytest.raises(TypeError, match="callable"):
        threshold_sweep(None, trues, [0.1], 1)
