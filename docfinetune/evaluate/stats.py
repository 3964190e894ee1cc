"""Accuracy with Wilson intervals, per-field breakdowns, and paired comparisons of systems."""

from __future__ import annotations

import math
from statistics import NormalDist


def wilson_interval(correct: int, total: int, level: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (`correct` of `total`); None when total is 0.

    Unlike the normal approximation it stays inside [0, 1] and is sensible at 0/n and n/n,
    which matters with the few dozen test questions of one contract.
    """
    if total <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + level / 2)
    p = correct / total
    denominator = 1 + z * z / total
    center = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    # exactly 0 at 0/n and 1 at n/n (the formula gives them up to rounding)
    low = 0.0 if correct == 0 else max(0.0, center - half)
    high = 1.0 if correct == total else min(1.0, center + half)
    return low, high


def accuracy(verdicts: list[bool | None], level: float) -> dict:
    """correct / scored (questions without a reference answer are not scored) with its interval."""
    scored = [v for v in verdicts if v is not None]
    correct = sum(scored)
    interval = wilson_interval(correct, len(scored), level)
    return {
        "correct": correct,
        "scored": len(scored),
        "accuracy": correct / len(scored) if scored else None,
        "ci_low": interval[0] if interval else None,
        "ci_high": interval[1] if interval else None,
    }


def by_field(fields: list[str], verdicts: dict[str, list[bool | None]], level: float) -> dict:
    """{field: {system: accuracy(...)}} for the questions that name a field."""
    out = {}
    for name in sorted({f for f in fields if f}):
        rows = [i for i, f in enumerate(fields) if f == name]
        out[name] = {system: accuracy([v[i] for i in rows], level) for system, v in verdicts.items()}
    return out


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: how surprising the split of the discordant questions
    (one system right, the other wrong) would be if both systems were equally good."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(name_a: str, a: list[bool | None], name_b: str, b: list[bool | None]) -> dict:
    """Paired comparison on the questions both systems were scored on."""
    pairs = [(x, y) for x, y in zip(a, b) if x is not None and y is not None]
    only_a = sum(x and not y for x, y in pairs)
    only_b = sum(y and not x for x, y in pairs)
    return {
        "a": name_a, "b": name_b, "questions": len(pairs),
        "only_a": only_a, "only_b": only_b,
        "both": sum(x and y for x, y in pairs), "neither": sum(not x and not y for x, y in pairs),
        "p_value": mcnemar_p(only_a, only_b),
    }
