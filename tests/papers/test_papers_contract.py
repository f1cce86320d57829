"""Every reproduction has the same `run` signature and is listed in `PAPERS`."""

import importlib
import inspect
import json

import pytest

from sparsecode import papers
from sparsecode.papers import PAPERS, Report

SIGNATURE = [("quick", False), ("device", "auto"), ("out_dir", None),
             ("random_state", 0)]


def test_every_module_is_listed_and_exported():
    assert set(PAPERS) == set(papers.__all__) - {"PAPERS", "Report"}
    assert all(isinstance(v, str) and len(v) < 100 for v in PAPERS.values())


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_run_has_the_shared_signature(name):
    run = importlib.import_module(f"sparsecode.papers.{name}").run
    params = list(inspect.signature(run).parameters.values())[:4]
    assert [(p.name, p.default) for p in params] == SIGNATURE
    assert "out_dir" in run.__doc__ and "random_state" in run.__doc__


def test_write_puts_markdown_and_json_in_the_folder(tmp_path):
    report = Report("t", [{"a": 1.5, "b": "x"}], notes=["n"])
    assert report.write(tmp_path / "out") == tmp_path / "out" / "report.md"
    md = (tmp_path / "out" / "report.md").read_text()
    assert md.startswith("# t") and "| 1.5 | x |" in md
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["table"] == [{"a": 1.5, "b": "x"}] and data["notes"] == ["n"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.suffix == ".tmp"]
