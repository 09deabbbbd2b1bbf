"""`emergelab worlds`: list the synthetic worlds, or show samples of one."""
from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from emergelab.cli.app import app, console

worlds_app = typer.Typer(help="List worlds, or show one with `worlds show NAME`.", invoke_without_command=True,
                         no_args_is_help=False)
app.add_typer(worlds_app, name="worlds")


@worlds_app.callback()
def _list(ctx: typer.Context) -> None:
    """List the worlds, one line each."""
    if ctx.invoked_subcommand is not None:
        return
    from emergelab.worlds import WORLDS

    table = Table(show_header=True, header_style="bold")
    table.add_column("world")
    table.add_column("what it is")
    for name, cls in sorted(WORLDS.items()):
        table.add_row(name, cls.summary)
    console.print(table)


@worlds_app.command("show")
def show(
    name: str = typer.Argument(..., help="World name."),
    set_: list[str] = typer.Option([], "--set", "-s", help="World parameter: key=value."),
    seed: int = typer.Option(0, "--seed"),
    n: int = typer.Option(3, "--n", help="Samples to show."),
) -> None:
    """Print sample documents, a sample task and latent labels of a world."""
    from emergelab.errors import UserError
    from emergelab.spec import validate
    from emergelab.worlds import WORLDS, make_world

    if name not in WORLDS:
        raise UserError(f"unknown world {name!r}; allowed: {', '.join(sorted(WORLDS))}")
    args: dict = {}
    for a in set_:
        from emergelab.spec import apply_override

        apply_override(args, a)
    spec = validate({"world": name, "world_args": args, "ladder": [{"name": "x", "n_layer": 1, "d_model": 8, "n_head": 1}]},
                    "--set")
    world = make_world(name, spec.world_args, seed)
    sym = world.symbols
    console.print(f"[bold]{name}[/]: {world.summary}")
    console.print(f"parameters: {spec.world_args}")
    console.print("[bold]documents[/]")
    for doc in world.documents(n):
        console.print("  " + " | ".join(" ".join(sym[i] for i in sent) for sent in doc)[:300])
    for ts in world.tasks(n):
        console.print(f"[bold]task {ts.name}[/]: {ts.description} (chance {ts.chance})")
        for e in ts.examples[:n]:
            console.print(f"  prompt: {' '.join(sym[i] for i in e.prompt)}  →  target: {' '.join(sym[i] for i in e.target)}")
    for ls in world.latents(n, 32):
        console.print(f"[bold]latent {ls.name}[/] ({ls.level}): {ls.description}; labels {ls.label_names}")
        for ids, lab in zip(ls.input_ids[:n], ls.labels[:n]):
            if ls.level == "token":
                console.print("  " + " ".join(f"{sym[i]}/{ls.label_names[l] if l >= 0 else '-'}" for i, l in zip(ids, lab))[:300])
            else:
                console.print(f"  {' '.join(sym[i] for i in ids)[:200]} → {ls.label_names[int(lab)]}")
