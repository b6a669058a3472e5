"""Turn an outputs tree into comparison tables, statistics over seeds, plots and a report.

    python analyze.py                       # every run under outputs/ -> outputs/analysis/
    python analyze.py outputs/multirun/A outputs/multirun/B --baseline text_encoder=frozen ema=true
    python analyze.py --help
"""

import sys

from text2sign.cli.analyze import main

if __name__ == "__main__":
    sys.exit(main())
