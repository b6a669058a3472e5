"""The votes of a study's database (SQLite, written by text2sign/study/store.py), read-only.

Standard library only: analyze.py reads the votes without the study's server.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

READ_WAIT_S = 30  # how long a read waits for a writer's transaction


@dataclass(frozen=True)
class Vote:
    left_group: str
    left_run: str  # relative to the sweep
    right_group: str
    right_run: str
    prompt: str
    choice: str  # left, right or tie (store.CHOICES)
    rater: str | None


def read_votes(path: Path) -> tuple[str, list[Vote]]:
    """(the sweep, every vote) of a study database, opened read-only."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=READ_WAIT_S)
    try:
        sweep = dict(db.execute("SELECT key, value FROM meta"))["sweep"]
        rows = db.execute("SELECT left_group, left_run, right_group, right_run, prompt, choice, "
                          "rater FROM votes JOIN pairs ON pairs.id = votes.pair_id "
                          "ORDER BY voted_at").fetchall()
    finally:
        db.close()
    return sweep, [Vote(*row) for row in rows]
