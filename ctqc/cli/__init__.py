"""The ``ctqc`` command line: thin wrappers over importable stage functions.

Heavy modules (torch, pandas, sklearn) are imported inside the commands so that
``ctqc --help`` stays fast. User mistakes print one ``error:`` line and exit 2;
``--debug`` shows the traceback instead. The app and its options live in
:mod:`ctqc.cli.options`, the commands in :mod:`ctqc.cli.commands`, what they print
in :mod:`ctqc.cli.show`.
"""

from __future__ import annotations

import sys

import typer

from ctqc import allocator
from ctqc.cli import commands  # noqa: F401  (registers the commands on the app)
from ctqc.cli.options import app
from ctqc.errors import UserError

__all__ = ["app", "main"]


def _is_usage_error(exc: Exception) -> bool:
    """click's own errors (typer vendors click, so matched by shape rather than by class)."""
    return type(exc).__module__.endswith("click.exceptions") and hasattr(exc, "format_message") and hasattr(exc, "exit_code")


def main() -> None:
    """Entry point. Usage errors and user errors print one ``error:`` line and exit 2; internal failures exit 1."""
    debug = "--debug" in sys.argv[1:]
    allocator.retain_freed_memory()
    try:
        code = app(standalone_mode=False)  # click's usage errors are raised here and printed below as one line
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except UserError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except Exception as exc:
        if _is_usage_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # `ctqc`, `ctqc data`: the help text
                exc.show()
            else:
                ctx = getattr(exc, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(exc.exit_code)
        if debug:
            raise
        message = " ".join(str(exc).split())
        typer.echo(f"internal error: {exc.__class__.__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
