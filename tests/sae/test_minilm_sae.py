"""A SAE on real MiniLM layer-3 residual activations: FVU < 0.25 at L0 <= 32."""

import numpy as np

from sparsecode import SparseAutoencoder
from sparsecode.data.activations import extract_activations, load_minilm
from sparsecode.data.text import load_default_corpus
from sparsecode.metrics import fvu, l0


def test_topk_sae_on_minilm_layer3_quick(tmp_path):
    model, tok = load_minilm()
    store = extract_activations(model, tok, load_default_corpus(),
                                ["encoder.layer.3"], tmp_path, max_tokens=45_000)
    X = np.array(store.load("encoder.layer.3"))
    X_train, X_test = X[:40_000], X[40_000:]  # held out: later documents
    sae = SparseAutoencoder(1536, activation="topk", k=32, random_state=0,
                            device="cpu").fit(X_train)
    codes = sae.transform(X_test)
    assert l0(codes) <= 32
    assert fvu(X_test, sae.inverse_transform(codes)) < 0.25
