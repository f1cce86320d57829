"""Every docstring example of the package runs as a doctest, module by module."""

import doctest
import importlib
import pkgutil

import pytest

import sparsecode

MODULES = sorted(m.name for m in pkgutil.walk_packages(sparsecode.__path__,
                                                        "sparsecode.")
                 if not m.name.endswith("__main__"))


def test_the_package_has_modules_with_examples():
    finder = doctest.DocTestFinder()
    with_examples = [n for n in MODULES if any(
        t.examples for t in finder.find(importlib.import_module(n)))]
    assert len(MODULES) > 50 and len(with_examples) >= 20, with_examples


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS
                             | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"
