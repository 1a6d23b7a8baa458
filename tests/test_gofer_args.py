"""The gofer's quick option parse (the command line launch builds, without argparse) must
give what argparse gives, and leave every other command line to argparse."""
import pytest

from pysentry.gofer import __main__ as gofer_main
from pysentry.gofer.launch import gofer_args

LAUNCHED = [gofer_args("/srv/root", 7, ro=ro, donate=donate, confine=confine)
            for ro in (False, True) for donate in (False, True) for confine in (False, True)]

OTHERS = [
    ["--listen", "127.0.0.1:0", "/"],
    ["--fd", "3", "/"],
    ["--fd", "3", "--parent-pid", "12", "--confine", "--ro", "/"],   # not launch's order
    ["--fd", "3", "--parent-pid", "12", "--debug", "/"],
    ["--fd", "3", "--parent-pid", "12", "--ro"],
    ["--fd", "3", "--parent-pid", "12", "/", "extra"],
    ["--fd", "x", "--parent-pid", "12", "/"],
    ["--fd", "3", "--parent-pid", "12", "--msize", "8192", "/"],
]


@pytest.mark.parametrize("argv", LAUNCHED, ids=" ".join)
def test_quick_args_match_argparse(argv, monkeypatch):
    quick = gofer_main._quick_args(argv)
    assert quick is not None
    monkeypatch.setattr(gofer_main, "_quick_args", lambda argv: None)   # argparse only
    assert vars(quick) == vars(gofer_main.parse_args(argv))


@pytest.mark.parametrize("argv", OTHERS, ids=" ".join)
def test_other_command_lines_go_to_argparse(argv):
    assert gofer_main._quick_args(argv) is None
