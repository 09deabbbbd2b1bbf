"""The first screen: what was studied (world, ladder, seeds, budget), then one answer line per
capability — its verdict and share, the metric and axis it holds on, the onset with its interval, the
linked signal's lead, and (when the mechanism stage ran) whether that link is load-bearing."""
from __future__ import annotations

import html

import pandas as pd

from emergelab.report import fmt
from emergelab.report.capabilities import FINDINGS, Capability, Cell, metric_name, rung_order


def badge(verdict: str, share=None, extra: str = "") -> str:
    text = verdict + (f" {fmt.share(share)}" if share is not None else "")
    return (f"<span class='v v-{html.escape(verdict.replace(' ', '-'))}'>{html.escape(text)}</span>"
            + (f" <small>{html.escape(extra)}</small>" if extra else ""))


def _world(spec: dict) -> str:
    w = spec.get("world") or "corpus"
    args = spec.get("world_args") or {}
    if w == "mixture":
        parts = [f"{c.get('world')} ({fmt.num(100 * c.get('weight', 0))} %)" for c in args.get("components", [])]
        return f"mixture of {', '.join(parts)}" if parts else w
    shown = ", ".join(f"{k} {v}" for k, v in args.items() if not isinstance(v, (dict, list)))
    return f"{w}" + (f" ({shown})" if shown else "")


def studied(df: pd.DataFrame, spec: dict) -> str:
    """One paragraph: world, ladder, seeds and training budget."""
    tr = df[df.source.isin(["train", "eval"]) & (df.rung != "") & (df.step >= 0)]
    rungs = rung_order(df)
    size = df[df.rung != ""].groupby("rung").n_params.max()
    seeds = sorted(set(int(s) for s in tr.seed)) if len(tr) else sorted(set(int(s) for s in df.seed))
    last = tr.groupby(["rung", "seed"]).agg(step=("step", "max"), tokens=("tokens", "max"), flops=("flops", "max"))
    ladder = ", ".join(f"{html.escape(r)} ({fmt.count(size[r])})" for r in rungs)
    parts = [f"<b>World</b> {html.escape(_world(spec))}" if spec else "",
             f"<b>Ladder</b> {len(rungs)} rung{'s' * (len(rungs) != 1)}: {ladder} params",
             f"<b>Seeds</b> {len(seeds)} ({', '.join(map(str, seeds))})"]
    if len(last):
        parts.append(f"<b>Budget</b> {fmt.step(last.step.max())} steps, {fmt.count(last.tokens.max())} tokens per run, "
                     f"{fmt.sci(last.flops.sum())} FLOPs in all")
    objectives = spec.get("objectives") if spec else None
    if objectives:
        parts.append(f"<b>Objective</b> {html.escape(', '.join(map(str, objectives)))}")
    return "<p class='studied'>" + " · ".join(p for p in parts if p) + "</p>"


def _onset(cell: Cell) -> str:
    c = cell.onset_curve()
    if c is None:
        return ""
    o = c["onset"]
    where = f" on {c['rung']}" if c.get("rung") else ""
    return f"onset {fmt.with_unit(cell.axis, o['x'])} {fmt.interval(cell.axis, o.get('ci'))}{where}".rstrip()


def _where(cell: Cell) -> str:
    return f"{metric_name(cell.metric)} vs {fmt.AXIS_NAME[cell.axis]}"


def _cell_text(cell: Cell) -> str:
    """A cell in words: 'smooth (0.95)' or 'emergent in 4/5 rungs'."""
    if len(cell.curves) > 1:
        return cell.text
    return cell.verdict + (f" ({fmt.share(cell.share)})" if cell.share is not None else "")


def lead_text(leads: list[dict], cap: Capability, cell: Cell) -> str:
    """The linked latent's lead over the capability onset the answer quotes (else the best other one)."""
    mine = [x for x in leads if x.get("task") == cap.task and int(x.get("k_shot", 0)) == cap.k_shot]
    if not mine:
        return ""
    oc = cell.onset_curve()
    rung = oc.get("rung") if oc else None
    key = lambda x: (x["metric"] != cell.metric, x["axis"] != cell.axis, x.get("rung") != rung, x["latent"])  # noqa: E731
    x = min(mine, key=key)
    axis, where = x["axis"], f" on {x['rung']}" if x.get("rung") else ""
    name = f"latent <b>{html.escape(x['latent'])}</b>"
    ci = fmt.interval(axis, x.get("lead_ci"))
    if x.get("relation") == "lead":
        said = f"{name} leads by {html.escape(fmt.on_axis(axis, x['lead']))} {fmt.AXIS_SHORT[axis]} {ci}"
    elif x.get("relation") == "lag":
        said = f"{name} lags by {html.escape(fmt.on_axis(axis, -x['lead']))} {fmt.AXIS_SHORT[axis]} {ci}"
    else:
        said = f"{name} sets in with it (lead {html.escape(fmt.signed(axis, x['lead']))} {ci})"
    return said + html.escape(where) + (f" ({html.escape(metric_name(x['metric']))})" if x["metric"] != cell.metric else "")


def _signature_lead(ms: list[dict]) -> str:
    """', signature leads by 250 steps on R3': the last record (largest rung) with both onsets."""
    both = [m for m in ms if (m.get("signature_onset") or {}).get("x") is not None
            and (m.get("capability_onset") or {}).get("x") is not None]
    if not both:
        return ""
    m = both[-1]
    axis, d = m.get("axis") or "step", m["capability_onset"]["x"] - m["signature_onset"]["x"]
    rel = "leads by" if d > 0 else "lags by" if d < 0 else "sets in with it"
    amount = f" {fmt.on_axis(axis, abs(d))} {fmt.AXIS_SHORT[axis]}" if d else ""
    return f", signature {rel}{amount}" + (f" on {m['rung']}" if m.get("rung") else "")


def mechanism_text(mechs: list[dict], cap: Capability, metric: str | None = None) -> str:
    """'heads/induction: load-bearing in 2/4 rungs' for each linked signal of the capability, counted over
    the records of ``metric`` (the answer's; one record per rung and metric)."""
    mine = [m for m in mechs if m.get("task") == cap.task and (metric is None or m.get("metric") == metric)]
    if not mine:
        return ""
    out = []
    for signal in sorted({m["signal"] for m in mine}):
        ms = [m for m in mine if m["signal"] == signal]
        n_lb = sum(m.get("status") == "load-bearing" for m in ms)
        status = (f"load-bearing in {n_lb}/{len(ms)}" if n_lb else
                  f"{ms[0].get('status', 'n/a')}" + (f" in {len(ms)}" if len(ms) > 1 else ""))
        unit = "" if len(ms) == 1 else " rungs" if n_lb or len(ms) > 1 else ""
        out.append(f"{html.escape(signal)}: {html.escape(status + unit + _signature_lead(ms))}")
    return "mechanism " + "; ".join(out)


def answer_line(cap: Capability, leads: list[dict], mechs: list[dict]) -> str:
    cell = cap.answer_cell()
    if cell is None:
        return f"<li><b>{html.escape(cap.name)}</b>: no verdicts (run the explain stage).</li>"
    multi = len(cell.curves) > 1
    sub = f"in {cell.counts()[cell.verdict]}/{len(cell.curves)} rungs" if multi else cell.text
    parts = [f"<a href='#{cap.slug}'><b>{html.escape(cap.name)}</b></a> "
             + badge(cell.verdict, None if multi else cell.share, sub) + f" on {html.escape(_where(cell))}"]
    onset = _onset(cell)
    if onset:
        parts.append(html.escape(onset))
    other = cap.cells.get((cell.metric, "step" if cell.axis != "step" else "params"))
    if other is not None:
        parts.append(f"{fmt.AXIS_SHORT[other.axis]}: {html.escape(_cell_text(other))}")
    primary = cap.cells.get((cap.metrics[0], cell.axis))
    contrast = [c for (m, a), c in cap.cells.items() if a == cell.axis and m != cell.metric and c.verdict != cell.verdict]
    if primary is not None and primary is not cell:
        parts.append(f"{html.escape(metric_name(primary.metric))}: {html.escape(_cell_text(primary))}")
    elif contrast and cell.verdict in FINDINGS:
        parts.append(f"under {html.escape(metric_name(contrast[0].metric))}: {html.escape(_cell_text(contrast[0]))}")
    for extra in (lead_text(leads, cap, cell), mechanism_text(mechs, cap, cell.metric)):
        if extra:
            parts.append(extra)
    return "<li>" + " · ".join(parts) + "</li>"


def first_screen(df: pd.DataFrame, spec: dict, caps: list[Capability], expl: dict) -> str:
    if not caps:
        return studied(df, spec) + "<p>No capability was evaluated.</p>"
    if not expl.get("curves"):
        return studied(df, spec) + "<p>No verdicts yet: run the explain stage.</p>"
    leads, mechs = expl.get("latent_leads") or [], expl.get("mechanisms") or []
    return studied(df, spec) + "<ul class='answers'>" + "".join(answer_line(c, leads, mechs) for c in caps) + "</ul>"
