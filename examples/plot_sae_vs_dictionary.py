"""
Sparse autoencoders against classic dictionary learning
=======================================================

`sparsecode.compare` fits each family at several sparsity levels on one split
and evaluates all of them on the same held-out split: the FVU-L0 frontier, dead
and dense latents, and, on toy data whose features are known, MMCS.
"""

import os
from pathlib import Path

import sparsecode
from sparsecode.data.toy import make_superposition

QUICK = not os.environ.get("SPARSECODE_EXAMPLES_FULL")
OUT = Path(os.environ.get("SPARSECODE_EXAMPLES_OUT", "out/examples"))
X, truth = make_superposition(4000 if QUICK else 20_000, 32, 64, mean_active=4,
                              random_state=0)

# %%
# Every default family, one held-out split, a report and its figures.
res = sparsecode.compare(X, true_features=truth, center=False, device="cpu",
                         out_dir=OUT / "compare")
best = {}
for row in res.rows:
    best[row["family"]] = min(best.get(row["family"], 1.0), row["fvu"])
for family, value in best.items():
    print(f"best held-out FVU {family}: {value:.3f}")
print(f"report: {OUT / 'compare' / 'report.md'}")
