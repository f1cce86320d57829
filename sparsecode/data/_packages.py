"""Locating the data files that ship inside installed packages (offline)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

__all__ = ["gensim_test_file", "install_hint", "package_dir", "require"]


def install_hint(extra: str) -> str:
    """How to install an extra, from PyPI or from a checkout."""
    return (f"pip install 'sparsecode[{extra}]' (from a checkout of the repository: "
            f"pip install -e '.[{extra}]')")


def require(module: str, extra: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is required here: {install_hint(extra)}"
        ) from exc


def package_dir(package: str, extra: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"the {package} package is required here: {install_hint(extra)}"
        )
    return Path(list(spec.submodule_search_locations)[0])


def gensim_test_file(name: str) -> Path:
    """A file of gensim's test data (``gensim.test.utils.datapath`` without
    importing gensim)."""
    path = package_dir("gensim", "words") / "test" / "test_data" / name
    if not path.is_file():
        raise FileNotFoundError(f"gensim's test data file {path} is missing; "
                                f"reinstall gensim ({install_hint('words')}).")
    return path
