"""`emergelab worlds`: list the worlds, or show samples of one."""
from __future__ import annotations

from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from emergelab.cli.app import app, console, stdout
from emergelab.errors import UserError
from emergelab.spec import apply_override
from emergelab.study import validate
from emergelab.worlds import WORLDS, world_for_spec

worlds_app = typer.Typer(help="List worlds, or show one with `worlds show NAME`.", invoke_without_command=True,
                         no_args_is_help=False)
app.add_typer(worlds_app, name="worlds")


@worlds_app.callback()
def _list(ctx: typer.Context) -> None:
    """List the worlds, one line each (a table on a terminal, tab-separated lines in a pipe)."""
    if ctx.invoked_subcommand is not None:
        return
    if not stdout.is_terminal:  # piped: one tab-separated line per world, for grep and cut
        for name, cls in sorted(WORLDS.items()):
            typer.echo(f"{name}\t{cls.summary}")
        return
    table = Table(show_header=True, header_style="bold")
    table.add_column("world")
    table.add_column("what it is")
    for name, cls in sorted(WORLDS.items()):
        table.add_row(name, cls.summary)
    stdout.print(table)


@worlds_app.command("show")
def show(
    name: str = typer.Argument(..., help="World name."),
    set_: list[str] = typer.Option([], "--set", "-s", help="World parameter key=value, or tokenizer.KEY=value (text)."),
    corpus: Optional[str] = typer.Option(None, "--corpus", help="world text: the corpus (file, folder, JSONL/CSV, datasets)."),
    objectives: str = typer.Option("clm", "--objectives", help="world text: clm (BPE tokenizer) or mlm (WordPiece)."),
    seed: int = typer.Option(0, "--seed"),
    n: int = typer.Option(3, "--n", help="Samples to show."),
    seq_len: int = typer.Option(32, "--seq-len", help="Length of the sample blocks and latent sequences."),
) -> None:
    """Print sample documents, a sample task and latent labels of a world."""
    if name not in WORLDS:
        raise UserError(f"unknown world {name!r}; allowed: {', '.join(sorted(WORLDS))}")
    args: dict = {}
    top: dict = {}
    for a in set_:
        apply_override(top if a.strip().startswith("tokenizer.") else args, a)
    objs = [o.strip() for o in objectives.split(",") if o.strip()]
    spec = validate({"world": name, "world_args": args, "corpus": corpus, "objectives": objs, "seed": seed,
                     "train": {"seq_len": seq_len}, **top, "ladder": [{"name": "x", "n_layer": 1, "d_model": 8, "n_head": 1}]},
                    "--set")
    world = world_for_spec(spec, echo=lambda line: console.print(escape(line)))
    out = stdout.print
    info = world.describe()  # text: reads the corpus first, so its summary line comes before the samples
    out(f"[bold]{name}[/]: {escape(world.summary)}")
    out(f"parameters: {escape(str(spec.world_args))}")
    out(f"[bold]training blocks[/] (first {n} of seq_len {seq_len})")
    for block in world.train_blocks(n, seq_len):
        out("  " + escape(world.render(block))[:300])
    docs = world.documents(n)
    if docs:
        out("[bold]documents[/] (sentences separated by ' | ')")
        for doc in docs:
            out("  " + escape(" | ".join(world.render(s) for s in doc))[:300])
    for ts in world.tasks(n):
        out(f"[bold]task {escape(ts.name)}[/]: {escape(ts.description)} (chance {ts.chance})")
        for e in ts.examples[:n]:
            out(f"  prompt: {escape(world.render(e.prompt))[-200:]}  →  target: {escape(world.render(e.target))}")
    for ls in world.latents(n, seq_len):
        out(f"[bold]latent {escape(ls.name)}[/] ({ls.level}): {escape(ls.description)}; labels {escape(str(ls.label_names[:12]))}"
            + (" …" if len(ls.label_names) > 12 else ""))
        for ids, lab in zip(ls.input_ids[:n], ls.labels[:n]):
            if ls.level == "token":
                out("  " + escape(" ".join(f"{world.render([i])}/{ls.label_names[l] if l >= 0 else '-'}"
                                           for i, l in zip(ids, lab)))[:300])
            else:
                out(f"  {escape(world.render(ids))[:200]} → {ls.label_names[int(lab)]}")
    if info:
        out(f"[bold]summary[/]: {escape(str(info))}")
