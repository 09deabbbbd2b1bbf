"""Per mechanism link: when the signal appears, when the capability emerges, and when the model *uses* it.

Three onsets on one step axis, per link ``(signal, task)``, rung and capability metric:

- the **signature onset**: the signal's own onset (a probed latent's selectivity, ``explain.latent``, or a
  head score's, ``explain.heads``);
- the **capability onset**: the capability curve's onset when it is judged emergent or transient;
- the **load-bearing onset**: the first checkpoint from which the intervention's *specificity* (drop
  minus the control's drop, rows ``source="mechanism"``, ``docs/interventions.md``) stays significantly
  positive to the last checkpoint — the running median of three of ``specificity − max(z·stderr,
  min_gain)`` stays above 0 (``stays_above``, at least two checkpoints). Replicates resample each
  checkpoint's specificity at its stderr; the onset is reported when ``verdict_share`` of them have one,
  with the central ``ci_level`` interval of their onsets.

Status: ``load-bearing`` when there is a load-bearing onset (removing the signal takes the capability
with it, more than removing as much at random); ``observed`` when only the signature forms; ``neither``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from emergelab.explain.latent import median3, stays_above
from emergelab.measurements import parse_mechanism_metric

NOMINAL_SE = 0.02  # a specificity without a bootstrap stderr (n_bootstrap 0)


def mechanism_table(df: pd.DataFrame) -> pd.DataFrame:
    """(signal, task, metric, k_shot, rung, step, quantity, value, se): mechanism rows averaged over seeds."""
    d = df[(df.source == "mechanism") & np.isfinite(df.value)]
    cols = ["signal", "task", "metric", "k_shot", "rung", "step", "quantity", "value", "se"]
    if d.empty:
        return pd.DataFrame(columns=cols)
    parsed = [parse_mechanism_metric(m) for m in d.metric]
    keep = np.array([p is not None for p in parsed], dtype=bool)
    if not keep.any():
        return pd.DataFrame(columns=cols)
    d = d[keep].copy()
    d["quantity"], d["cap_metric"], d["signal"] = (list(x) for x in zip(*[p for p in parsed if p is not None]))
    d["var"] = np.where(np.isfinite(d.stderr), d.stderr, NOMINAL_SE) ** 2
    g = d.groupby(["signal", "task", "cap_metric", "k_shot", "rung", "step", "quantity"], as_index=False).agg(
        value=("value", "mean"), var=("var", "mean"), k=("seed", "nunique"))
    g["se"] = np.sqrt(g["var"] / g["k"])
    return g.rename(columns={"cap_metric": "metric"})[cols]


def load_bearing_onset(xs: np.ndarray, v: np.ndarray, se: np.ndarray, *, z: float, floor: float, n_rep: int,
                       share: float, level: float, rng: np.random.Generator) -> dict | None:
    """{"x", "ci"} of the first checkpoint from which specificity stays significantly positive, or None."""
    bar = np.maximum(z * se, floor)
    i = int(stays_above(median3(v - bar), 0.0)[0])
    ci, persistence = None, None
    if n_rep > 0:
        reps = v[None] + rng.normal(0, 1, (n_rep, len(v))) * se[None]
        ir = stays_above(median3(reps - bar[None]), 0.0)
        persistence = float(np.mean(ir >= 0))
        found = xs[ir[ir >= 0]]
        if len(found) >= 2:
            a = (1 - level) / 2
            ci = [float(np.quantile(found, a)), float(np.quantile(found, 1 - a))]
    if i < 0 or (persistence is not None and persistence < share):
        return None
    return {"x": float(xs[i]), "ci": ci}


def _fmt(o: dict | None) -> str:
    if o is None:
        return "none"
    ci = o.get("ci")
    return f"step {o['x']:,.0f}" + (f" [{ci[0]:,.0f}, {ci[1]:,.0f}]" if ci else "")  # steps read as integers


def _why(signal, task, metric, g: pd.DataFrame, sig, cap, lb, cap_verdict: str | None) -> str:
    last = g[g.step == g.step.max()].set_index("quantity")
    q = lambda name: (float(last.value.get(name, np.nan)), float(last.se.get(name, np.nan)))  # noqa: E731
    (d, dse), (c, cse) = q("drop"), q("control_drop")
    parts = [f"at the last checkpoint removing {signal} lowers {task} {metric} by {d:.3g} ± {dse:.2g} "
             f"(control {c:.3g} ± {cse:.2g})",
             f"load-bearing from {_fmt(lb)}" if lb else "never load-bearing to the end",
             f"signature from {_fmt(sig)}" if sig else "no signature onset"]
    parts.append(f"capability onset {_fmt(cap)}" if cap else f"the capability does not emerge here ({cap_verdict or 'no curve'})")
    return "; ".join(parts)


def mechanism_records(df: pd.DataFrame, onsets: list[dict], curves: list[dict], opts) -> list[dict]:
    """One record per (link, rung, metric, k) with mechanism rows: the three onsets, status and why."""
    mt = mechanism_table(df)
    sig_of = {(o["latent"], o["rung"]): o for o in onsets if o["axis"] == "step"}
    cap_of = {(c["task"], c["metric"], c["k_shot"], c["rung"]): c for c in curves if c["axis"] == "step"}
    out = []
    keys = ["signal", "task", "metric", "k_shot", "rung"]
    for n, (key, g) in enumerate(mt.groupby(keys, sort=True)):
        signal, task, metric, k_shot, rung = key
        spec_rows = g[g.quantity == "specificity"].sort_values("step")
        if spec_rows.step.nunique() < 2:
            continue
        lb = load_bearing_onset(spec_rows.step.to_numpy(float), spec_rows.value.to_numpy(float), spec_rows.se.to_numpy(float),
                                z=opts.load_bearing_z, floor=opts.min_gain, n_rep=opts.n_bootstrap, share=opts.verdict_share,
                                level=opts.ci_level, rng=np.random.default_rng([opts.seed, 4, n]))
        so = sig_of.get((signal, rung))
        sig = {"x": so["onset"], "ci": so["onset_ci"]} if so and so["onset"] is not None else None
        c = cap_of.get((task, metric, int(k_shot), rung))
        emerged = c is not None and c["verdict"] in ("emergent", "transient") and c.get("onset")
        cap = {"x": c["onset"]["x"], "ci": c["onset"].get("ci")} if emerged else None
        status = "load-bearing" if lb else "observed" if sig else "neither"
        out.append({"signal": signal, "task": task, "metric": metric, "k_shot": int(k_shot), "axis": "step", "rung": rung,
                    "signature_onset": sig, "capability_onset": cap, "load_bearing_onset": lb, "status": status,
                    "why": _why(signal, task, metric, g, sig, cap, lb, None if c is None else c["verdict"])})
    return out


def add_evidence(curves: list[dict], records: list[dict]) -> None:
    """Append, to each emergent or transient step curve's evidence, what its links' interventions say."""
    by: dict[tuple, list[dict]] = {}
    for r in records:
        by.setdefault((r["task"], r["metric"], r["k_shot"], r["rung"]), []).append(r)
    for c in curves:
        links = by.get((c["task"], c["metric"], c["k_shot"], c["rung"]))
        if c["axis"] != "step" or not links or c["verdict"] not in ("emergent", "transient"):
            continue
        said = [f"{r['signal']} {r['status']}" + (f" from {_fmt(r['load_bearing_onset'])}" if r["load_bearing_onset"]
                                                  else f" (signature from {_fmt(r['signature_onset'])})" if r["signature_onset"] else "")
                for r in links]
        c["evidence"] = "; ".join([c["evidence"], "mechanism: " + ", ".join(said)]) if c["evidence"] else "mechanism: " + ", ".join(said)
