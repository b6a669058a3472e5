"""The package's layout promises: importing any module starts nothing and changes no global state."""

from __future__ import annotations

import subprocess
import sys

IMPORT_ALL = """
import importlib, pkgutil, warnings
from hydra.core.config_store import ConfigStore
# the libraries install their own filters when imported: snapshot after them
import diffusers, matplotlib.pyplot, pandas, pytorch_lightning, scipy.stats, torch, transformers
import text2sign
filters, stored = list(warnings.filters), set(ConfigStore.instance().repo)
for module in pkgutil.walk_packages(text2sign.__path__, "text2sign."):
    importlib.import_module(module.name)
assert warnings.filters == filters, [f for f in warnings.filters if f not in filters]
assert set(ConfigStore.instance().repo) == stored, set(ConfigStore.instance().repo) - stored
"""


def test_importing_every_module_installs_no_filter_and_registers_no_config():
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_ablation_runner_imports_no_lightning():
    """docs/ablation_runner.md: a loop of your own needs no Lightning; AblationRunner takes train.py's run lock
    (run/lock.py) without the rest of run/."""
    check = ("import sys\nfrom text2sign import AblationRunner\n"
             "print(sorted({'pytorch_lightning', 'lightning_fabric'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
