"""The CLI's app, global options, shared option types and config loading."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ctqc import __version__
from ctqc.errors import UserError

app = typer.Typer(
    name="ctqc",
    help="Quality control for synthetic medical images (GAN → QC → filter → classifier comparison → report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and prepare the real labelled images.", no_args_is_help=True)
app.add_typer(data_app, name="data")


class _State:
    debug = False
    quiet = False


def _console():
    from rich.console import Console

    return Console(quiet=_State.quiet, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctqc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    _State.debug = debug
    _State.quiet = quiet or os.environ.get("RANK", "0") not in ("", "0")  # under torchrun only rank 0 prints


# Options shared by the commands that load data.
ConfigOpt = Annotated[Optional[str], typer.Option("--config", "-c", help="Preset name (default, paper, smoke) or YAML path.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", "-d", help="Folder with images + labels.csv, or a .npz. Default: built-in phantoms.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config key, e.g. --set gan.epochs=10 (repeatable).")]


def _single_process(command: str) -> None:
    """Only train, compare and run use several torchrun processes; refuse the others there (they would all write)."""
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise UserError(f"`ctqc {command}` runs in one process: start it without torchrun (only train, compare and run use several)")


def _load_config(config: str | None, data: Path | None, overrides: list[str] | None):
    from ctqc.config import load_config

    return load_config(config, overrides or [], data)


def _numbers(option: str, values: list[str]) -> list[float]:
    """Numbers from a repeatable, comma-separated option; a bad one is a one-line :class:`UserError`."""
    out = []
    for item in (v.strip() for value in values for v in value.split(",")):
        if item:
            try:
                out.append(float(item))
            except ValueError:
                raise UserError(f"{option}: {item!r} is not a number (e.g. {option} 0.5,1,2)") from None
    return out


RunOpt = Annotated[Optional[Path], typer.Option("--run", "-r", help="Run directory. Default: runs/latest.")]
RealOpt = Annotated[Optional[Path], typer.Option("--real", help="Bring your own images: folder of real images (labels.csv or class subfolders).")]
SyntheticOpt = Annotated[Optional[Path], typer.Option("--synthetic", help="Bring your own images: folder of any generator's images (labels.csv or class subfolders).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Bring your own images: output folder (new, or an earlier output of this command).")]


def _byo_config(real, synthetic, out, run, config, set_):
    """The config for a bring-your-own-images command, or None for a run; refuses mixed options."""
    byo = (real, synthetic, out)
    if not any(byo):
        if config is not None or set_:
            raise UserError("--config/--set apply to --real/--synthetic/--out folders; a run uses its saved config")
        return None
    if not all(byo):
        raise UserError("bring-your-own images need all of --real DIR --synthetic DIR --out DIR")
    if run is not None:
        raise UserError("--run and --real/--synthetic/--out are alternatives; use one")
    return _load_config(config, None, set_)
