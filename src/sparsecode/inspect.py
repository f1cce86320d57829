"""Feature inspection: top-activating token contexts, densities, an HTML report.

Codes are aligned row by row with the token rows of an
:class:`~sparsecode.data.store.ActivationStore`. They are given either as an
array (numpy, torch or anything ``numpy.asarray`` accepts) of shape
``(n_tokens, n_latents)``, or as an encoder (an object with ``.transform`` such
as a fitted estimator, or a callable ``encode(batch) -> codes``) applied to
``store.iter_batches(module, shuffle=False)``, so that the full code matrix is
never held in memory: one streaming pass keeps a running top-``n`` per latent
(merged with :func:`torch.topk`), the active counts and a histogram of the
activation magnitudes. An encoder must be row-wise (the code of a token depends
only on its activation) since the context rows are re-encoded on their own.

"Top-activating" means the largest positive values; rows where a latent is
``<= 0`` are never listed as its contexts (for signed codes, pass ``-codes`` or
``abs(codes)`` to see the other side). Equal activations at the cut-off are
broken arbitrarily; the listed ones are ordered by activation, then by row.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data.store import META_KEYS, ActivationStore, _to_numpy
from .metrics import feature_density as _metrics_density

__all__ = [
    "FeatureStats",
    "feature_density",
    "feature_stats",
    "html_report",
    "top_contexts",
]

#: Inner bin edges of the activation histogram, in log2 |activation|: two bins
#: per octave from 2**-16 to 2**16, the outermost bins catching the rest.
LOG2_EDGES = np.arange(-16.0, 16.25, 0.5)


# ----------------------------------------------------------------- code source
def _source(codes: Any) -> Any:
    """An encoding function, or the codes as a tensor, scipy sparse or numpy array.

    Arrays are never callable, so ``callable(_source(codes))`` tells them apart.
    """
    if isinstance(codes, torch.Tensor) or hasattr(codes, "tocsr"):
        return codes
    if not hasattr(codes, "__array__"):  # (pandas frames have a .transform too)
        if hasattr(codes, "transform"):
            return codes.transform
        if callable(codes):
            return codes
    return np.asarray(codes)


def _as_tensor(block: Any) -> torch.Tensor:
    """A 2-D floating CPU tensor from a block of codes."""
    if hasattr(block, "toarray"):  # scipy sparse
        block = block.toarray()
    if not isinstance(block, torch.Tensor):
        array = np.asarray(block)  # copy read-only blocks (memmap, pandas)
        block = torch.as_tensor(array if array.flags.writeable else array.copy())
    if block.dim() != 2:
        raise ValueError(f"codes must be 2-D, got shape {tuple(block.shape)}.")
    if not block.is_floating_point() or block.element_size() < 4:
        block = block.float()
    return block.detach().cpu()


def _module(store: ActivationStore, module: str | None) -> str:
    if module is not None:
        return module
    if len(store.modules) != 1:
        raise ValueError(f"the store holds {store.modules}; pass module=.")
    return store.modules[0]


def _code_batches(
    codes: Any, store: ActivationStore, module: str | None, batch_size: int
) -> Iterator[torch.Tensor]:
    """Blocks of codes in store row order (encoded on the fly for an encoder)."""
    if not callable(codes):
        shape = tuple(codes.shape)
        if len(shape) != 2 or shape[0] != store.n_tokens:
            raise ValueError(
                f"codes of shape {shape} do not match the store's "
                f"{store.n_tokens} token rows."
            )
        for start in range(0, shape[0], batch_size):
            yield _as_tensor(codes[start : start + batch_size])
        return
    batches = store.iter_batches(_module(store, module), batch_size, shuffle=False)
    for x in batches:
        block = _as_tensor(codes(x))
        if len(block) != len(x):
            raise ValueError(f"the encoder returned {len(block)} rows for {len(x)}.")
        yield block


def _gather(store: ActivationStore, key: str, rows: np.ndarray) -> torch.Tensor:
    """Rows `rows` (sorted, unique) of `key`, read shard by shard."""
    bounds = np.cumsum([0, *store.shard_sizes])
    shard = np.searchsorted(bounds, rows, side="right") - 1
    parts = []
    for s in np.unique(shard):
        local = rows[shard == s] - bounds[s]
        block = store.read(int(s), key, int(local[0]), int(local[-1]) + 1)
        parts.append(block[torch.as_tensor(local - local[0])])
    return torch.cat(parts)


def _codes_at(codes, store, module, rows, latents) -> np.ndarray:
    """Codes of `latents` at store rows `rows` (sorted, unique): (rows, latents)."""
    if callable(codes):
        block = _as_tensor(
            codes(_to_numpy(_gather(store, _module(store, module), rows)))
        )
    else:
        index = torch.as_tensor(rows) if isinstance(codes, torch.Tensor) else rows
        block = _as_tensor(codes[index])
    return block[:, torch.as_tensor(latents)].double().numpy()


# ------------------------------------------------------------------ statistics
def _active_counts(block: torch.Tensor) -> np.ndarray:
    """Nonzero count of each latent of a block (via the metrics' density)."""
    return np.rint(_metrics_density(block) * len(block))


def feature_density(
    codes: Any,
    store: ActivationStore | None = None,
    *,
    module: str | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Fraction of tokens on which each latent is nonzero.

    Parameters
    ----------
    codes : array-like of shape (n_tokens, n_latents), or encoder
        Codes, or an object with ``.transform`` / a callable mapping a batch of
        activations to codes (then `store` is required).
    store : ActivationStore, optional
        The store the codes belong to.
    module : str, optional
        Stored module to encode; needed only if the store holds several.
    batch_size : int, default=1024
        Rows encoded at a time.

    Returns
    -------
    numpy.ndarray of shape (n_latents,)
        :func:`sparsecode.metrics.feature_density` over all tokens.
    """
    codes = _source(codes)
    if not callable(codes):
        if store is not None and codes.shape[0] != store.n_tokens:
            raise ValueError(f"codes do not match the store's {store.n_tokens} rows.")
        return _metrics_density(codes)
    if store is None:
        raise ValueError("an encoder needs the store it encodes.")
    counts, n_rows = 0.0, 0
    for block in _code_batches(codes, store, module, batch_size):
        counts, n_rows = counts + _active_counts(block), n_rows + len(block)
    return counts / n_rows


@dataclass
class FeatureStats:
    """Per-latent statistics gathered in one pass over the codes.

    Attributes
    ----------
    n_tokens : int
    latents : numpy.ndarray of shape (n,)
        Latent indices described by the rows of the other arrays.
    density : numpy.ndarray of shape (n,)
        Fraction of tokens where the latent is nonzero.
    max_activation : numpy.ndarray of shape (n,)
    top_values, top_rows : numpy.ndarray of shape (n, n_top)
        Largest positive activations and their store rows, by decreasing
        activation; padded with ``-inf`` / ``-1``.
    hist : numpy.ndarray of shape (n, len(LOG2_EDGES) + 1)
        Counts of log2 |activation| of the active tokens (bins: LOG2_EDGES).
    """

    n_tokens: int
    latents: np.ndarray
    density: np.ndarray
    max_activation: np.ndarray
    top_values: np.ndarray
    top_rows: np.ndarray
    hist: np.ndarray

    def select(self, index: np.ndarray) -> FeatureStats:
        """The statistics of the latents at positions `index` of this object."""
        per_latent = [f.name for f in fields(self) if f.name != "n_tokens"]
        picked = {name: getattr(self, name)[index] for name in per_latent}
        return FeatureStats(n_tokens=self.n_tokens, **picked)


class _Accumulator:
    """Running counts, maxima, top-n and histograms over blocks of codes."""

    def __init__(self, n_latents: int, n_top: int, dtype: torch.dtype) -> None:
        self.n_top, self.dtype, self.n_rows = n_top, dtype, 0
        self.counts = np.zeros(n_latents)
        self.max = torch.full((n_latents,), -torch.inf, dtype=dtype)
        self.values = torch.full((n_latents, n_top), -torch.inf, dtype=dtype)
        self.rows = torch.full((n_latents, n_top), -1, dtype=torch.long)
        self.hist = torch.zeros((n_latents, len(LOG2_EDGES) + 1), dtype=torch.long)
        self._edges = torch.as_tensor(LOG2_EDGES)

    def update(self, block: torch.Tensor) -> None:
        block = block.to(self.dtype)
        self.counts += _active_counts(block)
        self.max = torch.maximum(self.max, block.amax(dim=0))
        active = torch.where(block > 0, block, -torch.inf)
        k = min(self.n_top, len(block))
        v_kF, i_kF = active.topk(k, dim=0)
        values = torch.cat([self.values, v_kF.T], dim=1)
        rows = torch.cat([self.rows, i_kF.T + self.n_rows], dim=1)
        self.values, pos = values.topk(self.n_top, dim=1)
        self.rows = rows.gather(1, pos)
        tok, lat = torch.nonzero(block, as_tuple=True)
        bins = torch.bucketize(block[tok, lat].abs().double().log2(), self._edges)
        flat = lat * self.hist.shape[1] + bins
        self.hist.view(-1).index_add_(0, flat, torch.ones_like(flat))
        self.n_rows += len(block)

    def finish(self, latents: np.ndarray) -> FeatureStats:
        values, rows = self.values.double().numpy(), self.rows.numpy()
        rows = np.where(np.isfinite(values), rows, -1)
        order = np.lexsort((np.where(rows < 0, np.inf, rows), -values), axis=-1)
        return FeatureStats(
            n_tokens=self.n_rows,
            latents=latents,
            density=self.counts / max(self.n_rows, 1),
            max_activation=self.max.double().numpy(),
            top_values=np.take_along_axis(values, order, axis=1),
            top_rows=np.take_along_axis(rows, order, axis=1),
            hist=self.hist.numpy(),
        )


def feature_stats(
    codes: Any,
    store: ActivationStore,
    *,
    n: int = 10,
    latents: Sequence[int] | None = None,
    module: str | None = None,
    batch_size: int = 1024,
) -> FeatureStats:
    """Density, max, top-`n` rows and activation histogram of every latent.

    Parameters
    ----------
    codes : array-like of shape (n_tokens, n_latents), or encoder
        See the module docstring.
    store : ActivationStore
    n : int, default=10
        Top-activating rows kept per latent.
    latents : sequence of int, optional
        Restrict to these latents (default: all).
    module : str, optional
        Stored module to encode; needed only if the store holds several.
    batch_size : int, default=1024
        Rows processed at a time (memory is ``O(batch_size * n_latents)``).

    Returns
    -------
    FeatureStats
    """
    if int(n) < 1 or int(batch_size) < 1:
        raise ValueError("n and batch_size must be >= 1.")
    codes = _source(codes)
    cols = None if latents is None else np.atleast_1d(np.asarray(latents, int))
    acc = None
    for block in _code_batches(codes, store, module, int(batch_size)):
        if cols is not None:
            if cols.min() < 0 or cols.max() >= block.shape[1]:
                raise ValueError(f"latents {cols} out of range [0, {block.shape[1]}).")
            block = block[:, torch.as_tensor(cols)]
        if acc is None:
            acc = _Accumulator(block.shape[1], int(n), block.dtype)
        acc.update(block)
    if acc is None or acc.n_rows != store.n_tokens:
        raise ValueError("the codes do not cover the store's token rows.")
    return acc.finish(np.arange(acc.counts.size) if cols is None else cols)


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
    """
    _check_window(window)
    codes = _source(codes)
    stats = feature_stats(
        codes, store, n=n, latents=[latent], module=module, batch_size=batch_size
    )
    return _contexts(codes, store, tokenizer, stats, int(window), module)[0]


# ------------------------------------------------------------------------ HTML
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.feature{border:1px solid #ccc;border-radius:6px;padding:.6em 1em;margin:1em 0}
.feature h2{font-size:1.1em;margin:.2em 0}.stats{color:#555}
ol{font-family:monospace;padding-left:1.5em}li{margin:.3em 0}
.t{padding:0 1px;margin:0 1px;border-radius:2px}
.c{outline:1px solid #a30;font-weight:bold}.v{color:#777;margin-right:.6em}"""


def _histogram_svg(counts: np.ndarray, width: int = 180, height: int = 40) -> str:
    """Inline SVG bar chart of the nonzero range of a log2 histogram."""
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return ""
    lo = nz[0]
    hi = min(max(nz[-1], lo + 7), len(counts) - 1)
    part = counts[lo : hi + 1] / counts.max()
    bar = width / len(part)
    rects = "".join(
        f'<rect x="{k * bar:.1f}" y="{height * (1 - h):.1f}" '
        f'width="{bar * 0.9:.1f}" height="{height * h:.1f}" fill="#c60"/>'
        for k, h in enumerate(part)
    )
    edges = np.concatenate([[-np.inf], LOG2_EDGES, [np.inf]])
    label = f"log2|activation| from {edges[lo]:g} to {edges[hi + 1]:g}"
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img"><title>{html.escape(label)}</title>{rects}</svg>'
        f'<div class="stats">{html.escape(label)}</div>'
    )


def _token_span(token: str, act: float, scale: float, centre: bool) -> str:
    alpha = min(max(act / scale, 0.0), 1.0) if scale > 0 else 0.0
    cls = "t c" if centre else "t"
    return (
        f'<span class="{cls}" style="background:rgba(255,102,0,{alpha:.2f})" '
        f'title="{act:.4g}">{html.escape(token)}</span>'
    )


def _example_html(ctx: dict, scale: float) -> str:
    spans = [
        _token_span(t, a, scale, False)
        for t, a in zip(ctx["before"], ctx["before_activations"], strict=True)
    ]
    spans.append(_token_span(ctx["token"], ctx["activation"], scale, True))
    spans += [
        _token_span(t, a, scale, False)
        for t, a in zip(ctx["after"], ctx["after_activations"], strict=True)
    ]
    where = f"doc {ctx['doc']}, window {ctx['window']}, position {ctx['position']}"
    return (
        f'<li><span class="v" title="{html.escape(where)}">'
        f"{ctx['activation']:.3g}</span>{' '.join(spans)}</li>"
    )


def _feature_html(stats: FeatureStats, i: int, contexts: list[dict]) -> str:
    latent, scale = int(stats.latents[i]), float(stats.max_activation[i])
    examples = "".join(_example_html(c, scale) for c in contexts)
    return (
        f'<section class="feature" id="feature-{latent}">'
        f"<h2>Feature {latent}</h2>"
        f'<div class="stats">density {stats.density[i]:.3%} '
        f"({round(stats.density[i] * stats.n_tokens)} of {stats.n_tokens} tokens)"
        f" &middot; max activation {scale:.4g}</div>"
        f"{_histogram_svg(stats.hist[i])}<ol>{examples}</ol></section>"
    )


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
    cards = "".join(_feature_html(shown, i, c) for i, c in enumerate(contexts))
    head = (
        f"{stats.n_tokens} tokens, {len(stats.latents)} latents, {len(alive)} "
        f"active; {len(chosen)} shown by {order}; store {store.path}"
    )
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(head)}</p>{cards}"
        "</body></html>\n"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
