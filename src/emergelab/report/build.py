"""Assemble ``report/index.html``: the answer first (what was studied, one line per capability), the
verdict grid, one section per capability, then latents, heads, mechanisms, training, every curve's
verdict (collapsed), fine-tuning and the study itself — one file, no network needed."""
from __future__ import annotations

import html
import json
import platform
from pathlib import Path

import pandas as pd
import yaml

from emergelab import faults
from emergelab.errors import UserError
from emergelab.io import atomic_write_text, read_json
from emergelab.layout import Layout
from emergelab.measurements import read_table
from emergelab.report import fmt, grid, mechanisms
from emergelab.report import signals as S
from emergelab.report.answer import badge, first_screen
from emergelab.report.capabilities import ANSWER_RANK, Capability, capabilities, metric_name
from emergelab.report.capfigs import capability_figure
from emergelab.report.finetune import section as finetune_section
from emergelab.report.grid import same_note
from emergelab.report.suite import section as suite_section
from emergelab.report.tables import table
from emergelab.report.template import page

AXIS_ORDER = {"params": 0, "step": 1, "flops": 2, "loss": 3}


def _spec(lay: Layout, spec_text: str) -> dict:
    text = spec_text or (lay.spec.read_text() if lay.spec.exists() else "")
    try:
        data = yaml.safe_load(text) if text else {}
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _links(lay: Layout) -> list[tuple[str, str]] | None:
    """The study's mechanism map from the data manifest, if it has one."""
    try:
        mech = lay.data_dir.manifest().get("mechanisms") if lay.data_dir.exists() else None
    except (OSError, ValueError):
        return None
    return None if mech is None else [(m["signal"], m["task"]) for m in mech]


def _lead_rows(leads: list[dict]) -> list[list[str]]:
    out = []
    for x in leads:
        a = x["axis"]
        out.append([html.escape(x["latent"]), html.escape(x["task"]), html.escape(metric_name(x["metric"])),
                    html.escape(x.get("rung") or "all"), badge(x.get("verdict", "")),
                    f"{fmt.on_axis(a, x['latent_onset'])} {fmt.interval(a, x.get('latent_onset_ci'))}",
                    f"{fmt.on_axis(a, x['capability_onset'])} {fmt.interval(a, x.get('capability_ci'))}",
                    f"{fmt.signed(a, x['lead'])} {fmt.interval(a, x.get('lead_ci'))}", html.escape(x.get("relation", ""))])
    return out


def shown_leads(expl: dict, caps: list[Capability]) -> list[dict]:
    """The leads over the metrics the report shows (a hidden identical metric's lead is the same lead)."""
    shown = {(c.task, c.k_shot): set(c.metrics) for c in caps}
    return [x for x in expl.get("latent_leads") or [] if x.get("metric") in shown.get((x.get("task"), int(x.get("k_shot", 0))), ())]


LEAD_HEADER = ["latent", "capability", "metric", "rung", "verdict", "latent onset", "capability onset", "lead", "relation"]


def capability_section(df: pd.DataFrame, cap: Capability, expl: dict, links) -> str:
    probes = sorted(set(df[df.source == "probe"].task))
    heads = sorted(set(df[(df.source == "heads") & (df.metric == "max")].task))
    leads = shown_leads(expl, [cap])
    latents, kinds = S.links_of(cap.task, links, leads, probes, heads)
    out = [f"<p class='hint'>{same_note(cap)}.</p>"] if cap.same_as else []
    out.append(capability_figure(df, cap, f"fig-{cap.slug}").html())
    if latents or kinds:
        out.append(S.signals_figure(df, cap, expl, latents, kinds, f"fig-{cap.slug}-signals").html())
    if leads:
        out.append(table(_lead_rows(leads), LEAD_HEADER, "leads", caption=f"Latent onsets against the onsets of {cap.name}"))
    return "".join(out)


def latents_section(df: pd.DataFrame, expl: dict, caps: list[Capability]) -> str:
    out = []
    for i, latent in enumerate(sorted(set(df[df.source == "probe"].task))):
        out.append(S.probe_heatmap(df, latent, f"fig-probe-{i}").html())
    onsets = expl.get("latent_onsets") or []
    if onsets:
        rows = [[html.escape(o["latent"]), html.escape(o.get("rung") or "all (final checkpoints)"), fmt.AXIS_SHORT[o["axis"]],
                 (fmt.on_axis(o["axis"], o["onset"]) if o.get("onset") is not None else "not reached")
                 + " " + fmt.interval(o["axis"], o.get("onset_ci")), "emb" if o.get("layer") == 0 else str(o.get("layer") or "—"),
                 fmt.num(o.get("final_selectivity")), fmt.num(o.get("persistence"))] for o in onsets]
        out.append(table(rows, ["latent", "rung", "axis", "onset [interval]", "layer", "final selectivity", "persistence"],
                         "onsets", caption=f"Latent onsets (selectivity above {fmt.num(onsets[0].get('threshold'))})"))
    leads = shown_leads(expl, caps)
    if leads:
        out.append(table(_lead_rows(leads), LEAD_HEADER, "leads", caption="Every latent lead over a linked capability"))
    return "".join(out) or "<p>No probe rows.</p>"


def all_curves(expl: dict) -> str:
    """Every explained curve's verdict and evidence, behind a summary (it is long)."""
    curves = sorted(expl.get("curves", []), key=lambda v: (v.get("task", ""), v.get("metric", ""), AXIS_ORDER.get(v.get("axis"), 9),
                                                            str(v.get("rung") or ""), ANSWER_RANK.get(v.get("verdict"), 9)))
    rows = [[html.escape(v["task"]), html.escape(metric_name(v["metric"])), fmt.AXIS_SHORT.get(v["axis"], v["axis"]),
             html.escape(str(v.get("rung") or "all")), badge(v.get("verdict", ""), v.get("verdict_share")),
             html.escape(v.get("seed_agreement", "")), html.escape(v.get("evidence", ""))] for v in curves]
    if not rows:
        return "<p>No verdicts: run the explain stage.</p>"
    return table(rows, ["task", "metric", "axis", "rung", "verdict (share)", "seeds", "evidence"], "all-curves",
                 caption="Every explained curve", open_max=0)


def _study_section(lay: Layout, spec_text: str) -> str:
    timings = read_json(lay.timings) if lay.timings.exists() else {}
    ck = sorted(lay.root.glob("runs/*/checkpoints/*/checkpoint.json"))
    versions = read_json(ck[-1]).get("versions", {}) if ck else {}
    return (f"<p>Study directory <code>{html.escape(str(lay.root))}</code>; machine {html.escape(platform.machine())}, "
            f"{html.escape(platform.system())}; versions {html.escape(json.dumps(versions))}.</p>"
            + (table([[html.escape(k), f"{v:.1f} s"] for k, v in timings.items()], ["stage", "wall time (last run)"])
               if timings else "")
            + (f"<details><summary>Resolved spec</summary><pre>{html.escape(spec_text)}</pre></details>" if spec_text else ""))


def build_report(study_dir: str | Path, spec_text: str = "") -> Path:
    """Write ``report/index.html`` from the study's measurements and explanations (``spec_text``: the
    resolved spec as YAML, shown in the study section)."""
    lay = Layout(Path(study_dir))
    df = read_table(lay.measurements)
    expl = read_json(lay.explanations) if lay.explanations.exists() else {}
    spec, links = _spec(lay, spec_text), _links(lay)
    caps = capabilities(df, expl)
    sections = [("verdict-grid", "Verdict grid", grid.section(df, caps))]
    sections += [(c.slug, f"Capability: {c.name}", capability_section(df, c, expl, links)) for c in caps]
    if (df.source == "probe").any():
        sections.append(("latent-variables", "Latent variables", latents_section(df, expl, caps)))
    heads = S.heads_figure(df, "fig-heads")
    if heads is not None:
        sections.append(("attention-heads", "Attention heads", heads.html()))
    mech = mechanisms.section(df, expl)
    if mech:
        sections.append(("mechanisms", "Mechanisms", mech))
    training = S.training_figure(df, "fig-training")
    if training is not None:
        sections.append(("training", "Training", training.html()))
    if lay.suite_audit.exists():  # an external suite: what each checkpoint is, and what the audit flags
        sections.append(("suite-integrity", "Suite integrity", suite_section(read_json(lay.suite_audit))))
    sections.append(("all-verdicts", "All verdicts", all_curves(expl)))
    ft = finetune_section(df)
    if ft:
        sections.append(("fine-tuning", "Fine-tuning", ft))
    sections.append(("the-study", "The study", _study_section(lay, spec_text)))
    for i, _ in enumerate(sections):  # test hook: a kill while the page is being assembled
        faults.point(lay.report.parent / f"section-{i}")
    head = "<section id='answer'>" + first_screen(df, spec, caps, expl) + "</section>"
    atomic_write_text(lay.report, page(f"emergelab report — {lay.root.name}", head, sections))
    return lay.report


def require_study(path: Path) -> None:
    if not (path / "measurements.parquet").exists():
        raise UserError(f"{path} has no measurements.parquet; run `emergelab study --out {path}` first")
