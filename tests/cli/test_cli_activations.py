"""``sparsecode extract`` then ``sparsecode fit`` on MiniLM activations."""

import numpy as np

from sparsecode import load
from sparsecode.cli import main
from sparsecode.data.store import ActivationStore
from sparsecode.metrics import fvu


def test_extract_then_fit_round_trip(tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join([
        "Sparse dictionaries describe natural image patches well.",
        "The transformer reads a sentence and writes hidden states.",
        "Word vectors can be made sparse and interpretable.",
        "Each layer of the network refines the representation.",
    ] * 6), encoding="utf-8")
    store_dir, model_dir = tmp_path / "store", tmp_path / "model"
    assert main(["extract", "--texts", str(texts), "--out", str(store_dir),
                 "--modules", "encoder.layer.2"]) == 0
    store = ActivationStore(store_dir)
    assert store.modules == ["encoder.layer.2"] and store.dim("encoder.layer.2") == 384
    assert main(["fit", "--store", str(store_dir), "--estimator", "topk", "--k", "8",
                 "--n-components", "256", "--max-iter", "3", "--batch-size", "64",
                 "--out", str(model_dir), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    reported = float(out.split("held-out FVU ")[1].split()[0])
    est = load(model_dir)
    X = store.load("encoder.layer.2")
    held = X[int(0.9 * len(X)):]
    codes = np.asarray(est.transform(held))
    assert ((codes != 0).sum(1) <= 8).all()
    assert np.isclose(fvu(held, np.asarray(est.inverse_transform(codes))), reported,
                      atol=1e-3)
