"""Turn an outputs tree into comparison tables, statistics, plots and a report.

Not built yet: until then, read each run's results.json directly.
"""

import sys

if __name__ == "__main__":
    sys.exit(
        "analyze.py is not built yet. Every run directory under outputs/ has a results.json "
        "(schema in shared/ARCHITECTURE.md) with its factors, training and evaluation figures."
    )
