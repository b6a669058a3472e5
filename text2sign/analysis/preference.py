"""Human preferences from the votes of a blind side-by-side study (python -m text2sign.study):
per group the win rate with a 95% Wilson interval, the pairwise preference matrix, a
Bradley-Terry ranking, and a sign test per pair of groups with Holm's correction.

A tie ("no difference") counts as half a win for each side in the win rates, the matrix and
Bradley-Terry, and is left out of the sign tests, which ask whether raters who saw a
difference preferred one side.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy import optimize, special, stats
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from text2sign.analysis import AnalysisError
from text2sign.analysis.formatting import md_table, md_text, num, text_table
from text2sign.analysis.stats import ALPHA, NAN, holm
from text2sign.analysis.study import Study
from text2sign.analysis.votes import read_votes

Z95 = float(stats.norm.ppf(0.975))


@dataclass
class Preferences:
    database: Path
    labels: list[str]  # the groups with votes, in the analysis's order
    wins: np.ndarray  # wins[i, j]: votes for group i over group j
    ties: np.ndarray  # ties[i, j] = ties[j, i]: votes of no difference between i and j
    raters: int  # distinct rater ids
    anonymous: int  # votes without a rater id
    unmatched: int  # votes whose two runs are not in two groups of the analysis
    left: int  # decided votes for the clip shown on the left
    decided: int  # votes that were not ties

    @property
    def votes(self) -> int:
        return int(self.wins.sum() + self.ties.sum() / 2)

    @property
    def scores(self) -> np.ndarray:
        """Wins with ties as half a win for each side."""
        return self.wins + self.ties / 2

    @property
    def comparisons(self) -> np.ndarray:
        return self.wins + self.wins.T + self.ties


def read_preferences(study: Study, database: Path, results_dirs: list[str]) -> Preferences:
    """The study's votes counted by the analysis's groups. A vote's runs are looked up in the
    sweep the database names, else in the results directories (a sweep that was moved)."""
    try:
        sweep, votes = read_votes(database)
    except (sqlite3.DatabaseError, KeyError) as error:
        raise AnalysisError(f"--study {database} is not a study database ({error}): give the "
                            "file that python -m text2sign.study serve --db wrote") from error
    where = {run.path.resolve(): study.label(group) for group in study.groups
             for run in group.runs}

    def group(run: str) -> str | None:
        places = [Path(sweep) / run, *(Path(d) / run for d in results_dirs)]
        return next((where[p.resolve()] for p in places if p.resolve() in where), None)

    matched = [(group(v.left_run), group(v.right_run), v) for v in votes]
    matched = [(a, b, v) for a, b, v in matched if a and b and a != b]
    voted = {label for a, b, _ in matched for label in (a, b)}
    labels = [study.label(g) for g in study.groups if study.label(g) in voted]
    k = {label: i for i, label in enumerate(labels)}
    wins, ties = np.zeros((len(labels), len(labels))), np.zeros((len(labels), len(labels)))
    for a, b, vote in matched:
        if vote.choice == "tie":
            ties[k[a], k[b]] += 1
            ties[k[b], k[a]] += 1
        else:
            winner, loser = (a, b) if vote.choice == "left" else (b, a)
            wins[k[winner], k[loser]] += 1
    decided = [vote for _, _, vote in matched if vote.choice != "tie"]
    return Preferences(database, labels, wins, ties,
                       raters=len({v.rater for _, _, v in matched if v.rater}),
                       anonymous=sum(not v.rater for _, _, v in matched),
                       unmatched=len(votes) - len(matched),
                       left=sum(v.choice == "left" for v in decided), decided=len(decided))


def wilson(successes: float, n: float) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (successes may be fractional: ties)."""
    if n == 0:
        return NAN, NAN
    p = successes / n
    centre = p + Z95 ** 2 / (2 * n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n ** 2))
    return (centre - half) / (1 + Z95 ** 2 / n), (centre + half) / (1 + Z95 ** 2 / n)


def bradley_terry(scores: np.ndarray) -> np.ndarray | None:
    """Strengths p (summing to 1) that maximise the likelihood of `scores` (scores[i, j]: wins
    of i over j) under P(i beats j) = p_i / (p_i + p_j); None when no finite maximum exists:
    some set of groups never lost to the rest (the win graph is not strongly connected)."""
    n = len(scores)
    if n < 2 or connected_components(csr_matrix(scores > 0), connection="strong")[0] > 1:
        return None

    def loss_and_gradient(theta: np.ndarray) -> tuple[float, np.ndarray]:
        margin = theta[:, None] - theta[None, :]  # log p_i - log p_j
        loss = float(np.sum(scores * np.logaddexp(0, -margin)))
        beaten = special.expit(-margin)  # P(j beats i)
        return loss, (scores.T * (1 - beaten)).sum(axis=1) - (scores * beaten).sum(axis=1)

    fit = optimize.minimize(loss_and_gradient, np.zeros(n), jac=True, method="BFGS",
                            options={"gtol": 1e-10})
    return special.softmax(fit.x)


def sign_test(wins: float, losses: float) -> float:
    """Two-sided exact binomial test of wins against losses at 1/2 (ties left out)."""
    n = int(wins + losses)
    return float(stats.binomtest(int(wins), n).pvalue) if n else NAN


def report_lines(prefs: Preferences, markdown: bool = False) -> list[str]:
    """The reports' section on the study: plain text, or markdown."""
    table = md_table if markdown else text_table
    lines = ["## Human evaluation" if markdown else "Human evaluation", "",
             *(f"- {md_text(line)}" if markdown else line for line in overview(prefs))]
    if len(prefs.labels) < 2:
        return lines
    for title, (header, rows) in [
            ("Win rates and Bradley-Terry ranking", ranking(prefs)),
            ("Preference matrix: how often the row was preferred to the column (ties as half), "
             "and the number of votes", matrix(prefs)),
            ("Sign tests per pair (ties left out), Holm-corrected", sign_tests(prefs))]:
        lines += ["", f"### {title}" if markdown else title,
                  *([""] if markdown else []), *table(header, rows)]
    return lines


def overview(prefs: Preferences) -> list[str]:
    ties = int(prefs.ties.sum() / 2)
    lines = [f"Votes: {prefs.votes} from {prefs.database} ({ties} ties), by {prefs.raters} "
             f"rater(s) with an id" + (f" and {prefs.anonymous} vote(s) without one"
                                       if prefs.anonymous else "")]
    if prefs.unmatched:
        lines.append(f"Left out: {prefs.unmatched} vote(s) whose runs are not in two groups of "
                     "this analysis")
    if prefs.decided:
        p = sign_test(prefs.left, prefs.decided - prefs.left)
        lines.append(f"Position: the left clip won {prefs.left} of {prefs.decided} decided votes "
                     f"(sides are drawn at random; binomial p={num(p, 3)})")
    lines.append("Counting: a tie is half a win for each side in the win rates, the matrix and "
                 "Bradley-Terry, and is left out of the sign tests; win rate = (wins + ties/2) / "
                 "votes, 95% Wilson interval; Bradley-Terry strengths sum to 1, P(a beats b) = "
                 f"p_a / (p_a + p_b), maximum likelihood; significant when the Holm p < {ALPHA}")
    return lines


def ranking(prefs: Preferences) -> tuple[list[str], list[list[str]]]:
    strengths = bradley_terry(prefs.scores)
    order = (np.argsort(-strengths, kind="stable") if strengths is not None
             else np.argsort(-prefs.scores.sum(1) / prefs.comparisons.sum(1), kind="stable"))
    rows = []
    for rank, i in enumerate(order, 1):
        n, score = prefs.comparisons[i].sum(), prefs.scores[i].sum()
        low, high = wilson(score, n)
        rows.append([str(rank), prefs.labels[i], str(int(n)), str(int(prefs.wins[i].sum())),
                     str(int(prefs.ties[i].sum())), str(int(prefs.wins[:, i].sum())),
                     f"{num(score / n, 3)} [{num(low, 3)}, {num(high, 3)}]",
                     num(strengths[i], 3) if strengths is not None else "no finite estimate"])
    return ["rank", "group", "votes", "wins", "ties", "losses", "win rate [95% Wilson]",
            "Bradley-Terry"], rows


def matrix(prefs: Preferences) -> tuple[list[str], list[list[str]]]:
    n, scores = prefs.comparisons, prefs.scores
    rows = [[a, *("" if i == j else f"{num(scores[i, j] / n[i, j], 3)} ({int(n[i, j])})"
                  if n[i, j] else "no votes" for j in range(len(prefs.labels)))]
            for i, a in enumerate(prefs.labels)]
    return ["row over column", *prefs.labels], rows


def sign_tests(prefs: Preferences) -> tuple[list[str], list[list[str]]]:
    pairs = list(combinations(range(len(prefs.labels)), 2))
    p_values = [sign_test(prefs.wins[i, j], prefs.wins[j, i]) for i, j in pairs]
    rows = []
    for (i, j), p, p_holm in zip(pairs, p_values, holm(p_values)):
        preferred = prefs.labels[i] if prefs.wins[i, j] > prefs.wins[j, i] else prefs.labels[j]
        verdict = ("no decided votes" if math.isnan(p_holm) else
                   f"{preferred} preferred" if p_holm < ALPHA else "not significant")
        rows.append([prefs.labels[i], prefs.labels[j], str(int(prefs.wins[i, j])),
                     str(int(prefs.wins[j, i])), str(int(prefs.ties[i, j])), num(p, 3),
                     num(p_holm, 3), verdict])
    return ["group a", "group b", "a preferred", "b preferred", "ties", "p", "p (Holm)",
            "verdict"], rows
