"""HTML rendering of the feature report of `sparsecode.inspection` (no logic, no I/O).

Inline CSS and SVG only: the page needs no script and no external resource,
and every piece of text is escaped.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

__all__ = ["CSS", "LOG2_EDGES", "feature_html"]

#: Inner bin edges of the activation histogram, in log2 |activation|: two bins
#: per octave from 2**-16 to 2**16, the outermost bins catching the rest.
LOG2_EDGES = np.arange(-16.0, 16.25, 0.5)

CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
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


def feature_html(stats: Any, i: int, contexts: list[dict]) -> str:
    """One feature's card: density, max activation, histogram, top contexts."""
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
