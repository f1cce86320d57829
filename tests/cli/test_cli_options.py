"""Every option of every subcommand explains itself; bad numbers are usage errors."""

import argparse

import pytest

from sparsecode.cli import build_parser, main


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions
                  if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_option_of_every_subcommand_has_help_text():
    subs = _subparsers()
    assert {"demo", "compare", "extract", "fit", "transform", "evaluate",
            "reproduce"} <= set(subs)
    missing = [f"{name} {a.option_strings or a.dest}"
               for name, p in subs.items() for a in p._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, missing


@pytest.mark.parametrize("argv, option", [
    (["demo", "--n-patches", "-5"], "--n-patches"),
    (["demo", "--alpha", "0"], "--alpha"),
    (["demo", "--n-components", "x"], "--n-components"),
    (["fit", "--store", "s", "--out", "o", "--k", "-3"], "--k"),
    (["compare", "--n-components", "0"], "--n-components"),
    (["extract", "--out", "o", "--batch-size", "0"], "--batch-size"),
])
def test_bad_numbers_exit_2_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert option in err and "expected" in err and "Traceback" not in err
