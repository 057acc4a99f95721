"""Typed artefacts: the JSON files that stages write and ``reports`` reads, one pydantic model each.

Writer and reader share these models: a stage builds the model and writes it with
:func:`write_artefact` (the one JSON encoder, :func:`ctqc.atomic.json_text`: NaN → null);
a reader validates once with :func:`read_artefact` and then trusts the fields.
Models allow extra keys (``extra="allow"``) only where a file carries open-ended
content; the fields every reader relies on are declared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctqc import atomic
from ctqc.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


class Artefact(BaseModel):
    """Base of every artefact model: unknown keys are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid")


class C2STResult(Artefact):
    """A classifier two-sample test's global result (``ctqc.qc.c2st.c2st_summary``)."""

    auc: float | None = Field(None, ge=0, le=1)
    accuracy: float | None = Field(None, ge=0, le=1)  # balanced accuracy at p(synthetic) = 0.5
    p_value: float | None = Field(None, ge=0, le=1)  # permutation p-value; None when not run
    n_real: int | None = None
    n_synthetic: int | None = None
    note: str | None = None


class UnitScoring(Artefact):
    """The scoring step's results for one fold × class."""

    fold: int
    class_: str = Field(alias="class")
    label: int
    n_synthetic: int
    n_reference: int  # real training images the C2ST was fitted against (role ``fit``)
    n_heldout: int  # held-out real images scored by every fold model (role ``heldout``)
    c2st: C2STResult
    copy_threshold: float | None  # 1 - correlation below which a synthetic image counts as a copy

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Scoring(Artefact):
    """``qc/scoring.json``: what the scoring step fitted, per unit (``fold<k>/<class>``)."""

    features: list[str]
    classifier: str
    fitted_on: str
    units: dict[str, UnitScoring]


class FilterUnit(Artefact):
    """The filter's decision for one fold × class."""

    n_synthetic: int
    kept: int
    rejected_c2st: int
    rejected_copy: int
    c2st_before: C2STResult
    c2st_after: C2STResult  # a fresh C2ST of the kept images vs the same reference images
    copy_threshold: float | None


class FilterSummary(Artefact):
    """``filter/filter.json``: the operating point and what it kept."""

    c2st_threshold: float = Field(gt=0, lt=1)
    memorisation: bool
    features: list[str]
    classifier: str
    kept: int
    rejected: int
    per_class: dict[str, FilterUnit]
    fitted_on: str
    real: str | None = None  # bring-your-own folders only
    synthetic: str | None = None


def write_artefact(path: str | Path, model: BaseModel) -> None:
    """Write ``model`` to ``path`` atomically, as JSON with the field aliases (NaN → null)."""
    atomic.write_json(path, model.model_dump(mode="python", by_alias=True))


def read_artefact(path: str | Path, model: type[Model]) -> Model:
    """Read and validate ``path`` as ``model``; a missing, unreadable or invalid file is a :class:`UserError`."""
    path = Path(path)
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: run the stage that writes it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__}); run the stage that writes it again") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UserError(f"{path}: not a valid {model.__name__} ({where}: {first['msg']}); run the stage that writes it again") from None
