"""`emergelab export-suite`: a study's trained checkpoints as a Hugging Face cache (an offline suite)."""
from __future__ import annotations

from pathlib import Path

import typer
import yaml

from emergelab.cli.app import app, console
from emergelab.errors import UserError
from emergelab.layout import Layout
from emergelab.models import checkpoint as ckpt
from emergelab.models.export import export_ladder
from emergelab.study import load_resolved


@app.command("export-suite")
def export_suite(
    study_dir: Path = typer.Argument(..., help="A study directory with trained checkpoints."),
    cache: Path = typer.Option(..., "--cache", help="The Hub cache to write (HF_HUB_CACHE; HF_HOME/hub by default)."),
    org: str = typer.Option("emergelab", "--org", help="The Hub organisation of the exported ids (<org>/<rung>)."),
) -> None:
    """Export every rung of a trained study as <org>/<rung> at revisions stepN, in the layout huggingface_hub
    writes, and print the ladder of a suite study over it (load it with HF_HUB_CACHE=CACHE HF_HUB_OFFLINE=1)."""
    lay = Layout(study_dir)
    spec = load_resolved(lay)
    if spec.is_suite:
        raise UserError(f"{study_dir} analyses an external suite; export-suite exports a study's trained rungs")
    found = {r.name: ckpt.list_checkpoints(lay.checkpoints(r.name)) for r in spec.ladder}
    found = {k: v for k, v in found.items() if v}
    if not found:
        raise UserError(f"{study_dir} has no trained checkpoints yet; run `emergelab study` (or train) first")
    revisions = export_ladder(found, cache, org)
    ladder = [{"name": repo.split("/", 1)[1], "model": repo, "revisions": revs, "tokens_per_step": spec.tokens_per_step()}
              for repo, revs in revisions.items()]
    console.print(f"exported {sum(map(len, revisions.values()))} checkpoints of {len(revisions)} rungs to {cache}")
    typer.echo(yaml.safe_dump({"ladder": ladder}, sort_keys=False, default_flow_style=None))
