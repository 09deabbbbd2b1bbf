"""Calibration of the explain verdicts on generated curves whose truth is known: a confusion matrix.

Families (values in [0, 1], start level b ~ U(0, 0.3), amplitude A ~ U(0.4, 0.9), u = position along
the log axis in [0, 1]):

- smooth/linear: b + A·u (linear in log-x);
- smooth/power: b + A·(x^c − x_0^c)/(x_1^c − x_0^c), |c| ~ U(0.05, 0.35), either sign;
- smooth/satexp: b + A·(1 − e^{−k(t − t_0)}) normalised, k ~ U(0.5, 1.5) per decade;
- sharp: logistic in log-x, 10→90 % width ~ U(0.1, 0.3) decade, midpoint ~ U(t_0 + 1, t_1 − 1);
- mirage: token accuracy p linear in log-x from the start of the range (p ≥ 0.1 there), capped at
  p_hi ~ U(0.99, 1), with L ~ U{10 … 30} and EM = p^L: EM's 10→90 % rise ~ U(0.15, 0.5) decade, its
  midpoint ~ U(t_0 + 1, t_1 − 1) (draws whose p would start below 0.1 are redrawn); rows of both
  metrics and the task's answer_length row (token accuracy measured on n·L tokens, with its stderr);
- transient: a logistic rise (as sharp, midpoint ~ U(t_0 + 1, t_1 − 2.2)) times 1 − f·(a logistic
  fall ≥ 1 decade later, ending ≥ 0.8 decade before t_1), f ~ U(0.7, 1);
- flat: a constant ~ U(0.05, 0.5), with its chance row for half of the curves.

Axes: 9 rungs (params 10⁶ … 10¹⁰) and 20 log-spaced checkpoints (steps 10 … 10⁵). Noise: binomial with
n = 1,000 or n = 100 items per point (rows carry value and n). Run:

    OMP_NUM_THREADS=1 nice -n 19 python bench/explain_calibration.py [--per-family 200] [--replicates 200]
"""
from __future__ import annotations

import argparse
import os
import time
from collections import Counter

import numpy as np
from scipy.special import expit

from emergelab.explain import synthetic as S
from emergelab.explain.runner import explain_table

FAMILIES = ("linear", "power", "satexp", "sharp", "mirage", "transient", "flat")
TARGET = {"linear": ("emergent", "≤", 0.05), "power": ("emergent", "≤", 0.05), "satexp": ("emergent", "≤", 0.05),
          "sharp": ("emergent", "≥", 0.90), "mirage": ("metric-induced", "≥", 0.90),
          "transient": ("transient", "≥", 0.90), "flat": ("not learned", "≥", 0.95)}
COLUMNS = ("smooth", "emergent", "metric-induced", "transient", "not learned", "uncertain", "insufficient data")
K90 = 2 * np.log(9.0)


def axis_grid(axis: str) -> np.ndarray:
    if axis == "params":
        return np.round(np.logspace(6, 10, 9)).astype(np.int64)
    return np.unique(np.round(np.logspace(1, 5, 20)).astype(np.int64))


def logistic(t, mid, width):
    return expit(K90 / width * (t - mid))


def true_curve(family: str, t: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The noise-free curve of one family member (and, for mirage, its token accuracy and L)."""
    t0, t1 = float(t.min()), float(t.max())
    u = (t - t0) / (t1 - t0)
    b, A = rng.uniform(0, 0.3), rng.uniform(0.4, 0.9)
    if family == "linear":
        return b + A * u, {}
    if family == "power":
        c = rng.uniform(0.05, 0.35) * rng.choice([-1, 1])
        f = 10 ** (c * t)
        return b + A * (f - f[0]) / (f[-1] - f[0]), {}
    if family == "satexp":
        k = rng.uniform(0.5, 1.5)
        f = 1 - np.exp(-k * (t - t0))
        return b + A * f / f[-1], {}
    if family == "sharp":
        return b + A * logistic(t, rng.uniform(t0 + 1, t1 - 1), rng.uniform(0.1, 0.3)), {}
    if family == "transient":
        m1 = rng.uniform(t0 + 1, t1 - 2.2)
        m2 = rng.uniform(m1 + 1, t1 - 0.8)
        rise, fall = logistic(t, m1, rng.uniform(0.1, 0.3)), logistic(t, m2, rng.uniform(0.1, 0.3))
        return b + A * rise * (1 - rng.uniform(0.7, 1.0) * fall), {}
    if family == "flat":
        return np.full(len(t), rng.uniform(0.05, 0.5)), {"chance": rng.random() < 0.5}
    while True:  # p must be smooth: linear in log-x from the start of the range (no floor, no kink)
        L = int(rng.integers(10, 31))
        mid, width, p_hi = rng.uniform(t0 + 1, t1 - 1), rng.uniform(0.15, 0.5), rng.uniform(0.99, 1.0)
        p_mid, dp = 0.5 ** (1 / L), 0.9 ** (1 / L) - 0.1 ** (1 / L)  # EM = 0.5 at mid; Δp of its 10→90 % rise
        p = np.minimum(p_mid + dp / width * (t - mid), p_hi)
        if p[0] >= 0.1:
            return p ** L, {"p": p, "L": L}


def curve_rows(family: str, axis: str, n_items: int, rng: np.random.Generator, task: str) -> list[dict]:
    x = axis_grid(axis)
    y, extra = true_curve(family, np.log10(x.astype(float)), rng)
    em = rng.binomial(n_items, np.clip(y, 0, 1)) / n_items
    metric = "exact_match"
    rows = (S.ladder_rows(task, metric, x, em) if axis == "params" else S.step_rows(task, metric, x, em))
    for r in rows:
        r["n"] = n_items
    if "p" in extra:
        n_tok = n_items * extra["L"]
        p = rng.binomial(n_tok, extra["p"]) / n_tok
        prow = (S.ladder_rows(task, "token_accuracy", x, p) if axis == "params"
                else S.step_rows(task, "token_accuracy", x, p))
        for r, v in zip(prow, p):
            r.update(n=n_items, stderr=float(np.sqrt(max(v * (1 - v), 1.0 / n_tok) / n_tok)))
        rows += prow + [S.answer_length_row(task, extra["L"])]
    if extra.get("chance"):
        rows.append(S.chance_row(task, metric, float(y[0])))
    return rows


def run(per_family: int, n_rep: int, seed: int = 0) -> dict:
    """(family, axis, noise) -> Counter of verdicts of the exact-match curve."""
    out = {}
    opts = {"n_bootstrap": n_rep, "seed": seed}
    for axis in ("params", "step"):
        for n_items in (1000, 100):
            for f_i, family in enumerate(FAMILIES):
                rng = np.random.default_rng([seed, f_i, n_items, axis == "step"])
                rows = [r for k in range(per_family) for r in curve_rows(family, axis, n_items, rng, f"{family}{k:04d}")]
                res = explain_table(S.frame(rows), {**opts, "axes": (axis,)})
                out[(family, axis, n_items)] = Counter(c["verdict"] for c in res["curves"] if c["metric"] == "exact_match")
    return out


def print_table(counts: dict) -> list[str]:
    lines = [f"{'family':10s} {'axis':6s} {'n':>5s} " + " ".join(f"{c[:10]:>10s}" for c in COLUMNS)
             + "   target"]
    pooled: dict[str, Counter] = {}
    for (family, axis, n), c in counts.items():
        tot = sum(c.values())
        lines.append(f"{family:10s} {axis:6s} {n:5d} " + " ".join(f"{c[k] / tot:10.3f}" for k in COLUMNS))
        pooled.setdefault(family, Counter()).update(c)
    lines.append("")
    for family, c in pooled.items():
        v, op, goal = TARGET[family]
        rate = c[v] / sum(c.values())
        ok = rate <= goal if op == "≤" else rate >= goal
        lines.append(f"{family:10s} all          {v} {rate:.3f} (target {op} {goal:.2f}) {'met' if ok else 'MISSED'}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-family", type=int, default=200)
    ap.add_argument("--replicates", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t = time.time()
    load = os.getloadavg()[0]
    counts = run(a.per_family, a.replicates, a.seed)
    print("\n".join(print_table(counts)))
    print(f"\n{a.per_family} curves per family × 2 axes × 2 noise levels, {a.replicates} replicates each; "
          f"{time.time() - t:.0f} s, load average {load:.2f} at start, {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
