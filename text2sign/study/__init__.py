"""A blind side-by-side human study of a sweep's sample clips: `python -m text2sign.study serve`.

clips (the sweep's groups and their GIFs, as the analysis groups them) -> schedule (which two
clips next) -> store (pairs and votes in SQLite) -> server (the page and its API, Flask).
analyze.py --study reads the votes (text2sign.analysis.preference).
"""
