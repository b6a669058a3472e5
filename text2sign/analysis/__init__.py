"""Turn an outputs tree of runs into comparison tables, statistics, plots and a report.

collect (find and read runs) -> study (group by factors, statistics against a baseline)
-> tables, plots, samples, preference (the votes of a human study, --study), report; cli
wires them together for analyze.py.
"""


class AnalysisError(Exception):
    """A problem with the user's input (directories, baseline, metrics): exit code 2."""
