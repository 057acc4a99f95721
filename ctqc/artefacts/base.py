"""The artefact models' base class, and the one writer and reader of every artefact JSON file.

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

from pydantic import BaseModel, ConfigDict, ValidationError

from ctqc import atomic
from ctqc.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


class Artefact(BaseModel):
    """Base of every artefact model: unknown keys are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def write_artefact(path: str | Path, model: BaseModel) -> None:
    """Write ``model`` to ``path`` atomically, as JSON with the field aliases (NaN → null).

    Only the fields the writer set are written (``exclude_unset``): a key the stage did not
    produce stays absent, and a reader gets the model's default for it.
    """
    atomic.write_json(path, model.model_dump(mode="python", by_alias=True, exclude_unset=True))


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
