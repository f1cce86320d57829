"""Splicing: run a model with a module's output replaced, sentence embeddings.

:func:`similarity_recovered` splices a reconstruction (for example an SAE's)
back into the model and measures how much of the sentence embedding survives.
The small forward-hook helpers here are shared with
:mod:`sparsecode.data.activations`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["run_with_replacement", "sentence_embeddings", "similarity_recovered"]


# ------------------------------------------------------------------ hook helpers
def _first(output):
    """The activation tensor of a module output (element 0 of a tuple)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and isinstance(output[0], torch.Tensor):
        return output[0]
    raise TypeError(f"cannot find an activation tensor in a {type(output)} output.")


def _with_first(output, new):
    """`output` with its activation tensor replaced by `new`."""
    if isinstance(output, torch.Tensor):
        return new
    return type(output)([new, *output[1:]])


def _get_module(model, name: str) -> torch.nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError as exc:
        raise ValueError(f"model has no submodule {name!r}.") from exc


@contextlib.contextmanager
def _eval_mode(model):
    training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(training)


def _model_device(model, device) -> torch.device:
    if device is not None:
        model.to(device)
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


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


def _replace_hook(replace_fn, state):
    def hook(module, args, output):
        acts, mask = _first(output), state["mask"]
        if tuple(acts.shape[:2]) != tuple(mask.shape):
            raise ValueError(f"module output {tuple(acts.shape)} is not per token.")
        new = acts.clone()
        replaced = replace_fn(acts[mask])
        new[mask] = torch.as_tensor(replaced, dtype=acts.dtype, device=acts.device)
        return _with_first(output, new)

    return hook


def run_with_replacement(
    model: torch.nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    module: str | None,
    replace_fn: Callable[[torch.Tensor], Any] | None,
    *,
    batch_size: int = 32,
    max_length: int = 128,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Sentence embeddings with the output of `module` replaced by `replace_fn`.

    The hook passes the ``(n_tokens, dim)`` activations of the non-padding
    tokens (special tokens included) to `replace_fn` and writes its result
    back (element 0 of a tuple output); padding positions are left alone.
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
        Maps a ``(n_tokens, dim)`` tensor to an array-like of the same shape.
    batch_size : int, default=32
    max_length : int, default=128
    device : str or torch.device, optional
        If given, the model is moved there.

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)
        Unit-norm sentence embeddings.
    """
    device = _model_device(model, device)
    state: dict[str, torch.Tensor] = {}
    handle = None
    if replace_fn is not None:
        hook = _replace_hook(replace_fn, state)
        handle = _get_module(model, module).register_forward_hook(hook)
    out = []
    try:
        with _eval_mode(model), torch.inference_mode():
            for enc in _encode_batches(
                tokenizer, texts, batch_size, max_length, device
            ):
                state["mask"] = enc["attention_mask"].bool()
                hidden = model(**enc).last_hidden_state
                out.append(_mean_pool(hidden, enc["attention_mask"]).float().cpu())
    finally:
        if handle is not None:
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

    Returns
    -------
    numpy.ndarray of shape (n_texts, hidden_size)
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

    Parameters
    ----------
    model, tokenizer
        A Hugging Face encoder and its tokenizer.
    texts : sequence of str
    module : str
        Dotted submodule name, e.g. ``"encoder.layer.3"``.
    reconstruct_fn : callable
        Maps ``(n_tokens, dim)`` activations to their reconstruction.
    batch_size, max_length, device
        See :func:`run_with_replacement`.

    Returns
    -------
    dict
        ``cos_reconstruction``, ``cos_zero_ablation``, ``cos_mean_ablation``,
        ``fraction_recovered``, ``fraction_recovered_mean`` (floats).
    """
    kw = {"batch_size": batch_size, "max_length": max_length, "device": device}
    clean = sentence_embeddings(model, tokenizer, texts, **kw)
    mean = _mean_activation(
        model, tokenizer, texts, module, batch_size, max_length, device
    )

    def cos(replace_fn) -> float:
        spliced = run_with_replacement(
            model, tokenizer, texts, module, replace_fn, **kw
        )
        return float(np.mean(np.sum(clean * spliced, axis=1)))

    result = {
        "cos_reconstruction": cos(reconstruct_fn),
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
