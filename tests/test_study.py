"""The human study (python -m text2sign.study): clips, the API and its refusals, votes under
load and across a killed server, the statistics of analyze.py --study, and the page in a real
headless browser. Sweeps are written by hand (analysis_fixtures): nothing is trained."""

from __future__ import annotations

import json
import math
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import config, factors, results, write_run
from scipy import stats

from text2sign.analysis.preference import bradley_terry, sign_test, wilson
from text2sign.analysis.votes import read_votes
from text2sign.cli import analyze as cli
from text2sign.study.__main__ import main as study_main
from text2sign.study.clips import StudyError, find_clips
from text2sign.study.schedule import next_pair
from text2sign.study.server import create_app, server
from text2sign.study.store import Store

PROMPTS = ("hello", "thank you")
GROUPS = [("frozen", True), ("frozen", False), ("finetuned", True)]
A, B, C = "ema=true text_encoder=frozen", "ema=false text_encoder=frozen", \
    "ema=true text_encoder=finetuned"


def write_sweep(root: Path, groups=GROUPS, prompts=PROMPTS) -> Path:
    """A sweep of one run per group (seed 0) with a sample GIF per prompt."""
    for encoder, ema in groups:
        run_dir = root / f"ema-{ema}+text_encoder-{encoder}"
        write_run(run_dir, results(factors(encoder, ema, 0), 100.0, 60.0, 0), prompts=prompts,
                  resolved=config(encoder, ema, 0, run_dir))
    return root


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return write_sweep(tmp_path_factory.mktemp("study") / "sweep")


@pytest.fixture
def study(sweep, tmp_path):
    """(catalog, store, Flask test client) on a fresh database."""
    catalog = find_clips(sweep)
    store = Store(tmp_path / "study.sqlite", catalog.root)
    return catalog, store, create_app(catalog, store).test_client()


@contextmanager
def serving(catalog, store):
    """The real threaded server on a free port, in a thread of this process."""
    httpd = server(create_app(catalog, store), "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url + "/api/vote", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def get_pair(url: str) -> dict:
    with urllib.request.urlopen(url + "/api/pair", timeout=30) as response:
        return json.load(response)


def stored(store: Store) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(store.path) as db:
        return db.execute("SELECT pair_id, choice, rater FROM votes ORDER BY voted_at").fetchall()


# --- the sweep's clips ---------------------------------------------------------------------

def test_groups_and_units_come_from_the_analysis_grouping(sweep):
    catalog = find_clips(sweep)
    assert catalog.groups == [A, B, C]  # the analysis's labels, its baseline first
    assert Counter(frozenset(unit.groups) for unit in catalog.units) == {
        frozenset(pair): len(PROMPTS) for pair in [(A, B), (A, C), (B, C)]}
    assert all(unit.a.prompt == unit.b.prompt and unit.a.sample_seed == unit.b.sample_seed == 0
               for unit in catalog.units)
    assert len(catalog.files) == 6 and all(
        (catalog.root / path).is_file() and path.endswith(".gif") for path in catalog.files)


def test_index_entries_outside_the_samples_folder_are_never_clips(tmp_path):
    root = write_sweep(tmp_path / "sweep", GROUPS[:2])
    (tmp_path / "secret.gif").write_bytes(b"GIF89a secret")
    index_path = root / "ema-False+text_encoder-frozen" / "samples" / "index.json"
    index = json.loads(index_path.read_text())
    index["prompts"] += [{"text": t, "gif": g} for t, g in [
        ("up", "../../../secret.gif"), ("abs", str(tmp_path / "secret.gif")),
        ("json", "../results.json"), ("gone", "missing.gif")]]
    index_path.write_text(json.dumps(index))
    catalog = find_clips(root)
    assert {unit.a.prompt for unit in catalog.units} == set(PROMPTS)
    assert all(path.startswith(("ema-True+", "ema-False+")) and "/samples/" in path
               for path in catalog.files)


def test_a_sweep_without_samples_or_with_one_group_is_refused(tmp_path, capsys):
    with pytest.raises(StudyError, match="has one group with sample clips"):
        find_clips(write_sweep(tmp_path / "one", GROUPS[:1]))
    with pytest.raises(StudyError, match="no completed run .* has sample clips"):
        find_clips(write_sweep(tmp_path / "none", GROUPS, prompts=()))
    assert study_main(["serve", str(tmp_path / "none"), "--db", str(tmp_path / "s.db")]) == 2
    assert "error: no completed run" in capsys.readouterr().err
    assert not (tmp_path / "s.db").exists()


def test_a_database_of_another_sweep_is_refused(sweep, tmp_path):
    Store(tmp_path / "s.db", Path("/elsewhere/sweep"))
    with pytest.raises(StudyError, match="holds the votes of the sweep /elsewhere/sweep"):
        Store(tmp_path / "s.db", sweep.resolve())


def test_missing_flask_is_named_with_the_install_command(sweep, monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "text2sign.study.server")
    monkeypatch.setitem(sys.modules, "flask", None)  # import flask raises ImportError
    assert study_main(["serve", str(sweep)]) == 2
    assert 'pip install -e ".[study]"' in capsys.readouterr().err


# --- the API -------------------------------------------------------------------------------

def test_page_pair_clip_and_vote(study):
    catalog, store, client = study
    page = client.get("/")
    assert page.status_code == 200 and b"Which clip signs the prompt better?" in page.data
    shown = client.get("/api/pair").get_json()
    assert set(shown) == {"pair_id", "prompt", "left", "right"} and shown["prompt"] in PROMPTS
    pair = store.pair(shown["pair_id"])
    for side in ("left", "right"):  # the URL hides the run; the file is that side's clip
        url = shown[side]
        assert url == f"/clip/{shown['pair_id']}/{side}.gif" and "ema" not in url
        clip = client.get(url)
        assert clip.status_code == 200 and clip.mimetype == "image/gif"
        assert clip.data == (catalog.root / getattr(pair, side).path).read_bytes()
    assert pair.left.group != pair.right.group and pair.left.prompt == shown["prompt"]
    answer = client.post("/api/vote", json={"pair_id": shown["pair_id"], "choice": "tie",
                                            "rater": " r1 "})
    assert answer.status_code == 200 and answer.get_json()["pair_id"] != shown["pair_id"]
    assert stored(store) == [(shown["pair_id"], "tie", "r1")]


@pytest.mark.parametrize("body, status, reason", [
    ({"pair_id": "no-such-pair", "choice": "left"}, 404, "no pair"),
    ({"choice": "left"}, 400, "pair_id"),
    ({"pair_id": "PAIR", "choice": "both"}, 400, "choice must be one of left, right, tie"),
    ({"pair_id": "PAIR", "choice": "left", "winner": "left"}, 400, "unknown field"),
    ({"pair_id": "PAIR", "choice": "left", "rater": 7}, 400, "rater"),
    ({"pair_id": "PAIR", "choice": "left", "rater": "x" * 65}, 400, "rater"),
    ({"pair_id": "PAIR", "choice": "left", "rater": "a\nb"}, 400, "rater"),
    (["PAIR", "left"], 400, "JSON object"),
    ("not json", 400, "JSON object"),
    ({"pair_id": "PAIR", "choice": "left", "rater": "x" * 5000}, 400, "over 4096 bytes"),
])
def test_bad_votes_are_refused_and_change_nothing(study, body, status, reason):
    _, store, client = study
    pair_id = client.get("/api/pair").get_json()["pair_id"]
    data = json.dumps(body).replace("PAIR", pair_id) if not isinstance(body, str) else body
    answer = client.post("/api/vote", data=data, content_type="application/json")
    assert answer.status_code == status and reason in answer.get_json()["error"]
    assert stored(store) == []
    assert client.post("/api/vote", json={"pair_id": pair_id, "choice": "left"}).status_code == 200


def test_a_pair_is_answered_once(study):
    _, store, client = study
    pair_id = client.get("/api/pair").get_json()["pair_id"]
    assert client.post("/api/vote", json={"pair_id": pair_id, "choice": "left"}).status_code == 200
    again = client.post("/api/vote", json={"pair_id": pair_id, "choice": "right"})
    assert again.status_code == 400 and "answered already" in again.get_json()["error"]
    assert stored(store) == [(pair_id, "left", None)]


def test_only_the_sweeps_sample_files_are_served(study):
    catalog, _, client = study
    pair_id = client.get("/api/pair").get_json()["pair_id"]
    run = catalog.units[0].a.run
    for url in ["/clip/../results.json", f"/clip/{pair_id}/../../results.json",
                f"/clip/{pair_id}/..%2F..%2F{run}%2Fresults.json", f"/clip/{pair_id}/top.gif",
                f"/clip/{pair_id}/%2Fetc%2Fpasswd", "/clip/%2Fetc%2Fpasswd/left.gif",
                f"/clip/{pair_id}/left.gif/..", "/clip/no-such-pair/left.gif",
                f"/{run}/samples/hello.gif", "/etc/passwd", "//etc/passwd"]:
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert b"GIF" not in answer.data and b"schema_version" not in answer.data


# --- scheduling, load, restarts ------------------------------------------------------------

def test_every_pair_of_groups_is_compared_equally_often(study):
    catalog, store, client = study
    shown = client.get("/api/pair").get_json()
    for k in range(60):
        shown = client.post("/api/vote", json={"pair_id": shown["pair_id"],
                                               "choice": "left"}).get_json()
    pairs = [store.pair(pair_id) for pair_id, _, _ in stored(store)]
    per_groups = Counter(frozenset((p.left.group, p.right.group)) for p in pairs)
    assert sorted(per_groups.values()) == [20, 20, 20]
    assert sorted(Counter(frozenset((p.left.path, p.right.path)) for p in pairs).values()) == \
        [10] * 6
    left = Counter(p.left.group for p in pairs)
    assert all(10 < left[group] < 30 for group in catalog.groups)  # sides drawn at random


def test_pairs_shown_and_not_answered_count_while_they_are_recent(study):
    catalog, _, _ = study
    busy = {frozenset((u.a.path, u.b.path)): 1 for u in catalog.units
            if frozenset(u.groups) != frozenset((B, C))}
    left, right = next_pair(catalog.units, Counter(busy))
    assert {left.group, right.group} == {B, C}


def test_eight_clients_store_every_vote_exactly_once(study):
    catalog, store, _ = study
    acknowledged, lock = [], threading.Lock()

    def rater(k: int, url: str) -> None:
        shown = get_pair(url)
        for _ in range(40):
            status, answer = post(url, {"pair_id": shown["pair_id"], "choice": "right",
                                        "rater": f"rater{k}"})
            assert status == 200
            with lock:
                acknowledged.append(shown["pair_id"])
            shown = answer

    with serving(catalog, store) as url:
        raters = [threading.Thread(target=rater, args=(k, url)) for k in range(8)]
        [t.start() for t in raters]
        [t.join() for t in raters]
        same = get_pair(url)["pair_id"]  # 8 clients send one pair's vote at once: one counts
        answers = []
        racers = [threading.Thread(target=lambda: answers.append(
            post(url, {"pair_id": same, "choice": "left"})[0])) for _ in range(8)]
        [t.start() for t in racers]
        [t.join() for t in racers]
    assert len(acknowledged) == 320 and sorted(answers) == [200] + [400] * 7
    votes = stored(store)
    assert len(votes) == 321 and {v[0] for v in votes} == {*acknowledged, same}
    assert Counter(v[2] for v in votes) == {**{f"rater{k}": 40 for k in range(8)}, None: 1}
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_killed_server_keeps_every_vote_and_goes_on(sweep, tmp_path):
    db = tmp_path / "study.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "text2sign.study", "serve", str(sweep), "--port", "0",
         "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = next(line for line in process.stdout if line.startswith("serving "))
        url = line.split()[1].rstrip("/")
        assert url.startswith("http://127.0.0.1:")  # this machine only, unless --host
        shown = get_pair(url)
        for _ in range(20):
            status, shown = post(url, {"pair_id": shown["pair_id"], "choice": "left"})
            assert status == 200
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    catalog = find_clips(sweep)
    store = Store(db, catalog.root)  # the restarted server's store
    assert len(stored(store)) == 20
    client = create_app(catalog, store).test_client()
    answer = client.post("/api/vote", json={"pair_id": shown["pair_id"], "choice": "tie"})
    assert answer.status_code == 200  # the pair shown before the kill is still answered
    assert len(stored(store)) == 21


# --- the statistics ------------------------------------------------------------------------

def test_wilson_interval_by_hand_and_as_scipy_gives_it():
    low, high = wilson(8, 10)  # by hand: (0.8 + 1.96²/20 ∓ 1.96·√(0.016 + 1.96²/400)) / 1.384
    assert (low, high) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    for k, n in [(0, 5), (3, 7), (10, 10), (17, 40)]:
        ci = stats.binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert wilson(10, 16) == pytest.approx((0.38641, 0.81519), abs=1e-5)  # 9 wins, 2 ties
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_bradley_terry_on_small_matrices():
    # counts equal to their expectation under strengths 4:2:1 make those the exact MLE
    wins = np.array([[0, 4, 4], [2, 0, 4], [1, 2, 0]], float)
    assert bradley_terry(wins) == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-6)
    assert bradley_terry(np.array([[0, 3], [1, 0]], float)) == pytest.approx([0.75, 0.25],
                                                                            abs=1e-6)
    scores = np.array([[0, 7, 3], [3, 0, 2], [3, 6, 0]], float)  # any matrix: the MLE equations
    p = bradley_terry(scores)
    n = scores + scores.T
    assert (n * p[:, None] / (p[:, None] + p[None, :])).sum(1) == pytest.approx(scores.sum(1))
    # a group that never lost: no finite maximum
    assert bradley_terry(np.array([[0, 3, 1], [0, 0, 2], [0, 1, 0]], float)) is None


def test_sign_test_by_hand():
    assert sign_test(9, 1) == pytest.approx(22 / 1024)  # 2·(C(10,9) + C(10,10)) / 2¹⁰
    assert sign_test(6, 2) == pytest.approx(74 / 256)
    assert sign_test(3, 3) == 1.0 and math.isnan(sign_test(0, 0))


# group a, group b, votes for a, votes for b, ties
VOTES = [(A, B, 6, 2, 2), (A, C, 3, 3, 0), (B, C, 1, 5, 2)]


def test_analyze_reports_the_study(study, tmp_path, monkeypatch, capsys):
    catalog, store, _ = study
    clips = {unit.a.group: unit.a for unit in catalog.units} | {
        unit.b.group: unit.b for unit in catalog.units}
    for a, b, for_a, for_b, ties in VOTES:  # on both sides, by two raters and one anonymous
        for k, winner in enumerate([a] * for_a + [b] * for_b + [None] * ties):
            left, right = (a, b) if k % 2 else (b, a)
            pair = store.show(lambda loads: (clips[left], clips[right]))
            choice = "tie" if winner is None else "left" if winner == left else "right"
            store.vote(pair.id, choice, [None, "r1", "r2"][k % 3])
    assert len(read_votes(store.path)[1]) == 24
    monkeypatch.setattr(cli, "PLOTS", {})
    monkeypatch.setattr(cli, "sample_sheets", lambda study, out: "not drawn in this test")
    out = tmp_path / "analysis"
    assert cli.main([str(catalog.root), "--study", str(store.path), "--output-dir", str(out)]) == 0
    assert "human evaluation: 24 votes on 3 groups" in capsys.readouterr().out
    report = (out / "ABLATION_RESULTS_REPORT.txt").read_text()
    section = report[report.index("Human evaluation"):report.index("Plots and samples")]
    cells = [[cell.strip() for cell in line.split("|")] for line in section.splitlines()
             if line.count("|") == 7 and not set(line) <= set("-+|")]
    rows = {row[1]: row for row in cells if row[0].isdigit()}  # the ranking
    tests = {(row[0], row[1]): row for row in cells if row[0] in (A, B)}  # the sign tests
    # win rate (wins + ties/2) / votes: A 10/16, B 5/18, C 9/14; Wilson as checked above
    assert rows[A][2:7] == ["16", "9", "2", "5", "0.625 [0.386, 0.815]"]
    assert rows[B][2:6] == ["18", "3", "4", "11"] and rows[B][6].startswith("0.278 ")
    assert rows[C][2:6] == ["14", "8", "2", "4"] and rows[C][6].startswith("0.643 ")
    assert [rows[g][0] for g in (C, A, B)] == ["1", "2", "3"]  # Bradley-Terry order
    # sign tests: 6:2 p=74/256, 3:3 p=1, 1:5 p=14/64; Holm: 3·0.219=0.656 for both, 1
    assert tests[A, B][2:8] == ["6", "2", "2", "0.289", "0.656", "not significant"]
    assert tests[A, C][2:8] == ["3", "3", "0", "1", "1", "not significant"]
    assert tests[B, C][2:8] == ["1", "5", "2", "0.219", "0.656", "not significant"]
    assert "Votes: 24" in section and "(4 ties), by 2 rater(s) with an id and 9 vote(s) " \
        "without one" in section
    assert "0.7 (10)" in section  # A over B: (6 + 2/2) / 10
    markdown = (out / "report.md").read_text()
    assert "## Human evaluation" in markdown and "| ema=true text_encoder=frozen | 16 |" in markdown


def test_analyze_refuses_a_missing_or_foreign_study_database(sweep, tmp_path, capsys):
    out = str(tmp_path / "out")
    assert cli.main([str(sweep), "--study", str(tmp_path / "none.sqlite"), "--output-dir",
                     out]) == 2
    assert "--study" in (err := capsys.readouterr().err) and "no such file" in err
    with sqlite3.connect(tmp_path / "other.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    assert cli.main([str(sweep), "--study", str(tmp_path / "other.sqlite"), "--output-dir",
                     out]) == 2
    assert "is not a study database" in capsys.readouterr().err


# --- the page in a browser -----------------------------------------------------------------

def browser(profile: Path):
    """Headless Debian chromium driven by Selenium (.ci/run installs chromium and its driver),
    with its profile in `profile`, so that it leaves nothing in /tmp."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (binary and driver):
        pytest.skip("chromium and chromedriver are not installed: apt-get install chromium "
                    "chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=900,700", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_three_votes_by_clicking_in_a_real_browser(study, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    catalog, store, _ = study
    driver = browser(tmp_path / "chromium")
    try:
        with serving(catalog, store) as url:
            driver.get(url + "/")
            wait = WebDriverWait(driver, 20)
            body = driver.find_element(By.TAG_NAME, "body")
            shown = [wait.until(lambda d: body.get_attribute("data-pair"))]
            driver.find_element(By.ID, "rater").send_keys("signer-1")
            for choice in ("left", "tie", "right"):
                wait.until(lambda d: all(d.execute_script(
                    f"return document.getElementById('{side}').naturalWidth") > 0
                    for side in ("left", "right")))  # both clips loaded and decoded
                driver.find_element(By.ID, f"vote-{choice}").click()
                shown.append(wait.until(lambda d: (p := body.get_attribute("data-pair"))
                                        != shown[-1] and p))
            status = driver.find_element(By.ID, "status").text
    finally:
        driver.quit()
    assert status == "3 votes recorded"
    assert stored(store) == [(shown[0], "left", "signer-1"), (shown[1], "tie", "signer-1"),
                             (shown[2], "right", "signer-1")]


# clips that go while the study runs, and the port (issue 27) --------------------------------

def test_a_missing_clip_is_404_and_its_pairs_are_no_longer_offered(tmp_path, caplog):
    """Once: a GIF deleted while serving gave a 500 with a traceback, and its pairs kept
    coming; a run removed while serving kept being shown."""
    sweep = write_sweep(tmp_path / "sweep")
    catalog = find_clips(sweep)
    store = Store(tmp_path / "study.sqlite", catalog.root)
    client = create_app(catalog, store).test_client()
    shown = client.get("/api/pair").get_json()
    left = store.pair(shown["pair_id"]).left
    (catalog.root / left.path).unlink()
    answer = client.get(shown["left"])
    assert answer.status_code == 404
    assert answer.get_json() == {"error": "this clip was removed from the sweep: get another pair"}
    assert f"{left.path} is gone: 2 pair(s) of clips no longer offered, 4 left" in caplog.text
    for _ in range(20):
        pair = store.pair(client.get("/api/pair").get_json()["pair_id"])
        assert left.path not in (pair.left.path, pair.right.path)
    run = next(unit.a.run for unit in catalog.units if unit.a.run != left.run)
    shutil.rmtree(catalog.root / run)  # a run removed while serving
    for _ in range(20):
        answer = client.get("/api/pair")
        if answer.status_code != 200:
            break
        pair = store.pair(answer.get_json()["pair_id"])
        assert run not in (pair.left.run, pair.right.run)
    assert {unit.a.run for unit in catalog.units} | {unit.b.run for unit in catalog.units} \
        <= {p.name for p in sweep.iterdir()} - {run}
    for unit in list(catalog.units):  # every clip gone: nothing left to offer, said so
        for clip in (unit.a, unit.b):
            (catalog.root / clip.path).unlink(missing_ok=True)
    answer = client.get("/api/pair")
    assert answer.status_code == 404 and "no pair of clips is left" in answer.get_json()["error"]


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_the_port_is_checked_before_the_sweep_is_read(tmp_path, capsys, port):
    with pytest.raises(SystemExit) as exited:
        study_main(["serve", str(tmp_path / "no_sweep"), "--port", port])
    assert exited.value.code == 2
    assert (f"error: argument --port: {port!r} is not a port: give 0 to 65535"
            in capsys.readouterr().err)
