"""The command-line entry points run in the test process, as a user's command runs them but
without the seconds a new Python process spends importing torch and Lightning."""

from __future__ import annotations

import runpy
import sys
import warnings
from types import SimpleNamespace

from conftest import ROOT
from hydra.core.global_hydra import GlobalHydra


def command(program: str, *args: str) -> str | int | None:
    """Run `python train.py ARGS` (program "train.py") or `python -m MODULE ARGS`; returns the
    exit code it ended with (a message: printed to stderr, exit status 1), None if it ran on."""
    argv = sys.argv
    sys.argv = [program, *args]
    GlobalHydra.instance().clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # runpy: a module already imported
            if program.endswith(".py"):
                runpy.run_path(str(ROOT / program), run_name="__main__")
            else:
                runpy.run_module(program, run_name="__main__")
    except SystemExit as exited:
        return exited.code
    finally:
        sys.argv = argv
        GlobalHydra.instance().clear()
    return None


def train(capfd, *args: str) -> SimpleNamespace:
    """`python train.py ARGS` run by `command`: its exit status and what it printed, as
    subprocess.run(..., capture_output=True) gives them."""
    capfd.readouterr()
    code = command("train.py", *args)
    stdout, stderr = capfd.readouterr()
    if isinstance(code, str):  # sys.exit(message): printed to stderr, exit status 1
        return SimpleNamespace(returncode=1, stdout=stdout, stderr=stderr + code)
    return SimpleNamespace(returncode=code or 0, stdout=stdout, stderr=stderr)
