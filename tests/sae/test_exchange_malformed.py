"""Malformed SAELens and sparsify files: each raises ValueError naming the
file and the problem (FileNotFoundError for a missing file), never a raw
SafetensorError, KeyError, TypeError or AttributeError."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sparsecode.io import load_saelens, load_sparsify

D, M = 6, 10


def _weights(kind):
    g = torch.Generator().manual_seed(0)
    if kind == "saelens":
        return {"W_enc": torch.randn(D, M, generator=g), "b_enc": torch.randn(M),
                "W_dec": torch.randn(M, D, generator=g), "b_dec": torch.randn(D)}
    return {"encoder.weight": torch.randn(M, D, generator=g),
            "encoder.bias": torch.randn(M), "W_dec": torch.randn(M, D, generator=g),
            "b_dec": torch.randn(D)}


_CFG = {"saelens": {"architecture": "topk", "d_in": D, "d_sae": M, "k": 3,
                    "metadata": {"sae_lens_version": "6.0.0"}},
        "sparsify": {"activation": "topk", "num_latents": M, "k": 3, "d_in": D}}
_FILES = {"saelens": "sae_weights.safetensors", "sparsify": "sae.safetensors"}
_LOAD = {"saelens": load_saelens, "sparsify": load_sparsify}


def _write(path, kind, cfg=None, weights=None, raw_cfg=None, raw_weights=None):
    path.mkdir()
    wfile = path / _FILES[kind]
    if raw_weights is not None:
        wfile.write_bytes(raw_weights)
    else:
        save_file(weights if weights is not None else _weights(kind), str(wfile))
    text = raw_cfg if raw_cfg is not None else json.dumps(
        cfg if cfg is not None else _CFG[kind])
    (path / "cfg.json").write_text(text)
    return path


def _valid_bytes(kind, tmp_path):
    save_file(_weights(kind), str(tmp_path / "full.safetensors"))
    return (tmp_path / "full.safetensors").read_bytes()


def _with(kind, **changes):
    cfg = dict(_CFG[kind])
    for key, value in changes.items():
        if value is _DROP:
            cfg.pop(key)
        else:
            cfg[key] = value
    return cfg


_DROP = object()
_W = r"safetensors"


def _cases(kind):
    """(id, writer kwargs, file the message names, problem) for ``kind``."""
    w = _weights(kind)
    first = next(iter(w))
    size = {"saelens": "d_sae", "sparsify": "num_latents"}[kind]
    return [
        ("truncated", lambda b: {"raw_weights": b[: len(b) // 2]}, _W, "truncated"),
        ("not-safetensors", lambda b: {"raw_weights": b"PK\x03\x04 a zip file"}, _W,
         "not a readable safetensors"),
        ("empty-weights", lambda b: {"raw_weights": b""}, _W, "readable"),
        ("integer", lambda b: {"weights": {**w, first: w[first].to(torch.int32)}}, _W,
         "int32"),
        ("nan", lambda b: {"weights": {**w, first: w[first] * float("nan")}}, _W,
         "NaN"),
        ("inf", lambda b: {"weights": {**w, first: w[first] + float("inf")}}, _W,
         "infinite"),
        ("cfg-not-json", lambda b: {"raw_cfg": "{'d_in': 6,"}, r"cfg\.json",
         "not a valid JSON"),
        ("cfg-a-list", lambda b: {"raw_cfg": "[6, 10]"}, r"cfg\.json", "JSON object"),
        ("d_in-missing", lambda b: {"cfg": _with(kind, d_in=_DROP)}, r"cfg\.json",
         "lacks the key 'd_in'"),
        ("size-a-string", lambda b: {"cfg": _with(kind, **{size: "10"})},
         r"cfg\.json", f"'{size}' must be an integer"),
        ("d_in-a-float", lambda b: {"cfg": _with(kind, d_in=6.5)}, r"cfg\.json",
         "'d_in' must be an integer"),
        ("k-zero", lambda b: {"cfg": _with(kind, k=0)}, r"cfg\.json",
         "'k' must be an integer >= 1"),
        ("k-negative", lambda b: {"cfg": _with(kind, k=-2)}, r"cfg\.json", "'k'"),
        ("k-fractional", lambda b: {"cfg": _with(kind, k=2.5)}, r"cfg\.json", "'k'"),
        ("k-a-string", lambda b: {"cfg": _with(kind, k="3")}, r"cfg\.json", "'k'"),
        ("k-a-bool", lambda b: {"cfg": _with(kind, k=True)}, r"cfg\.json", "'k'"),
        ("k-too-large", lambda b: {"cfg": _with(kind, k=M + 1)}, r"cfg\.json",
         "k=11"),
        ("shape", lambda b: {"cfg": _with(kind, d_in=D + 1)}, _W, "shape"),
        ("missing-weight", lambda b: {"weights": dict(list(w.items())[1:])}, _W,
         f"lacks the weights \\['{first}'\\]"),
    ]


_SAELENS_ONLY = [
    ("topk-without-k", {"cfg": _with("saelens", k=_DROP)}, r"cfg\.json",
     "lacks the key 'k'"),
    ("metadata-a-list", {"cfg": _with("saelens", metadata=[1])}, r"cfg\.json",
     "'metadata' must be a JSON object"),
    ("architecture-a-number", {"cfg": _with("saelens", architecture=3)},
     r"cfg\.json", "'architecture' must be a string"),
    ("flag-a-string", {"cfg": _with("saelens", apply_b_dec_to_input="yes")},
     r"cfg\.json", "'apply_b_dec_to_input' must be true or false"),
    ("kwargs-a-list", {"cfg": _with("saelens", architecture=None,
                                    activation_fn_kwargs=[3])},
     r"cfg\.json", "activation_fn_kwargs"),
]


@pytest.mark.parametrize("kind", ["saelens", "sparsify"])
@pytest.mark.parametrize("case", [c[0] for c in _cases("saelens")])
def test_malformed_file_names_file_and_problem(tmp_path, kind, case):
    _, make, file, problem = next(c for c in _cases(kind) if c[0] == case)
    path = _write(tmp_path / "m", kind, **make(_valid_bytes(kind, tmp_path)))
    with pytest.raises(ValueError, match=rf"{file}.*{problem}"):
        _LOAD[kind](path)


@pytest.mark.parametrize("case, kwargs, file, problem", _SAELENS_ONLY,
                         ids=[c[0] for c in _SAELENS_ONLY])
def test_malformed_saelens_config(tmp_path, case, kwargs, file, problem):
    path = _write(tmp_path / "m", "saelens", **kwargs)
    with pytest.raises(ValueError, match=rf"{file}.*{problem}"):
        load_saelens(path)


@pytest.mark.parametrize("kind", ["saelens", "sparsify"])
def test_missing_files_raise_file_not_found(tmp_path, kind):
    path = _write(tmp_path / "m", kind)
    (path / _FILES[kind]).unlink()
    with pytest.raises(FileNotFoundError, match=_FILES[kind]):
        _LOAD[kind](path)
    (path / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match="cfg.json"):
        _LOAD[kind](path)


@pytest.mark.parametrize("kind", ["saelens", "sparsify"])
def test_the_valid_file_loads(tmp_path, kind):
    # (so every failure above comes from its one change)
    est = _LOAD[kind](_write(tmp_path / "m", kind))
    assert est.k == 3 and est.components_.shape == (M, D)
