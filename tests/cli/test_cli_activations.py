"""``sparsecode extract`` (also ``--mlp-pair``) then ``sparsecode fit`` on MiniLM."""

import numpy as np
import pytest
import torch

from sparsecode import load
from sparsecode.cli import main
from sparsecode.data.activations import load_minilm, mlp_pair_modules
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
    # the dictionary estimator obeys --max-iter too, and says what it does
    dl_dir = tmp_path / "dl"
    assert main(["fit", "--store", str(store_dir), "--estimator", "dl",
                 "--n-components", "32", "--max-iter", "1", "--batch-size", "64",
                 "--out", str(dl_dir), "--device", "cpu"]) == 0
    dl = load(dl_dir)
    assert dl.max_iter == 1 and dl.n_iter_ <= 1 and capsys.readouterr().out


def _texts_file(tmp_path):
    path = tmp_path / "pair_texts.txt"
    path.write_text("\n".join([
        "A transcoder predicts the output of an MLP from its input.",
        "The attention block writes the input the MLP reads.",
    ] * 3), encoding="utf-8")
    return path


def test_extract_mlp_pair_writes_both_modules_in_the_same_rows(tmp_path):
    src, dst = mlp_pair_modules(1)
    store_dir = tmp_path / "pairs"
    assert main(["extract", "--texts", str(_texts_file(tmp_path)), "--out",
                 str(store_dir), "--mlp-pair", "1", "--modules",
                 "encoder.layer.1.intermediate"]) == 0
    store = ActivationStore(store_dir)
    assert store.modules == ["encoder.layer.1.intermediate", src, dst]
    assert store.dim(src) == store.dim(dst) == 384 and store.n_tokens > 50
    # the stored MLP output is the MLP applied to the stored MLP input, row by row
    block = load_minilm()[0].encoder.layer[1]
    with torch.inference_mode():
        mlp = block.output.dense(block.intermediate(torch.as_tensor(
            np.asarray(store.load(src)))))
    np.testing.assert_allclose(mlp.numpy(), store.load(dst), atol=1e-4)
    alone = tmp_path / "alone"
    assert main(["extract", "--texts", str(_texts_file(tmp_path)), "--out",
                 str(alone), "--mlp-pair", "1", "--max-tokens", "20"]) == 0
    assert ActivationStore(alone).modules == [src, dst]


def test_extract_bad_mlp_pair_exits_with_a_clear_error(tmp_path, capsys):
    for bad, reason in (("6", "the model has 6 layers"), ("-1", ">= 0")):
        out = tmp_path / f"bad{bad}"
        with pytest.raises(SystemExit) as exc:
            main(["extract", "--texts", str(_texts_file(tmp_path)), "--out",
                  str(out), "--mlp-pair", bad])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"--mlp-pair {bad}" in err and reason in err
        assert not out.exists()
