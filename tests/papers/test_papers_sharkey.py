"""Sharkey et al. 2022 toy reproduction (quick mode)."""

import math

from sparsecode.papers import Report, sharkey2022


def test_sharkey_quick_reproduces_the_qualitative_finding():
    report = sharkey2022.run(quick=True, device="cpu")
    assert isinstance(report, Report)
    rows = report.table
    assert {r["dict_ratio"] for r in rows} == {1, 2, 4}
    best = max(r["mmcs_truth"] for r in rows)
    assert best >= 0.9, best  # the right penalty recovers the truth
    # a too-small penalty is worse than the best one at the same size
    for ratio in (2, 4):
        sub = {r["alpha_x"]: r["mmcs_truth"] for r in rows if r["dict_ratio"] == ratio}
        assert sub[0.1] < max(sub.values())
    # cross-size agreement is computed for every size after the first
    assert all(math.isnan(r["mmcs_vs_smaller"]) == (r["dict_ratio"] == 1)
               for r in rows)
    md = report.to_markdown()
    assert "mmcs_truth" in md and "Reported in the paper" in md
