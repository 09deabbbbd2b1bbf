"""The mechanism section (when the mechanism stage ran): for every link, the signature onset (probe or
head score), the capability onset and the load-bearing onset on one time axis, whether the link is
load-bearing, and the intervention's drop curves (``source="mechanism"`` rows)."""
from __future__ import annotations

import html

import pandas as pd

from emergelab.report import fmt
from emergelab.report import plot as P
from emergelab.report.capabilities import metric_name, rung_order
from emergelab.report.tables import table

ONSETS = (("signature_onset", "signature (probe or head score)", "circle"),
          ("capability_onset", "capability", "diamond"),
          ("load_bearing_onset", "load-bearing (intervention)", "star"))


def _label(m: dict) -> str:
    return f"{m.get('signal')} → {m.get('task')}" + (f" · {m['rung']}" if m.get("rung") else "")


def _one_metric(mechs: list[dict]) -> list[dict]:
    """One record per (signal, task, axis, rung): the first metric in the list (its own order)."""
    seen, out = set(), []
    for m in mechs:
        key = (m.get("signal"), m.get("task"), m.get("axis"), m.get("rung"))
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def timeline(mechs: list[dict], axis: str, fid: str) -> P.Plot:
    """The three onsets of each link (rows) on one axis, each with its interval as an error bar."""

    recs = _one_metric([m for m in mechs if (m.get("axis") or "step") == axis])
    rows = [_label(m) for m in recs]
    fig = P.new(1, 1)
    for i, (key, name, symbol) in enumerate(ONSETS):
        xs, ys, lo, hi, text = [], [], [], [], []
        for m, row in zip(recs, rows):
            o = m.get(key)
            if not o or o.get("x") is None:
                continue
            x = float(o["x"])
            ci = o.get("ci") if o.get("ci") and None not in o["ci"] else [x, x]
            xs.append(x)
            ys.append(row)
            lo.append(max(x - min(ci), 0))
            hi.append(max(max(ci) - x, 0))
            text.append(f"{row}<br>{name} onset: {fmt.with_unit(axis, x)} {fmt.interval(axis, o.get('ci'))}"
                        f"<br>status: {m.get('status', 'n/a')}")
        x_plot = P.step_x(xs) if axis == "step" else xs
        fig.add(P.scatter(x=x_plot, y=ys, mode="markers", name=name, legendgroup=key,
                                 marker={"color": P.colour(i), "size": 10, "symbol": symbol},
                                 error_x={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo,
                                          "color": P.colour(i), "thickness": 1.2},
                                 text=text, hovertemplate="%{text}<extra></extra>"))
    steps = [float(m[k]["x"]) for m in recs for k, _, _ in ONSETS if m.get(k) and m[k].get("x") is not None]
    if axis == "step":
        P.step_axis(fig, steps or [0, 1], 1, 1, fmt.AXIS_UNIT["step"])
    else:
        fig.xaxis(1, 1, fmt.AXIS_UNIT[axis], type="log" if axis in ("params", "flops") else "linear")
    fig.yaxis(1, 1, "link · rung", type="category", categoryorder="array", categoryarray=rows[::-1])
    alt = ("For each mechanism link and rung (rows), the onset of its signature (probe selectivity or head score), of the "
           "capability and of load-bearing (the intervention's specificity staying positive), with their intervals, "
           f"on the {fmt.AXIS_NAME[axis]} axis. A missing marker: that onset was not reached.")
    return P.finish(fig, fid, f"Mechanism onsets on one {fmt.AXIS_NAME[axis]} axis", alt, 140 + 26 * max(len(rows), 2))


def drop_figure(df: pd.DataFrame, task: str, fid: str) -> P.Plot | None:
    """The intervention rows of one capability: each metric (drop, control drop, specificity) vs step per rung."""

    d = df[(df.source == "mechanism") & (df.task == task) & (df.step >= 0)]
    if d.empty:
        return None
    metrics = sorted(set(d.metric))
    rungs = [r for r in rung_order(df) if r in set(d.rung)]
    fig = P.new(1, len(metrics), titles=[m.replace("_", " ") for m in metrics])
    for j, metric in enumerate(metrics, start=1):
        g = d[d.metric == metric].groupby(["rung", "step"]).agg(value=("value", "mean"), se=("stderr", "mean")).reset_index()
        for rung in rungs:
            v = g[g.rung == rung].sort_values("step")
            i = rungs.index(rung)
            fig.add(P.band(P.step_x(v.step), v.value - v.se, v.value + v.se, P.colour(i), rung), 1, j)
            fig.add(P.scatter(x=P.step_x(v.step), y=v.value, mode="lines+markers", name=rung, legendgroup=rung,
                                     showlegend=j == 1, line={"color": P.colour(i), "width": 1.4},
                                     marker={"symbol": P.SYMBOLS[i % 8], "size": 5},
                                     text=[f"{rung} · step {fmt.step(r.step)}<br>{metric} = {fmt.pm(r.value, r.se)}" for r in v.itertuples()],
                                     hovertemplate="%{text}<extra></extra>"), 1, j)
        fig.hline(0, 1, j)
        P.step_axis(fig, g.step, 1, j, fmt.AXIS_UNIT["step"])
    fig.yaxis(1, 1, "capability score lost (intervention)")
    alt = (f"{task}: what the intervention costs the capability against training step, one line per rung: "
           + ", ".join(metrics) + " (drop: score without minus with the intervention; control: the same for a random "
           "intervention of the same size; specificity: the difference). Shaded: ± standard error.")
    return P.finish(fig, fid, f"{task}: intervention drop curves", alt, 330)


def section(df: pd.DataFrame, expl: dict) -> str:
    """'' when neither the mechanism list nor mechanism rows exist."""
    mechs = expl.get("mechanisms") or []
    tasks = sorted(set(df[df.source == "mechanism"].task))
    if not mechs and not tasks:
        return ""
    out = []
    for axis in sorted({m.get("axis") or "step" for m in mechs}, key=lambda a: a != "step"):
        out.append(timeline(mechs, axis, f"fig-mech-onsets-{axis}").html())
    if mechs:
        rows = [[html.escape(str(m.get("signal", ""))), html.escape(str(m.get("task", ""))),
                 html.escape(metric_name(m["metric"]) if m.get("metric") else ""), html.escape(str(m.get("rung") or "all")),
                 *[html.escape(fmt.with_unit(m.get("axis") or "step", m[k]["x"]) + " " + fmt.interval(m.get("axis") or "step", m[k].get("ci")))
                   if m.get(k) and m[k].get("x") is not None else "—" for k, _, _ in ONSETS],
                 f"<b>{html.escape(str(m.get('status', '')))}</b>", html.escape(str(m.get("why", "")))] for m in mechs]
        out.append(table(rows, ["signal", "capability", "metric", "rung", "signature onset", "capability onset",
                                "load-bearing onset", "status", "why"], "mechanisms", caption="Mechanism links"))
    for i, task in enumerate(tasks):
        fig = drop_figure(df, task, f"fig-mech-drop-{i}")
        if fig is not None:
            out.append(fig.html())
    return "".join(out)
