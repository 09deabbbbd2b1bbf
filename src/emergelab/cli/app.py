"""The typer application that every command module registers on."""
from __future__ import annotations

import logging

import typer
from rich.console import Console

app = typer.Typer(
    name="emergelab",
    help="A laboratory for the emergent capabilities of language models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
#: progress, logs and errors (stderr); soft-wrapped, so a line is never broken by the terminal's width
console = Console(stderr=True, soft_wrap=True)
#: data: tables and lists a user may pipe (``emergelab worlds | grep modular``)
stdout = Console(soft_wrap=True)


@app.callback()
def _root(verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More logging (-v info, -vv debug).")) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if verbose == 0:
        import os
        import warnings

        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
