"""A study's database (SQLite): every pair shown and every vote, each written in its own
transaction in WAL mode, so a killed server keeps every vote it answered (synchronous=NORMAL:
a commit is in the operating system's hands; a power cut may lose the last ones).

Its reader is analyze.py's (text2sign/analysis/votes.py): the study writes, the analysis reads.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from text2sign.study.clips import Clip, StudyError

SCHEMA_VERSION = "1"
CHOICES = ("left", "right", "tie")
OPEN_S = 600  # a pair shown this recently and not yet answered counts as a comparison under way
WAIT_S = 30  # how long a writer waits for another's transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pairs (
    id TEXT PRIMARY KEY, prompt TEXT NOT NULL, sample_seed TEXT NOT NULL,
    left_group TEXT NOT NULL, left_run TEXT NOT NULL, left_seed TEXT NOT NULL,
    left_clip TEXT NOT NULL,
    right_group TEXT NOT NULL, right_run TEXT NOT NULL, right_seed TEXT NOT NULL,
    right_clip TEXT NOT NULL,
    shown_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS votes (
    pair_id TEXT PRIMARY KEY REFERENCES pairs(id),
    choice TEXT NOT NULL CHECK (choice IN ('left', 'right', 'tie')),
    rater TEXT, voted_at REAL NOT NULL);
"""
SIDE = ("group", "run", "seed", "clip")


@dataclass(frozen=True)
class Pair:
    id: str
    left: Clip
    right: Clip


class Store:
    def __init__(self, path: Path, sweep: Path):
        """Open or create the study database of `sweep` at `path`; a database of another
        sweep is refused."""
        self.path = path
        # One connection, used by one request thread at a time: opening and closing one per
        # request would checkpoint the log at every close (10 ms), and writes are one at a
        # time in SQLite anyway. Other processes on the same file wait up to WAIT_S.
        self._db = sqlite3.connect(path, timeout=WAIT_S, isolation_level=None,
                                   check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO meta VALUES ('sweep', ?), ('schema_version', ?)",
                       (str(sweep), SCHEMA_VERSION))
            recorded = dict(db.execute("SELECT key, value FROM meta"))
        if recorded["sweep"] != str(sweep):
            self.close()
            raise StudyError(f"{path} holds the votes of the sweep {recorded['sweep']}, not "
                             f"{sweep}: give another database with --db")

    def show(self, choose: Callable[[Counter[frozenset[str]]], tuple[Clip, Clip]]) -> Pair:
        """A new pair, chosen by `choose` from the comparisons of each unit so far (votes and
        pairs shown in the last OPEN_S seconds, keyed by the set of their two clip paths),
        and recorded in the same transaction."""
        with self._transaction() as db:
            loads: Counter[frozenset[str]] = Counter()
            for left, right, n in db.execute(
                    "SELECT left_clip, right_clip, count(*) FROM pairs LEFT JOIN votes "
                    "ON votes.pair_id = pairs.id WHERE votes.pair_id IS NOT NULL "
                    "OR shown_at > ? GROUP BY left_clip, right_clip",
                    (time.time() - OPEN_S,)):
                loads[frozenset((left, right))] += n
            left, right = choose(loads)
            pair = Pair(secrets.token_urlsafe(12), left, right)
            db.execute("INSERT INTO pairs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (pair.id, left.prompt, json.dumps(left.sample_seed),
                        *_side(left), *_side(right), time.time()))
        return pair

    def vote(self, pair_id: str, choice: str, rater: str | None) -> str:
        """Record a vote: "stored", or why not: "unknown" pair, or "answered" already."""
        with self._transaction() as db:
            row = db.execute("SELECT votes.pair_id FROM pairs LEFT JOIN votes ON "
                             "votes.pair_id = pairs.id WHERE pairs.id = ?", (pair_id,)).fetchone()
            if row is None:
                return "unknown"
            if row[0] is not None:
                return "answered"
            db.execute("INSERT INTO votes VALUES (?, ?, ?, ?)",
                       (pair_id, choice, rater, time.time()))
        return "stored"

    def pair(self, pair_id: str) -> Pair | None:
        with self._lock:
            row = self._db.execute(f"SELECT id, prompt, sample_seed, {_columns('left')}, "
                             f"{_columns('right')} FROM pairs WHERE id = ?", (pair_id,)).fetchone()
        if row is None:
            return None
        prompt, seed = row[1], json.loads(row[2])
        return Pair(row[0], Clip(*row[3:6], prompt, seed, row[6]),
                    Clip(*row[7:10], prompt, seed, row[10]))

    def count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT count(*) FROM votes").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE), so that choosing a pair
        and recording it, or checking a pair and voting on it, are one step for other
        threads and processes."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _side(clip: Clip) -> tuple[str, str, str, str]:
    return clip.group, clip.run, clip.seed, clip.path


def _columns(side: str) -> str:
    return ", ".join(f"{side}_{name}" for name in SIDE)
