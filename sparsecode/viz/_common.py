"""matplotlib, imported lazily with the Agg backend, and saving a figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "Plotting needs matplotlib: pip install 'sparsecode[viz]' (from a "
            "checkout: pip install -e '.[viz]')"
        ) from err
    return plt


def _save(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` (parents created), close it, return the path."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
