"""The study's web app (Flask): the page, the next pair, a vote, and the two clips of a pair.

A clip's URL names the pair and the side (/clip/<pair id>/left.gif), never the run, so the
group stays hidden; the file is one of the sweep's sample GIFs found at start-up, or nothing.
"""

from __future__ import annotations

from collections import Counter
from importlib.resources import files
from typing import Any

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import BadRequest, HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, make_server

from text2sign.study.clips import Catalog, Clip
from text2sign.study.schedule import next_pair
from text2sign.study.store import CHOICES, Pair, Store

MAX_BODY = 4096  # bytes of a request body: a vote is under 200
MAX_TEXT = 64  # characters of a pair id or a rater id
FIELDS = {"pair_id", "choice", "rater"}


def create_app(catalog: Catalog, store: Store) -> Flask:
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    page = (files("text2sign.study") / "page.html").read_text()
    servable = catalog.files

    def shown(pair: Pair) -> dict[str, str]:
        return {"pair_id": pair.id, "prompt": pair.left.prompt,
                "left": f"/clip/{pair.id}/left.gif", "right": f"/clip/{pair.id}/right.gif"}

    def choose(loads: Counter[frozenset[str]]) -> tuple[Clip, Clip]:
        """The next pair whose two files are there; one that has gone is dropped."""
        while catalog.units:
            chosen = next_pair(catalog.units, loads)
            gone = [clip for clip in chosen if catalog.gone(clip)]
            if not gone:
                return chosen
            for clip in gone:
                catalog.drop(clip)
        raise NotFound("no pair of clips is left to compare: their files were removed from "
                       f"{catalog.root} while the study ran")

    def new_pair() -> Response:
        return jsonify(shown(store.show(choose)))

    @app.get("/")
    def index() -> Response:
        return Response(page, mimetype="text/html")

    @app.get("/api/pair")
    def pair() -> Response:
        return new_pair()

    @app.post("/api/vote")
    def vote() -> Response:
        pair_id, choice, rater = read_vote(request.get_json(silent=True))
        outcome = store.vote(pair_id, choice, rater)
        if outcome == "unknown":
            raise NotFound(f"no pair {pair_id!r} was shown: get one from /api/pair")
        if outcome == "answered":
            raise BadRequest(f"pair {pair_id!r} has been answered already: its vote stands")
        return new_pair()

    @app.get("/clip/<pair_id>/<side>.gif")
    def clip(pair_id: str, side: str) -> Response:
        shown_pair = store.pair(pair_id) if side in ("left", "right") else None
        clip = getattr(shown_pair, side) if shown_pair else None
        if clip is None or clip.path not in servable:
            raise NotFound("no such clip")
        if catalog.gone(clip):
            catalog.drop(clip)
            raise NotFound("this clip was removed from the sweep: get another pair")
        return send_file(catalog.root / clip.path, mimetype="image/gif")

    @app.errorhandler(HTTPException)
    def refused(error: HTTPException) -> tuple[Response, int]:
        """Every refusal as JSON {"error": why}; an oversized body is a bad request (400)."""
        if isinstance(error, RequestEntityTooLarge):
            error = BadRequest(f"request body over {MAX_BODY} bytes")
        return jsonify(error=error.description), error.code

    return app


def read_vote(body: Any) -> tuple[str, str, str | None]:
    """(pair_id, choice, rater) of a vote's JSON body, or BadRequest naming what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest('send a JSON object {"pair_id": ..., "choice": "left"|"right"|"tie", '
                         '"rater": ...} with Content-Type: application/json')
    if body.keys() - FIELDS:
        raise BadRequest(f"unknown field(s) {sorted(body.keys() - FIELDS)}: a vote has "
                         f"{sorted(FIELDS)}")
    pair_id, choice, rater = body.get("pair_id"), body.get("choice"), body.get("rater")
    if not isinstance(pair_id, str) or not 0 < len(pair_id) <= MAX_TEXT:
        raise BadRequest("pair_id must be the text /api/pair gave")
    if choice not in CHOICES:
        raise BadRequest(f"choice must be one of {', '.join(CHOICES)}, not {choice!r}")
    if rater is not None and (not isinstance(rater, str) or len(rater) > MAX_TEXT
                              or not rater.isprintable()):
        raise BadRequest(f"rater must be a line of text of at most {MAX_TEXT} characters")
    return pair_id, choice, (rater or "").strip() or None


def server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """Werkzeug's threaded server: each request in a thread of its own (port 0: any free one)."""
    return make_server(host, port, app, threaded=True)
