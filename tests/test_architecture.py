"""The layout's rules, checked by parsing the source (no import side effects).

* no import cycle between the modules of ``sparsecode/`` (imports inside
  functions and ``TYPE_CHECKING`` blocks included);
* a module whose name starts with ``_`` is private to its package: imported
  only from inside that package;
* a name that starts with ``_`` is private to its package: imported only by
  modules of the same package;
* no module is over 400 lines;
* the tests import only public modules and names of sparsecode.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "sparsecode"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _package_of(module: str) -> str:
    """The package a module belongs to (a package belongs to itself)."""
    return module if _is_package(module) else module.rpartition(".")[0]


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(path: Path, module: str | None) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import statement.

    ``from P import m`` where ``P.m`` is a module counts as importing ``P.m``.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names
                      if a.name.split(".")[0] == "sparsecode"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(module).split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sparsecode":
                continue
            names = [a.name for a in node.names]
            subs = [n for n in names if f"{target}.{n}" in MODULES]
            found += [(f"{target}.{n}", [], node.lineno) for n in subs]
            rest = [n for n in names if n not in subs]
            if rest:
                found.append((target, rest, node.lineno))
    return found


GRAPH = {m: _imports(p, m) for m, p in MODULES.items()}


def test_every_import_resolves_to_a_module():
    bad = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items()
           for t, _, line in edges if t not in MODULES]
    assert not bad, bad


def _cycle() -> list[str] | None:
    """One import cycle (a list of modules, first == last), or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for target, _, _ in GRAPH.get(m, []):
            if target == m or target not in MODULES:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in MODULES:
        if m not in state:
            found = visit(m)
            if found:
                return found
    return None


def test_no_import_cycles():
    cycle = _cycle()
    assert cycle is None, " -> ".join(cycle)


def _privacy_violations(importer: str, edges) -> list[str]:
    out = []
    inside = importer if importer in MODULES else ""
    for target, names, line in edges:
        parts = target.split(".")
        for i, part in enumerate(parts[1:], start=1):
            owner = ".".join(parts[:i])  # the package the private module belongs to
            if _private(part) and not (inside == owner
                                       or inside.startswith(owner + ".")):
                out.append(f"{importer}:{line} imports the private module {target}")
        if target in MODULES:
            same = inside and _package_of(inside) == _package_of(target)
            out += [f"{importer}:{line} imports the private name {target}.{n}"
                    for n in names if _private(n) and not same]
    return out


def test_private_modules_and_names_stay_in_their_package():
    bad = [v for m, edges in GRAPH.items() for v in _privacy_violations(m, edges)]
    assert not bad, bad


def _module_aliases(tree: ast.AST) -> set[str]:
    """Local names bound to sparsecode modules by the imports of ``tree``."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names
                      if a.name.split(".")[0] == "sparsecode"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "sparsecode"):
            names |= {a.asname or a.name for a in node.names
                      if f"{node.module}.{a.name}" in MODULES}
    return names


def _private_attributes(path: Path) -> list[str]:
    """``module._name`` look-ups on sparsecode modules (private by the back door)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases, out = _module_aliases(tree), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                out.append(f"{path.name}:{node.lineno} reads {ast.unparse(node)}")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in ("setattr", "getattr") and len(node.args) >= 2
              and isinstance(node.args[0], ast.Name) and node.args[0].id in aliases
              and isinstance(node.args[1], ast.Constant)
              and _private(str(node.args[1].value))):
            out.append(f"{path.name}:{node.lineno} patches {ast.unparse(node)}")
    return out


def test_tests_import_only_public_names():
    bad = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        edges = _imports(path, None)
        bad += _privacy_violations(str(path.relative_to(ROOT)), edges)
        bad += _private_attributes(path)
    assert not bad, bad


def test_modules_are_at_most_400_lines():
    long = {m: n for m, p in MODULES.items()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long


@pytest.mark.parametrize("rule", ["cycle", "private module", "private name",
                                  "private attribute"])
def test_the_checks_can_fail(rule, monkeypatch, tmp_path):
    """Each rule catches a planted violation."""
    a, b = "sparsecode.metrics.recovery", "sparsecode.nn.select"
    if rule == "cycle":
        monkeypatch.setitem(GRAPH, b, GRAPH[b] + [(a, ["mmcs"], 1)])
        monkeypatch.setitem(GRAPH, a, GRAPH[a] + [(b, ["topk_indices"], 1)])
        assert _cycle() is not None
    elif rule == "private module":
        edges = [("sparsecode.sae._checkpoint", ["read_checkpoint"], 1)]
        assert _privacy_violations("sparsecode.io", edges)
        assert not _privacy_violations("sparsecode.sae.training", edges)
    elif rule == "private attribute":
        path = tmp_path / "test_x.py"
        path.write_text("import sparsecode.nn.linear as lin\nlin._ONEDNN\n"
                        "from sparsecode.nn import linear\nlinear.linear\n"
                        "monkeypatch.setattr(linear, '_ONEDNN', True)\n")
        assert len(_private_attributes(path)) == 2
    else:
        edges = [("sparsecode.dictionary._sparse_coder", ["_BaseSparseCoding"], 1)]
        assert _privacy_violations("sparsecode.words.spine", edges)
        assert not _privacy_violations("sparsecode.dictionary._online", edges)
