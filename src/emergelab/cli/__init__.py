"""Command-line interface: one module per command, all registered on one typer app."""
from __future__ import annotations

import sys

from emergelab.errors import UserError


def main() -> None:
    """Run the CLI; a UserError becomes one line on stderr and exit code 2."""
    import click

    from emergelab.cli import commands  # noqa: F401  (registers the commands)
    from emergelab.cli.app import app

    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    except click.ClickException as exc:  # bad CLI usage
        msg = " ".join(exc.format_message().split())
        print(f"error: {msg}; see `emergelab --help`", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
