"""A test hook: kill this process at a named point of a run, to prove that nothing is lost.

    TEXT2SIGN_KILL_AT=POINT[@N] python train.py ...

SIGKILLs the process (no handler runs, nothing is cleaned up: as a power cut or the OOM killer
would) the N-th time (default 1) it reaches POINT:

    step             an optimizer step, once the rows of the steps before it are in
                     training_metrics.csv (a step's row is written when the next one ends)
    validation       a validation batch during training
    write:<name>     a file called <name> (last.ckpt, evaluation_metrics.csv, index.json, ...)
                     fully written to its temporary file, not yet renamed over the old one
    finish           the run done, its final results.json not yet written

Importing this module hooks the `write:` points into files.py's atomic writes; the producers
(the run record, the training log) import it.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from text2sign.rundir.files import BEFORE_RENAME

KILL_AT = "TEXT2SIGN_KILL_AT"
_reached: Counter = Counter()


def kill_point(point: str) -> None:
    wanted = os.environ.get(KILL_AT)
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != point:
        return
    _reached[point] += 1
    if _reached[point] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


BEFORE_RENAME.append(lambda name: kill_point(f"write:{name}"))
