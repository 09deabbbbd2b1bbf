"""Command-line interface: one module per command, all registered on one typer app."""
from __future__ import annotations

import sys

from emergelab.errors import UserError


def main() -> None:
    """Run the CLI; a UserError becomes one line on stderr and exit code 2."""
    from typer import exceptions as typer_exc
    from typer._click import exceptions as click_exc  # typer vendors click

    import emergelab.cli.commands  # noqa: F401  (registers the commands)
    from emergelab.cli.app import app

    try:
        app(standalone_mode=False)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer_exc.Abort:
        print("error: interrupted; re-run the same command to resume", file=sys.stderr)
        sys.exit(130)
    except click_exc.NoArgsIsHelpError:  # the help was shown
        sys.exit(0)
    except click_exc.ClickException as exc:  # bad CLI usage
        msg = " ".join(exc.format_message().split())
        print(f"error: {msg}; see `emergelab --help`", file=sys.stderr)
        sys.exit(2)
    except typer_exc.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as exc:  # the disk, not the program: say which and how to fix it
        import errno

        fixes = {errno.ENOSPC: "no space left on the device; free space and re-run (finished work is kept)",
                 errno.EDQUOT: "disk quota exceeded; free space and re-run (finished work is kept)",
                 errno.EROFS: "the output directory is on a read-only file system; choose a writable --out",
                 errno.EACCES: "permission denied; choose a directory you can write to"}
        if exc.errno not in fixes:
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {fixes[exc.errno]}{where}", file=sys.stderr)
        sys.exit(2)
