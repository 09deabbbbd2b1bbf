"""Assemble ``report/index.html``: headline verdicts first, then study, training, capabilities,
verdicts, latent variables, attention heads and fine-tuning — one file, no network needed."""
from __future__ import annotations

import html
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from emergelab import faults
from emergelab.errors import UserError
from emergelab.explain.formulas import evaluate
from emergelab.io import atomic_write_text, read_json
from emergelab.layout import Layout
from emergelab.measurements import METRICS, read_table
from emergelab.report import figures as F
from emergelab.report.finetune import section as finetune_section
from emergelab.report.suite import section as suite_section
from emergelab.report.template import page

VERDICT_ORDER = {"emergent": 0, "transient": 1, "metric-induced": 2, "uncertain": 3, "smooth": 4, "not learned": 5,
                 "insufficient data": 6}


def _fit_curves(expl: dict) -> dict:
    """(task, metric, axis, rung) → (x, y, model name, onset CI) for the report's overlays."""
    out = {}
    for c in expl.get("curves", []):
        best = c.get("best_model")
        fit = (c.get("fits") or {}).get(best) if best else None
        xs = [x for x in c.get("x") or [] if x is not None and x > 0]
        if not fit or c.get("axis") not in ("step", "params") or len(xs) < 2:
            continue
        x = np.logspace(np.log10(min(xs)), np.log10(max(xs)), 120)
        try:
            y = np.asarray(evaluate(best, fit["params"], x), dtype=float)
        except Exception:  # noqa: BLE001 — a fit the report cannot draw is skipped, not fatal
            continue
        onset = c.get("onset") or {}
        ci = tuple(onset["ci"]) if onset.get("ci") and None not in onset["ci"] else None
        out[(c["task"], c["metric"], c["axis"], c.get("rung"))] = (x, y, best, ci)
    return out


def _table(rows: list[list[str]], header: list[str], cls: str = "") -> str:
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _img(fig) -> str:
    if fig is None:
        return ""
    return (f"<figure><img src='{fig.uri}' alt='{html.escape(fig.alt, quote=True)}'>"
            f"<figcaption>{html.escape(fig.title)}</figcaption></figure>")


def _verdict_rows(expl: dict, axes=("params", "step")) -> list[dict]:
    rows = [v for v in expl.get("curves", []) if v.get("axis") in axes and v.get("task") != "heldout"]
    return sorted(rows, key=lambda v: (VERDICT_ORDER.get(v.get("verdict"), 9), v.get("task", ""), v.get("metric", ""),
                                       v.get("axis", ""), str(v.get("rung") or "")))


def _fmt_verdict(v: str, label: str | None = None) -> str:
    """The verdict as a badge; ``label`` (schema 2: 'emergent (0.97)', with its share of replicates) as its text."""
    return f"<span class='v v-{html.escape(v.replace(' ', '-'))}'>{html.escape(label or v)}</span>"


def headline(expl: dict) -> str:
    """The first screen: which capabilities are emergent, under which metric, and why."""
    verdicts = _verdict_rows(expl)
    tasks = sorted({v["task"] for v in verdicts})
    if not tasks:
        return "<p>No capability verdicts yet: run the explain stage.</p>"
    items = []
    for task in tasks:
        tv = [v for v in verdicts if v["task"] == task]
        hits = [v for v in tv if v.get("verdict") in ("emergent", "transient", "metric-induced")]
        if hits:
            metrics = sorted({v["metric"] for v in hits}, key=lambda m: (METRICS.get(m, (1, "continuous"))[1] != "discontinuous", m))
            axes = sorted({v["axis"] for v in hits})
            items.append(f"<li><b>{html.escape(task)}</b> is judged {_fmt_verdict(hits[0]['verdict'], hits[0].get('label'))} under "
                         f"{html.escape(', '.join(metrics))} along {html.escape(', '.join(axes))}.</li>")
            rank = {m: i for i, m in enumerate(metrics)}
            hits.sort(key=lambda v: (rank[v["metric"]], v["axis"] != "params", -len(str(v.get("rung") or ""))))
            for v in hits[:3]:
                where = f"along {v['axis']}" + (f" for {v['rung']}" if v.get("rung") else " across rungs")
                items.append(f"<li><b>{html.escape(task)}</b> is {_fmt_verdict(v['verdict'], v.get('label'))} under "
                             f"<b>{html.escape(v['metric'])}</b> {html.escape(where)}: {html.escape(v.get('evidence', ''))}</li>")
        else:
            common = pd.Series([v.get("verdict") for v in tv]).mode()
            items.append(f"<li><b>{html.escape(task)}</b>: no emergence found; most curves are "
                         f"{_fmt_verdict(str(common.iloc[0]) if len(common) else 'n/a')}.</li>")
    return "<ul class='headline'>" + "".join(items) + "</ul>"


def build_report(study_dir: str | Path, spec_text: str = "") -> Path:
    """Write ``report/index.html`` from the study's measurements and explanations (``spec_text``: the
    resolved spec as YAML, shown in the study section)."""
    lay = Layout(Path(study_dir))
    df = read_table(lay.measurements)
    expl = read_json(lay.explanations) if lay.explanations.exists() else {}
    tasks = [t for t in sorted(df[(df.source == "eval")].task.unique()) if t != "heldout"]
    sections = [("Answer", headline(expl)), ("The study", _study_section(lay, spec_text))]
    if lay.suite_audit.exists():  # an external suite: what each checkpoint is, and what the audit flags
        sections.append(("Suite integrity", suite_section(read_json(lay.suite_audit))))
    sections.append(("Training", _img(F.training_loss(df))))
    sections.append(("Capabilities", _capabilities_section(df, tasks, _fit_curves(expl))))
    sections.append(("Verdicts", _verdicts_section(expl)))
    sections.append(("Latent variables", _latents_section(df, expl, tasks)))
    heads = _img(F.head_scores(df))
    if heads:
        sections.append(("Attention heads", heads))
    ft = finetune_section(df, lambda title, uri, alt: _img(F.Figure(title, uri, alt)))
    if ft:
        sections.append(("Fine-tuning", ft))
    for i, _ in enumerate(sections):  # test hook: a kill while the page is being assembled
        faults.point(lay.report.parent / f"section-{i}")
    atomic_write_text(lay.report, page(f"emergelab report — {lay.root.name}", sections))
    return lay.report


def _study_section(lay: Layout, spec_text: str) -> str:
    timings = read_json(lay.timings) if lay.timings.exists() else {}
    ck = sorted(lay.root.glob("runs/*/checkpoints/*/checkpoint.json"))
    versions = read_json(ck[-1]).get("versions", {}) if ck else {}
    return (f"<p>Study directory <code>{html.escape(str(lay.root))}</code>; machine {html.escape(platform.machine())}, "
            f"{html.escape(platform.system())}; versions {html.escape(json.dumps(versions))}.</p>"
            + (_table([[html.escape(k), f"{v:.1f} s"] for k, v in timings.items()], ["stage", "wall time (last run)"])
               if timings else "")
            + f"<details><summary>Resolved spec</summary><pre>{html.escape(spec_text)}</pre></details>")


def _capabilities_section(df, tasks: list[str], fits: dict) -> str:
    cap = "".join(f"<h3>{html.escape(t)}</h3>" + "".join(_img(F.capability(df, t, m, fits)) for m in F.paired_metrics(df, t))
                  for t in tasks)
    return cap or "<p>No evaluation rows.</p>"


def _verdicts_section(expl: dict) -> str:
    vrows = [[html.escape(v["task"]), html.escape(v["metric"]), html.escape(v["axis"]), html.escape(str(v.get("rung") or "all")),
              _fmt_verdict(v.get("verdict", ""), v.get("label")), html.escape(str(v.get("best_model") or "")),
              html.escape(v.get("evidence", ""))] for v in _verdict_rows(expl, ("params", "step", "flops", "loss"))]
    return (_table(vrows, ["task", "metric", "axis", "rung", "verdict", "best model", "evidence"], "verdicts")
            if vrows else "<p>No verdicts.</p>")


def _latents_section(df, expl: dict, tasks: list[str]) -> str:
    lat = ""
    for latent in sorted(df[df.source == "probe"].task.unique()):
        lat += _img(F.probe_heatmaps(df, latent))
        if tasks:
            lat += _img(F.latent_vs_capability(df, latent, tasks[0], F.paired_metrics(df, tasks[0])[0]))
    leads = expl.get("latent_leads", [])
    if leads:
        lat += _table([[html.escape(str(x.get(k, ""))) for k in ("latent", "task", "metric", "rung", "latent_onset",
                                                                 "capability_onset", "lead", "relation")] for x in leads],
                      ["latent", "task", "metric", "rung", "latent onset", "capability onset", "lead (steps)", "relation"])
    return lat or "<p>No probe rows.</p>"


def require_study(path: Path) -> None:
    if not (path / "measurements.parquet").exists():
        raise UserError(f"{path} has no measurements.parquet; run `emergelab study --out {path}` first")
