"""
Recovering features from superposition with a sparse autoencoder
================================================================

Sharkey et al. (2022)'s toy setting: 64 true unit features in 32 dimensions,
a few active per sample. A TopK SAE with as many latents as true features
recovers them; the mean max cosine similarity (MMCS) to the truth measures it.
"""

import os

from sparsecode import SparseAutoencoder
from sparsecode.data.toy import make_superposition
from sparsecode.metrics import fvu, mmcs

QUICK = not os.environ.get("SPARSECODE_EXAMPLES_FULL")
X, truth = make_superposition(10_000 if QUICK else 50_000, 32, 64, mean_active=3,
                              random_state=0)

# %%
# Train and compare the learned atoms with the true features.
sae = SparseAutoencoder(64, k=3, max_iter=20 if QUICK else 50, random_state=0,
                        device="cpu").fit(X)
print(f"MMCS to the true features: {mmcs(truth, sae.components_):.3f}")
print(f"FVU: {fvu(X, sae.inverse_transform(sae.transform(X))):.3f}")
