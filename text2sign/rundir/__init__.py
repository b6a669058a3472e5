"""The run directory: what a run writes and every reader reads, the contract between the
producers (train.py's runs, AblationRunner) and the consumers (analyze.py, the study page).

schema (results.json declared; python -m text2sign.rundir.schema) -> record (results.json and
metadata.json written as a run goes) -> identity and factors (what a run is, what it is
compared by) -> lock (one process a directory) -> step_logs, files (the per-step logs, atomic
writes). docs/outputs.md describes every file. Neither torch nor Lightning is imported here:
a reader of runs needs neither (tests/test_layout.py).
"""
