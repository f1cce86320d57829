"""``sparsecode reproduce``, ``--version`` and the exit status of user errors."""

import subprocess
import sys

import pytest

import sparsecode
from sparsecode.cli import main
from sparsecode.papers import PAPERS


def test_list_names_every_reproduction_once(capsys):
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(PAPERS)
    assert all(PAPERS[line.split()[0]] in line for line in lines)


@pytest.mark.parametrize("argv", [["reproduce", "nope"], ["reproduce"]])
def test_unknown_or_missing_name_exits_2_with_one_line(argv, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown reproduction" in err[0] and "--list" in err[0]
    assert not (tmp_path / "x").exists()


def test_version_and_bad_option_from_a_subprocess():
    cmd = [sys.executable, "-m", "sparsecode"]
    done = subprocess.run(cmd + ["--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == (
        f"sparsecode {sparsecode.__version__}")
    bad = subprocess.run(cmd + ["reproduce", "sharkey2022", "--seed", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "--seed" in bad.stderr


def test_reproduce_writes_the_report_it_prints(tmp_path, capsys, monkeypatch):
    """What the command passes to ``run``, prints and leaves on disk (the
    module's own test covers its numbers)."""
    from sparsecode.papers import Report, sharkey2022

    seen = {}

    def small(**kw):
        seen.update(kw)
        report = Report("Sharkey (stub)", [{"mmcs": 0.5}], notes=["n"])
        report.write(kw["out_dir"])
        return report

    monkeypatch.setattr(sharkey2022, "run", small)
    out = tmp_path / "rep"
    assert main(["reproduce", "sharkey2022", "--quick", "--device", "cpu",
                 "--out", str(out), "--seed", "3"]) == 0
    assert seen == {"quick": True, "device": "cpu", "out_dir": out,
                    "random_state": 3}
    printed = capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert md.startswith("# Sharkey") and md.strip() in printed
    assert (out / "report.json").is_file()
