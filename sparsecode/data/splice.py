"""Splicing: run a model with a module's output replaced, sentence embeddings.

:func:`similarity_recovered` splices a reconstruction (for example an SAE's)
back into the model and measures how much of the sentence embedding survives.
With ``source_module`` the replacement is computed from another module's
activations in the same forward pass: a transcoder's prediction of an MLP's
output from the MLP's input. The forward hooks themselves are in
:mod:`sparsecode.data._hooks`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ._hooks import _eval_mode, _model_device, _register_replacement

__all__ = ["run_with_replacement", "sentence_embeddings", "similarity_recovered"]


# -------------------------------------------------------------------- splicing
def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over non-padding tokens, then L2 normalisation (sentence-transformers)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    pooled = summed / weights.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def _encode_batches(tokenizer, texts, batch_size, max_length, device):
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            list(texts[start : start + batch_size]),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        yield {k: v.to(device) for k, v in enc.items()}


def run_with_replacement(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    module: str | None,
    replace_fn: Callable[[torch.Tensor], Any] | None,
    *,
    source_module: str | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Sentence embeddings with the output of `module` replaced by `replace_fn`.

    The hook passes the ``(n_tokens, dim)`` activations of the non-padding
    tokens (special tokens included) to `replace_fn` and writes its result
    back (element 0 of a tuple output); padding positions are left alone.
    With `source_module`, `replace_fn` receives instead the ``(n_tokens,
    source_dim)`` activations of `source_module` recorded earlier in the same
    forward pass (a transcoder: the MLP's output predicted from its input).
    Embeddings follow the all-MiniLM-L6-v2 recipe: mean of
    ``last_hidden_state`` over non-padding tokens, then L2 normalisation.
    Texts longer than `max_length` are truncated.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer (see :func:`load_minilm`).
    texts : sequence of str
    module : str or None
        Dotted submodule name; ``None`` (with ``replace_fn=None``) runs clean.
    replace_fn : callable or None
        Maps a ``(n_tokens, dim)`` tensor to an array-like of the shape of
        the output of `module` on those tokens.
    source_module : str, optional
        Dotted name of a submodule that runs before `module`; its output (one
        row per token) is what `replace_fn` maps. ``None``: `module`'s own.
    batch_size : int, default=32
    max_length : int, default=128
    device : str or torch.device, optional
        If given, the model is moved there.

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)
        Unit-norm sentence embeddings.

    Raises
    ------
    ValueError
        If a module is not a submodule of `model`, if an output is not one row
        per token, or if `source_module` has not run by the time `module` does.

    Examples
    --------
    With :func:`load_minilm`'s model and tokenizer, or these stand-ins:

    >>> from types import SimpleNamespace
    >>> class Toy(torch.nn.Module):  # stand-in encoder: its output is "emb"'s
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(8, 3)
    ...     def forward(self, input_ids, attention_mask):
    ...         return SimpleNamespace(last_hidden_state=self.emb(input_ids))
    >>> def tok(texts, **kw):  # stand-in tokenizer: two tokens (id 1) per text
    ...     ids = torch.ones(len(texts), 2, dtype=torch.long)
    ...     return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    >>> model = Toy()
    >>> flipped = run_with_replacement(model, tok, ["a b"], "emb", lambda a: -a)
    >>> np.allclose(flipped, -sentence_embeddings(model, tok, ["a b"]))
    True
    """
    if source_module is not None and (module is None or replace_fn is None):
        raise ValueError("source_module needs a module and a replace_fn.")
    device = _model_device(model, device)
    state: dict[str, Any] = {}
    handles = []
    out = []
    try:
        if replace_fn is not None:
            handles = _register_replacement(
                model, module, replace_fn, source_module, state
            )
        with _eval_mode(model), torch.inference_mode():
            for enc in _encode_batches(
                tokenizer, texts, batch_size, max_length, device
            ):
                state.pop("source", None)
                state["mask"] = enc["attention_mask"].bool()
                hidden = model(**enc).last_hidden_state
                out.append(_mean_pool(hidden, enc["attention_mask"]).float().cpu())
    finally:
        for handle in handles:
            handle.remove()
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def sentence_embeddings(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Unit-norm mean-pooled sentence embeddings (all-MiniLM-L6-v2 recipe).

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer (see :func:`load_minilm`).
    texts : sequence of str
    batch_size, max_length, device
        As in :func:`run_with_replacement`.

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)

    Examples
    --------
    With :func:`load_minilm`'s model and tokenizer, or these stand-ins:

    >>> from types import SimpleNamespace
    >>> class Toy(torch.nn.Module):  # stand-in encoder: its output is "emb"'s
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(8, 3)
    ...     def forward(self, input_ids, attention_mask):
    ...         return SimpleNamespace(last_hidden_state=self.emb(input_ids))
    >>> def tok(texts, **kw):  # stand-in tokenizer: two tokens (id 1) per text
    ...     ids = torch.ones(len(texts), 2, dtype=torch.long)
    ...     return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    >>> emb = sentence_embeddings(Toy(), tok, ["a b", "c d e"])
    >>> emb.shape, np.allclose(np.linalg.norm(emb, axis=1), 1)
    ((2, 3), True)
    """
    return run_with_replacement(
        model,
        tokenizer,
        texts,
        None,
        None,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
    )


def _mean_activation(model, tokenizer, texts, module, batch_size, max_length, device):
    """Mean of `module`'s output over all non-padding tokens of `texts`."""
    total = {"sum": 0.0, "count": 0}

    def accumulate(acts):
        total["sum"] = total["sum"] + acts.double().sum(dim=0)
        total["count"] += acts.shape[0]
        return acts

    run_with_replacement(
        model,
        tokenizer,
        texts,
        module,
        accumulate,
        batch_size=batch_size,
        max_length=max_length,
        device=device,
    )
    return total["sum"] / max(total["count"], 1)


def _fraction(cos_recon: float, cos_ablation: float) -> float:
    if cos_ablation >= 1.0:
        return float("nan")
    return (cos_recon - cos_ablation) / (1.0 - cos_ablation)


def similarity_recovered(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    module: str,
    reconstruct_fn: Callable[[torch.Tensor], Any],
    *,
    source_module: str | None = None,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """How much of the sentence embedding survives splicing in a reconstruction.

    The output of `module` on every non-padding token is replaced by (a) the
    reconstruction ``reconstruct_fn(acts)``, (b) zeros (zero ablation) and
    (c) the mean activation over all non-padding tokens of `texts` (mean
    ablation). For each, ``cos_*`` is the mean over texts of the cosine between
    the clean and the spliced sentence embedding
    (:func:`sentence_embeddings`). Then::

        fraction_recovered      = (cos_reconstruction - cos_zero_ablation)
                                  / (1 - cos_zero_ablation)
        fraction_recovered_mean = (cos_reconstruction - cos_mean_ablation)
                                  / (1 - cos_mean_ablation)

    1 means the reconstruction is as good as the clean activations, 0 as bad
    as the ablation (negative: worse). This is the sentence-embedding analogue
    of the "loss recovered" score used for SAEs on language models.

    With `source_module` (a transcoder), the reconstruction is computed from
    the activations of `source_module` in the same forward pass,
    ``reconstruct_fn(source_acts)``, e.g. the MLP's output predicted from the
    MLP's input (see :func:`~sparsecode.data.activations.mlp_pair_modules`);
    the zero and mean ablations are still those of `module`.

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer.
    texts : sequence of str
    module : str
        Dotted submodule name, e.g. ``"encoder.layer.3"``.
    reconstruct_fn : callable
        Maps ``(n_tokens, dim)`` activations (of `module`, or of
        `source_module` if given) to the reconstruction of `module`'s output,
        e.g. an SAE's ``lambda a: sae.inverse_transform(sae.transform(a))`` or a
        transcoder's ``predict``.
    source_module : str, optional
        Dotted name of the submodule whose output `reconstruct_fn` maps; it
        must run before `module` and give one row per token. ``None``: the
        output of `module` itself.
    batch_size, max_length, device
        See :func:`run_with_replacement`.

    Returns
    -------
    dict
        ``cos_reconstruction``, ``cos_zero_ablation``, ``cos_mean_ablation``,
        ``fraction_recovered``, ``fraction_recovered_mean`` (floats).

    Raises
    ------
    ValueError
        If `source_module` is not a submodule, does not give one row per token
        or runs after `module` (see :func:`run_with_replacement`).

    Examples
    --------
    Splice the exact MLP of layer 2 back in, computed from the MLP's input
    (a perfect transcoder recovers everything):

    >>> from sparsecode.data.activations import load_minilm, mlp_pair_modules
    >>> model, tokenizer = load_minilm()
    >>> src, dst = mlp_pair_modules(2, model)
    >>> block = model.encoder.layer[2]
    >>> def mlp(x):
    ...     return block.output.dense(block.intermediate(x))
    >>> texts = ["Sparse codes of an MLP.", "The fox jumps over the dog."]
    >>> score = similarity_recovered(model, tokenizer, texts, dst, mlp,
    ...                              source_module=src)
    >>> round(score["fraction_recovered"], 4)
    1.0

    A fitted transcoder is scored the same way:

    >>> similarity_recovered(model, tokenizer, texts, dst, transcoder.predict,
    ...                      source_module=src)  # doctest: +SKIP
    """
    kw = {"batch_size": batch_size, "max_length": max_length, "device": device}
    # the reconstruction first: a bad source_module fails before the other runs
    spliced = run_with_replacement(
        model, tokenizer, texts, module, reconstruct_fn,
        source_module=source_module, **kw,
    )
    clean = sentence_embeddings(model, tokenizer, texts, **kw)
    mean = _mean_activation(
        model, tokenizer, texts, module, batch_size, max_length, device
    )

    def cos(replace_fn) -> float:
        out = run_with_replacement(model, tokenizer, texts, module, replace_fn, **kw)
        return float(np.mean(np.sum(clean * out, axis=1)))

    result = {
        "cos_reconstruction": float(np.mean(np.sum(clean * spliced, axis=1))),
        "cos_zero_ablation": cos(torch.zeros_like),
        "cos_mean_ablation": cos(lambda a: mean.to(a).expand_as(a)),
    }
    result["fraction_recovered"] = _fraction(
        result["cos_reconstruction"], result["cos_zero_ablation"]
    )
    result["fraction_recovered_mean"] = _fraction(
        result["cos_reconstruction"], result["cos_mean_ablation"]
    )
    return result
