"""Top-activating token contexts of a latent, and the static HTML feature report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from .._utils import atomic_write
from ..data.store import META_KEYS, ActivationStore
from ._html import CSS, feature_html
from ._stats import FeatureStats, _codes_at, _gather, _source, feature_stats

__all__ = ["html_report", "top_contexts"]


# -------------------------------------------------------------------- contexts
def _token_strings(tokenizer: Any, ids: np.ndarray) -> dict[int, str]:
    """Token id -> string (``convert_ids_to_tokens``, else ``decode``)."""
    ids = [int(i) for i in ids]
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        strings = tokenizer.convert_ids_to_tokens(ids)
    else:
        strings = [tokenizer.decode([i]) for i in ids]
    return {i: str(t) for i, t in zip(ids, strings, strict=True)}


def _context_arrays(codes, store, tokenizer, stats, window, module) -> dict:
    """Vectorised context windows of all top rows of `stats`, shape (L, n, W)."""
    centre = stats.top_rows  # (L, n), -1 padded
    off = np.arange(-window, window + 1)
    ctx = np.clip(centre[:, :, None] + off, 0, store.n_tokens - 1)
    uniq, inv = np.unique(ctx, return_inverse=True)
    inv = inv.reshape(ctx.shape)
    meta = {k: _gather(store, k, uniq).long().numpy()[inv] for k in META_KEYS}
    doc, win = meta["doc_ids"], meta["window_ids"]
    mid = slice(window, window + 1)
    same = (doc == doc[:, :, mid]) & (win == win[:, :, mid])
    same &= ctx - centre[:, :, None] == off  # not clipped at the store's ends
    acts = _codes_at(codes, store, module, uniq, stats.latents)  # (U, L)
    meta["acts"] = acts[inv, np.arange(len(centre))[:, None, None]]
    meta["tokens"] = _token_strings(tokenizer, np.unique(meta["token_ids"]))
    meta["same"] = same
    return meta


def _context_dict(arr: dict, stats: FeatureStats, i: int, j: int, w: int) -> dict:
    """Format example `j` of latent number `i` (a few tokens: a Python loop)."""
    tokens = [arr["tokens"][t] for t in arr["token_ids"][i, j]]
    before, after = arr["same"][i, j, :w], arr["same"][i, j, w + 1 :]
    acts = arr["acts"][i, j]
    return {
        "latent": int(stats.latents[i]),
        "row": int(stats.top_rows[i, j]),
        "doc": int(arr["doc_ids"][i, j, w]),
        "window": int(arr["window_ids"][i, j, w]),
        "position": int(arr["positions"][i, j, w]),
        "token_id": int(arr["token_ids"][i, j, w]),
        "token": tokens[w],
        "activation": float(stats.top_values[i, j]),
        "before": [t for t, keep in zip(tokens[:w], before, strict=True) if keep],
        "after": [t for t, keep in zip(tokens[w + 1 :], after, strict=True) if keep],
        "before_activations": acts[:w][before].tolist(),
        "after_activations": acts[w + 1 :][after].tolist(),
    }


def _check_window(window: int) -> None:
    if int(window) < 0:
        raise ValueError(f"window must be >= 0, got {window}.")


def _contexts(codes, store, tokenizer, stats, window, module) -> list[list[dict]]:
    """Context dicts of the top rows of every latent of `stats`."""
    if len(stats.latents) == 0:
        return []
    arr = _context_arrays(codes, store, tokenizer, stats, window, module)
    return [
        [
            _context_dict(arr, stats, i, j, window)
            for j in np.flatnonzero(stats.top_rows[i] >= 0)
        ]
        for i in range(len(stats.latents))
    ]


def top_contexts(
    codes: Any,
    store: ActivationStore,
    tokenizer: Any,
    latent: int,
    n: int = 10,
    window: int = 8,
    *,
    module: str | None = None,
    batch_size: int = 1024,
) -> list[dict]:
    """The `n` tokens on which `latent` is most active, with their contexts.

    Parameters
    ----------
    codes : array-like of shape (n_tokens, n_latents), or encoder
        See the module docstring.
    store : ActivationStore
    tokenizer : transformers tokenizer
        Maps token ids to strings (``convert_ids_to_tokens``, else ``decode``).
    latent : int
    n : int, default=10
    window : int, default=8
        Tokens shown on each side, within the same model input.
    module : str, optional
        Stored module to encode; needed only if the store holds several.
    batch_size : int, default=1024

    Returns
    -------
    list of dict
        By decreasing activation (fewer than `n` if the latent is rarely
        positive), each with ``latent``, ``row``, ``doc``, ``window``,
        ``position``, ``token_id``, ``token``, ``activation``, ``before`` and
        ``after`` (token strings) and ``before_activations`` /
        ``after_activations`` (the latent's codes on those tokens).

    Examples
    --------
    A store from :func:`~sparsecode.data.activations.extract_activations` (here
    with stand-ins for the model and tokenizer) and codes of its 9 token rows:

    >>> import tempfile, torch
    >>> from sparsecode.data.activations import extract_activations
    >>> class Toy(torch.nn.Module):  # stand-in model: "emb" embeds the token ids
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(99, 3)
    ...     def forward(self, input_ids, attention_mask): return self.emb(input_ids)
    >>> class Tok:  # stand-in tokenizer: [CLS] 1, letter -> code point, [SEP] 2
    ...     pad_token_id, all_special_ids = 0, [1, 2]
    ...     num_special_tokens_to_add = lambda self, pair: 2
    ...     def __call__(self, texts, **kw):
    ...         return {"input_ids": [[1, *map(ord, t.split()), 2] for t in texts]}
    ...     def convert_ids_to_tokens(self, ids):
    ...         return [chr(i) if i > 2 else "[S]" for i in ids]
    >>> store = extract_activations(Toy(), Tok(), ["A B C", "D E"], "emb",
    ...                             tempfile.mkdtemp(), split_long=False)
    >>> codes = np.zeros((len(store), 2)); codes[2, 0], codes[6, 0] = 5.0, 1.0  # B, D
    >>> ctx = top_contexts(codes, store, Tok(), latent=0, n=2, window=1)
    >>> [(c["token"], c["activation"], c["before"], c["after"]) for c in ctx]
    [('B', 5.0, ['A'], ['C']), ('D', 1.0, ['[S]'], ['E'])]
    """
    _check_window(window)
    codes = _source(codes)
    stats = feature_stats(
        codes, store, n=n, latents=[latent], module=module, batch_size=batch_size
    )
    return _contexts(codes, store, tokenizer, stats, int(window), module)[0]


# ------------------------------------------------------------------------ HTML
def html_report(
    codes: Any,
    store: ActivationStore,
    tokenizer: Any,
    path: str | Path,
    n_features: int = 50,
    n_examples: int = 10,
    order: str = "density",
    *,
    window: int = 8,
    module: str | None = None,
    batch_size: int = 1024,
    title: str = "sparsecode feature report",
) -> Path:
    """Write one self-contained static HTML page about the most active features.

    For each of the `n_features` latents with the highest density
    (``order="density"``) or maximum activation (``order="max"``), among those
    active at least once: density, max activation, an inline-SVG histogram of
    log2 |activation| and the top `n_examples` contexts, each token's background
    proportional to the latent's activation on it (relative to its maximum).
    Inline CSS, no script and no external resource; all text is escaped.

    Parameters
    ----------
    codes : array-like of shape (n_tokens, n_latents), or encoder
        See the module docstring.
    store : ActivationStore
    tokenizer : transformers tokenizer
    path : str or path-like
        HTML file to write.
    n_features : int, default=50
    n_examples : int, default=10
    order : {"density", "max"}, default="density"
    window : int, default=8
        Context tokens on each side.
    module : str, optional
        Stored module to encode; needed only if the store holds several.
    batch_size : int, default=1024
    title : str, default="sparsecode feature report"

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    A store from :func:`~sparsecode.data.activations.extract_activations` (here
    with stand-ins for the model and tokenizer) and codes of its 9 token rows:

    >>> import tempfile, torch
    >>> from sparsecode.data.activations import extract_activations
    >>> class Toy(torch.nn.Module):  # stand-in model: "emb" embeds the token ids
    ...     def __init__(self): super().__init__(); self.emb = torch.nn.Embedding(99, 3)
    ...     def forward(self, input_ids, attention_mask): return self.emb(input_ids)
    >>> class Tok:  # stand-in tokenizer: [CLS] 1, letter -> code point, [SEP] 2
    ...     pad_token_id, all_special_ids = 0, [1, 2]
    ...     num_special_tokens_to_add = lambda self, pair: 2
    ...     def __call__(self, texts, **kw):
    ...         return {"input_ids": [[1, *map(ord, t.split()), 2] for t in texts]}
    ...     def convert_ids_to_tokens(self, ids):
    ...         return [chr(i) if i > 2 else "[S]" for i in ids]
    >>> store = extract_activations(Toy(), Tok(), ["A B C", "D E"], "emb",
    ...                             tempfile.mkdtemp(), split_long=False)
    >>> codes = np.zeros((len(store), 2)); codes[2, 0], codes[6, 0] = 5.0, 1.0  # B, D
    >>> path = html_report(codes, store, Tok(), tempfile.mkdtemp() + "/report.html")
    >>> path.name, "<h1>sparsecode feature report</h1>" in path.read_text()
    ('report.html', True)
    """
    if order not in ("density", "max"):
        raise ValueError(f"order must be 'density' or 'max', got {order!r}.")
    _check_window(window)
    codes = _source(codes)
    stats = feature_stats(
        codes, store, n=n_examples, module=module, batch_size=batch_size
    )
    key = stats.density if order == "density" else stats.max_activation
    alive = np.flatnonzero(stats.density > 0)
    chosen = alive[np.argsort(-key[alive], kind="stable")][: int(n_features)]
    shown = stats.select(chosen)
    contexts = _contexts(codes, store, tokenizer, shown, int(window), module)
    cards = "".join(feature_html(shown, i, c) for i, c in enumerate(contexts))
    head = (
        f"{stats.n_tokens} tokens, {len(stats.latents)} latents, {len(alive)} "
        f"active; {len(chosen)} shown by {order}; store {store.path}"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(head)}</p>{cards}"
        "</body></html>\n"
    )
    path = Path(path)
    atomic_write(path, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return path
