"""The public surface: what ``sparsecode.__all__``, every ``__all__`` and the
README promise can be imported."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

import sparsecode

ROOT = Path(__file__).resolve().parents[1]

#: ``sparsecode.__all__`` as of the layout restructure: removing or renaming a
#: name breaks users, so it changes here only on purpose.
ALL = [
    "ConvSparseAutoencoder",
    "DictionaryLearning",
    "MiniBatchDictionaryLearning",
    "PatchFeatures",
    "SPINE",
    "SparseAutoencoder",
    "Transcoder",
    "UnmixingAutoencoder",
    "VolumePatchFeatures",
    "SparseCoder",
    "SparseOvercompleteVectors",
    "__version__",
    "compare",
    "dict_learning",
    "dict_learning_online",
    "load",
    "save",
    "sparse_encode",
]

#: documented module paths (README) that must keep working
DOCUMENTED = [
    "sparsecode.nn",
    "sparsecode.solvers",
    "sparsecode.metrics",
    "sparsecode.io",
    "sparsecode.sae",
    "sparsecode.data.words",
    "sparsecode.data.text",
    "sparsecode.data.toy",
    "sparsecode.data.activations",
    "sparsecode.data.store",
    "sparsecode.papers.sharkey2022",
    "sparsecode.papers.yun2021",
    "sparsecode.papers.cunningham2023",
    "sparsecode.papers.faruqui2015",
    "sparsecode.papers.spine2018",
    "sparsecode.papers.trifonov2018",
]


def test_root_all_is_unchanged():
    assert sorted(sparsecode.__all__) == sorted(ALL)
    for name in ALL:
        assert getattr(sparsecode, name) is not None


def _modules():
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                  .removesuffix(".__init__")
                  for p in (ROOT / "sparsecode").rglob("*.py"))


@pytest.mark.parametrize("name", _modules())
def test_every_all_entry_exists(name):
    module = importlib.import_module(name)
    missing = [n for n in getattr(module, "__all__", []) if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing objects: {missing}"


@pytest.mark.parametrize("path", DOCUMENTED)
def test_documented_paths_import(path):
    assert importlib.import_module(path).__name__ == path


def _readme_references() -> list[str]:
    """``sparsecode.x.y`` paths and ``from sparsecode... import a, b`` names."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    refs = set(re.findall(r"(?<![\w/])(sparsecode(?:\.\w+)+)", text))
    for mod, names in re.findall(r"from (sparsecode[\w.]*) import (\([^)]*\)|[^\n]+)",
                                 text):
        names = re.sub(r"#[^\n]*", "", names).strip("()")
        refs |= {f"{mod}.{n.strip()}" for n in names.split(",") if n.strip()}
    return sorted(refs)


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(path)


def test_readme_names_resolve():
    refs = _readme_references()
    assert len(refs) > 15  # the README does name the library's pieces
    bad = []
    for ref in refs:
        try:
            _resolve(ref)
        except (ImportError, AttributeError):
            bad.append(ref)
    assert not bad, f"README names that do not import: {bad}"
