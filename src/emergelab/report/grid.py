"""The verdict grid: one row per capability, one coloured cell per (metric, axis) with its verdict and
share; a click opens the cell's evidence (every curve's sentence) and its figure."""
from __future__ import annotations

import html

import pandas as pd

from emergelab.report import fmt
from emergelab.report.answer import badge
from emergelab.report.capabilities import AXES, Capability, Cell, metric_name, metric_order
from emergelab.report.capfigs import Panels, cell_figure

MAX_EVIDENCE_OPEN = 12


def columns(caps: list[Capability]) -> list[tuple[str, str]]:
    metrics = metric_order({m for c in caps for m in c.metrics})
    axes = [a for a in AXES if any(a == k[1] for c in caps for k in c.cells)]
    return [(m, a) for m in metrics for a in axes if any((m, a) in c.cells for c in caps)]


def _button(cell: Cell) -> str:
    multi = len(cell.curves) > 1
    n = len(cell.curves)
    k = cell.counts()[cell.verdict]
    sub = f"{k}/{n} rungs" if multi else (fmt.share(cell.share) if cell.share is not None else "")
    title = cell.text or cell.verdict
    return (f"<button type='button' class='cell v-{cell.verdict.replace(' ', '-')}' data-panel='{cell.id}' "
            f"aria-expanded='false' aria-controls='{cell.id}' title='{html.escape(title, quote=True)}'>"
            f"{html.escape(cell.verdict)}<small>{html.escape(sub)}</small></button>")


def table(caps: list[Capability]) -> str:
    cols = columns(caps)
    metrics = list(dict.fromkeys(m for m, _ in cols))
    head1 = "<th scope='col' rowspan='2'>capability</th>" + "".join(
        f"<th scope='colgroup' colspan='{sum(m == c[0] for c in cols)}'>{html.escape(metric_name(m))}</th>" for m in metrics)
    head2 = "".join(f"<th scope='col'>{fmt.AXIS_SHORT[a]}</th>" for _, a in cols)
    rows, notes = [], {cap.name: same_note(cap) for cap in caps}
    common = len(set(notes.values())) == 1 and len(caps) > 1
    for cap in caps:
        note = f"<br><small>{notes[cap.name]}</small>" if notes[cap.name] and not common else ""
        cells = "".join(f"<td>{_button(cap.cells[c])}</td>" if c in cap.cells else "<td class='na'>—</td>" for c in cols)
        rows.append(f"<tr><th scope='row'><a href='#{cap.slug}'>{html.escape(cap.name)}</a>{note}</th>{cells}</tr>")
    foot = f"<p class='hint'>On every capability: {notes[caps[0].name]}.</p>" if common and notes[caps[0].name] else ""
    return (f"<div class='scroll'><table class='verdicts grid'><thead><tr>{head1}</tr><tr>{head2}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>{foot}")


def same_note(cap: Capability) -> str:
    """'per-token accuracy and 1 − edit distance equal exact match at every point (shown once)'."""
    parts = [f"{' and '.join(v)} equal{'s' * (len(v) == 1)} {metric_name(k)}" for k, v in cap.same_as.items()]
    return html.escape("; ".join(parts) + " at every point (shown once)") if parts else ""


def _evidence(cell: Cell) -> str:
    items = []
    for c in cell.curves:
        who = c.get("rung") or ("all rungs" if cell.axis != "params" else "final checkpoints")
        extra = [c["seed_agreement"]] if c.get("seed_agreement") else []
        extra += c.get("flags") or []
        items.append(f"<li><b>{html.escape(who)}</b> {badge(c.get('verdict', ''), c.get('verdict_share'))} "
                     f"{html.escape(c.get('evidence', ''))}"
                     + (f" <small>({html.escape('; '.join(extra))})</small>" if extra else "") + "</li>")
    body = f"<ul class='evidence'>{''.join(items)}</ul>"
    if len(items) > MAX_EVIDENCE_OPEN:
        body = f"<details><summary>Evidence for {len(items)} curves</summary>{body}</details>"
    return body


def panels(df: pd.DataFrame, caps: list[Capability]) -> str:
    """The hidden detail panel of every cell: its evidence and its figure (rendered when opened)."""
    out = []
    for cap in caps:
        drawer = Panels(df, cap)
        for cell in cap.cells.values():
            fig = cell_figure(drawer, cell, f"fig-{cell.id}")
            out.append(f"<div class='cell-panel' id='{cell.id}' hidden><h3>{html.escape(cap.name)}: "
                       f"{html.escape(metric_name(cell.metric))} vs {fmt.AXIS_NAME[cell.axis]} "
                       f"<a href='#{cap.slug}'>(section)</a></h3>{_evidence(cell)}{fig.html()}</div>")
    return "<div class='panels'>" + "".join(out) + "</div>"


def section(df: pd.DataFrame, caps: list[Capability]) -> str:
    if not any(c.cells for c in caps):
        return "<p>No verdicts yet: run the explain stage.</p>"
    legend = ("<p class='hint'>Rows: capabilities; columns: metric and axis. A cell is the verdict and its share of the "
              "bootstrap replicates (on the step axis: of the rungs). Click a cell for its evidence and figure.</p>")
    return legend + table(caps) + panels(df, caps)
