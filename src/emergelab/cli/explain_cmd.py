"""`emergelab explain STUDY_DIR`: fit, score and judge every capability curve of a measurement table."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from emergelab.cli.app import app, console, stdout
from emergelab.errors import UserError
from emergelab.io import read_json
from emergelab.layout import Layout
from emergelab.spec import ExplainOptions
from emergelab.study import run_stages

VERDICT_STYLE = {"emergent": "bold magenta", "transient": "magenta", "metric-induced": "yellow", "smooth": "green",
                 "uncertain": "cyan", "not learned": "dim", "insufficient data": "dim"}


def _onset_cell(rec: dict) -> str:
    from emergelab.explain.verdict import fmt_num

    o = rec.get("onset")
    if not o or rec["verdict"] not in ("emergent", "transient"):
        return "—"
    ci = o.get("ci")
    return f"{fmt_num(o['x'])}" + (f" [{fmt_num(ci[0])}, {fmt_num(ci[1])}]" if ci else "")


def verdict_table(result: dict):
    """A rich table of the verdicts, one row per curve."""
    from rich.table import Table

    from emergelab.explain.curves import AXIS_LABEL
    from emergelab.explain.formulas import MODELS

    table = Table(title="Verdicts", show_lines=False, header_style="bold")
    for col in ("task", "metric", "k", "axis", "rung", "best model", "onset [CI]", "verdict", "evidence"):
        table.add_column(col, overflow="fold")
    for rec in result["curves"]:
        best = rec.get("best_model")
        table.add_row(rec["task"], rec["metric"], str(rec["k_shot"]), rec["axis"], rec["rung"] or "—",
                      MODELS[best].label.format(x=AXIS_LABEL[rec["axis"]]) if best else "—", _onset_cell(rec),
                      f"[{VERDICT_STYLE.get(rec['verdict'], '')}]{rec.get('label', rec['verdict'])}[/]", rec["evidence"])
    return table


@app.command()
def explain(
    study_dir: Path = typer.Argument(..., help="Study directory (or a directory holding only measurements.parquet)."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write explanations made with other options here (default STUDY_DIR/explanations.json)."),
    threshold: Optional[float] = typer.Option(
        None, "--threshold", help="Probe selectivity above which a latent is decodable (default 0.1)."),
    n_bootstrap: Optional[int] = typer.Option(
        None, "--n-bootstrap", help="Bootstrap resamples for onset intervals (default 200)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the bootstrap (default 0)."),
) -> None:
    """Fit linear, power-law, sigmoid and breakpoint models to every capability curve, score
    breakthroughness and linearity, test exact match against p^L, time latent onsets, and give each
    curve a verdict (smooth, emergent, metric-induced, transient, not learned, uncertain) with its share
    of replicates and its evidence.

    On a study directory this is the study's explain stage: it combines new parts (after `emergelab
    evaluate DIR`), follows the spec's `explain:` options and takes the study's lock."""
    from pydantic import ValidationError

    from emergelab.explain.runner import run_explain

    given = {k: v for k, v in {"threshold": threshold, "n_bootstrap": n_bootstrap, "seed": seed}.items() if v is not None}
    lay = Layout(study_dir)
    if lay.spec.exists():
        if given and out is None:
            raise UserError("a study's explanations follow its spec's explain: options; to explain with other "
                            "options, add --out FILE (the study's own explanations.json is kept)")
        run_stages(study_dir, ["explain"], console=console)
        if not given and out is None:
            _show(read_json(lay.explanations), lay.explanations)
            return
    try:
        options = ExplainOptions(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from None
    out_path = out if out is not None else lay.explanations
    _show(run_explain(lay.measurements, out_path, options), out_path)


def _show(result: dict, path: Path) -> None:
    stdout.print(verdict_table(result))
    counts = ", ".join(f"{n} {v}" for v, n in result["summary"]["verdicts"].items() if n)
    console.print(f"wrote {path}: {result['summary']['n_curves']} curves ({counts or 'none'})")
