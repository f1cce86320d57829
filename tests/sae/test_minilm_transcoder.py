"""A transcoder on real MiniLM MLP activations (input -> output of layer 2's MLP)."""

import numpy as np

from sparsecode import SparseAutoencoder, Transcoder
from sparsecode.data.activations import (
    extract_activations,
    load_minilm,
    mlp_pair_modules,
)
from sparsecode.data.splice import similarity_recovered
from sparsecode.data.text import load_default_corpus
from sparsecode.metrics import fvu, l0


def _affine(C, W):
    return np.hstack([C, np.ones((len(C), 1))]) @ W


def _least_squares(C, Y):
    """The least-squares affine map of codes to Y (minimum-norm solution)."""
    ones = np.ones((len(C), 1))
    return np.linalg.lstsq(np.hstack([C, ones]), Y.astype(np.float64), rcond=None)[0]


def test_transcoder_beats_sae_codes_mapped_to_the_mlp_output(tmp_path):
    model, tok = load_minilm()
    mlp_in, mlp_out = mlp_pair_modules(2, model)
    texts = load_default_corpus()
    store = extract_activations(model, tok, texts, [mlp_in, mlp_out], tmp_path,
                                max_tokens=10_000)
    X, Y = np.array(store.load(mlp_in)), np.array(store.load(mlp_out))
    n = 8000  # held out: the later documents
    kw = {"n_components": 768, "k": 8, "max_iter": 32, "random_state": 0,
          "device": "cpu"}
    tc = Transcoder(**kw).fit(X[:n], Y[:n])
    sae = SparseAutoencoder(**kw).fit(X[:n])
    assert 7.9 <= l0(tc.transform(X[n:])) <= 8 and 7.9 <= l0(sae.transform(X[n:])) <= 8
    err_tc = fvu(Y[n:], tc.predict(X[n:]))
    W = _least_squares(sae.transform(X[:n]), Y[:n])
    err_sae = fvu(Y[n:], _affine(sae.transform(X[n:]), W))
    assert err_tc < 0.09 and err_tc < err_sae - 0.01
    # spliced into the model in place of the MLP's output, computed from its
    # input, on later documents: the transcoder keeps more of the embedding
    kw = {"source_module": mlp_in, "max_length": 64}
    spliced_tc = similarity_recovered(model, tok, texts[-8:], mlp_out, tc.predict,
                                      **kw)
    spliced_sae = similarity_recovered(
        model, tok, texts[-8:], mlp_out,
        lambda x: _affine(sae.transform(x.numpy()), W).astype(np.float32), **kw)
    assert (spliced_tc["cos_reconstruction"]
            > spliced_sae["cos_reconstruction"] + 0.01)
