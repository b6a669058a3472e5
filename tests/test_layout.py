"""The package's layout promises: importing any module starts nothing and changes no global state."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

IMPORT_ALL = """
import importlib, pkgutil, warnings
from hydra.core.config_store import ConfigStore
# the libraries install their own filters when imported: snapshot after them
import diffusers, matplotlib.pyplot, pandas, pytorch_lightning, scipy.stats, torch, transformers
import torch.utils.tensorboard  # with the ray extra, it imports botocore, which adds one
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
    """docs/ablation_runner.md: a loop of your own needs no Lightning; AblationRunner takes
    train.py's run lock (rundir/lock.py) without run/."""
    check = ("import sys\nfrom text2sign import AblationRunner\n"
             "print(sorted({'pytorch_lightning', 'lightning_fabric'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "text2sign"
CONSUMERS = {"analysis": {"rundir", "data"}, "study": {"rundir", "data", "analysis"}}


def layers() -> dict[str, int]:
    """README's Layout: {package or root module: its layer}, lowest 1."""
    block = re.search(r"<!-- layers: lowest first -->\n```\n(.*?)```\n<!-- /layers -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "README's Layout section lost its layer list"
    return {name: int(number) for number, *names in map(str.split, block[1].splitlines())
            for name in names}


def unit(module: str) -> str:
    """text2sign.run.job -> run; text2sign.module -> module."""
    return module.split(".")[1]


def imports() -> dict[str, set[str]]:
    """{importing module: the text2sign modules it imports, at any level of the file}."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("text2sign."):
                found[name].add(node.module)
            elif isinstance(node, ast.Import):
                found[name].update(a.name for a in node.names if a.name.startswith("text2sign."))
    return found


def arrows_against_layers(found: dict[str, set[str]], layer: dict[str, int]) -> list[str]:
    """The imports README's Layout forbids: a package imports only lower layers; a consumer
    only what CONSUMERS allows it (never the producers, whose runs it reads from disk)."""
    wrong = []
    for importer, targets in found.items():
        if importer == "text2sign":
            continue  # the facade: `from text2sign import AblationRunner`, imported on use
        source = unit(importer)
        assert source in layer, f"{source} has no layer in README's Layout: place it"
        for target in {unit(t) for t in targets} - {source}:
            if layer[target] >= layer[source] or target not in CONSUMERS.get(source, {target}):
                wrong.append(f"{importer} imports text2sign.{target}")
    return sorted(wrong)


def test_no_package_imports_one_above_or_beside_it():
    assert arrows_against_layers(imports(), layers()) == []


def test_the_layer_check_finds_arrows_back_up_and_across():
    found = {"text2sign.rundir.record": {"text2sign.run.job"},  # up
             "text2sign.analysis.collect": {"text2sign.run.attempts"},  # a consumer reads a producer
             "text2sign.callbacks.ema": {"text2sign.launch.ddp"}}  # beside
    assert arrows_against_layers(found, layers()) == [
        "text2sign.analysis.collect imports text2sign.run",
        "text2sign.callbacks.ema imports text2sign.launch",
        "text2sign.rundir.record imports text2sign.run"]


def test_reading_run_directories_imports_no_torch_and_no_lightning():
    """text2sign.rundir, every module of it, is what analyze.py and the study page need to
    read a run: they start without torch or Lightning."""
    check = ("import importlib, pkgutil, sys\nimport text2sign.rundir as rundir\n"
             "for m in pkgutil.iter_modules(rundir.__path__):\n"
             "    importlib.import_module(f'text2sign.rundir.{m.name}')\n"
             "print(sorted({'torch', 'pytorch_lightning', 'lightning', 'lightning_fabric'}"
             " & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
