"""python -m text2sign.study serve SWEEP [--port 8765] [--db study.sqlite] [--host 127.0.0.1]"""

from __future__ import annotations

import argparse
import logging
import sqlite3
import sys
from pathlib import Path

from text2sign.analysis.identity import ON_CONFLICT
from text2sign.study.clips import StudyError, find_clips
from text2sign.study.store import Store

PROG = "python -m text2sign.study"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=PROG, description="A blind side-by-side study of the "
                                     "sample clips of a sweep's groups, voted on in a browser.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the study page of a sweep")
    serve.add_argument("sweep", type=Path, metavar="SWEEP",
                       help="the sweep's folder, outputs/multirun/<sweep>")
    serve.add_argument("--port", type=port, default=8765, help="default 8765; 0: any free port")
    serve.add_argument("--host", default="127.0.0.1",
                       help="the address to listen on (default 127.0.0.1: this machine only; "
                            "0.0.0.0: every network it is on, see docs/study_page.md)")
    serve.add_argument("--db", type=Path, default=Path("study.sqlite"),
                       help="the votes' SQLite database, created if missing (default "
                            "study.sqlite); a server started again on it goes on")
    serve.add_argument("--on-conflict", choices=ON_CONFLICT, default="error",
                       help="which copy of a run made twice by different code to show (as in "
                            "analyze.py)")
    return parser.parse_args(argv)


def port(text: str) -> int:
    """A TCP port number, 0 (any free port) to 65535."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port: give 0 to 65535 (0: any "
                                         "free port)")
    return number


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    try:
        from text2sign.study.server import create_app, server
    except ImportError as error:
        if error.name not in ("flask", "werkzeug"):
            raise
        return _error(f"the study page needs Flask, which is not installed ({error}): "
                      "pip install -e \".[study]\"")
    try:
        catalog = find_clips(args.sweep, args.on_conflict)
        store = Store(args.db, catalog.root)
    except StudyError as error:
        return _error(str(error))
    except sqlite3.DatabaseError as error:
        return _error(f"cannot use {args.db} as the study's database ({error}): give another "
                      "file with --db")
    # a port in use, an address that does not resolve: Werkzeug says why, exit status 1
    httpd = server(create_app(catalog, store), args.host, args.port)
    prompts = len({unit.a.prompt for unit in catalog.units})
    print(f"study of {catalog.root}: {len(catalog.groups)} groups, {prompts} prompts, "
          f"{len(catalog.units)} pairs of clips; {store.count()} votes so far in {args.db}")
    print(f"serving http://{args.host}:{httpd.server_port}/ (Ctrl+C stops)", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    print(f"stopped: {store.count()} votes in {args.db}")
    store.close()
    return 0


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
