"""`models export`: the catalog as the seed backend's records, as JSON or as SQL upserts.

SQL targets PostgreSQL (feed it to `psql`) and sticks to the subset SQLite >= 3.24 also runs,
so a test can load it into a real database: double-quoted identifiers (the columns are
camelCase, which PostgreSQL would fold to lower case unquoted), '' to escape quotes (no
backslash escapes), TRUE/FALSE, CURRENT_TIMESTAMP, and `ON CONFLICT ... DO UPDATE SET
col = EXCLUDED.col`. The statements run in one transaction.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

from avatargen.catalog import APP_ID, Model
from avatargen.errors import ConfigError

FORMATS = ("json", "sql")
TABLE = "ai_models"
DIALECT = "postgresql"
# Columns in the seed's table; createdAt/updatedAt are set by the database clock.
COLUMNS = (
    "appId",
    "modelId",
    "modelKey",
    "name",
    "description",
    "provider",
    "tier",
    "creditCost",
    "quotaCost",
    "capabilities",
    "enabled",
    "beta",
)
CONFLICT_KEY = "modelKey"


def capabilities(model: Model) -> dict[str, Any]:
    """What the seed kept in its `capabilities` JSON column."""
    return {
        "model": model.huggingface_model,
        "baseModel": model.base_model,
        "quality": model.quality,
        "resolution": model.resolution,
        "processingTime": model.processing_time,
        "poseControl": model.pose_control,
        "sota": model.sota,
        "priorityQueue": model.priority_queue,
        "comingSoon": model.coming_soon,
        "disabledReason": model.disabled_reason,
    }


def row(model: Model) -> dict[str, Any]:
    """One `ai_models` row (without the timestamps), keyed by column name."""
    seed = model.to_seed()
    return {
        "appId": APP_ID,
        "modelId": seed["modelId"],
        "modelKey": model.key,
        "name": model.name,
        "description": model.description,
        "provider": model.provider,
        "tier": model.tier,
        "creditCost": model.credit_cost,
        "quotaCost": model.quota_cost,
        "capabilities": json.dumps(capabilities(model), ensure_ascii=False, separators=(", ", ": ")),
        "enabled": model.enabled,
        "beta": model.beta,
    }


def export_json(models: Iterable[Model]) -> str:
    """The seed's JSON records (`Model.to_seed`, which carries appId), one array, pretty-printed."""
    return json.dumps([m.to_seed() for m in models], ensure_ascii=False, indent=2) + "\n"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any, where: str = "value") -> str:
    """A value as a portable SQL literal."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):  # before int: bool is an int
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value} cannot be written as SQL")
        return repr(value)
    text = str(value)
    if "\x00" in text:
        # PostgreSQL text cannot hold NUL; better to stop than to write a file psql rejects.
        raise ConfigError(f"{where}: contains a NUL character", "remove it from the catalog")
    return "'" + text.replace("'", "''") + "'"


def upsert_statement(model: Model) -> str:
    values = row(model)
    cols = [*COLUMNS, "createdAt", "updatedAt"]
    literals = [sql_literal(values[c], f"model '{model.key}', field '{c}'") for c in COLUMNS]
    literals += ["CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP"]
    updates = [f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in COLUMNS if c != CONFLICT_KEY]
    updates.append(f"{quote_ident('updatedAt')} = CURRENT_TIMESTAMP")
    return (
        f"INSERT INTO {TABLE} ({', '.join(quote_ident(c) for c in cols)})\n"
        f"VALUES ({', '.join(literals)})\n"
        f"ON CONFLICT ({quote_ident(CONFLICT_KEY)}) DO UPDATE SET\n  " + ",\n  ".join(updates) + ";\n"
    )


def export_sql(models: Iterable[Model]) -> str:
    models = list(models)
    head = (
        f"-- avatargen models export: {len(models)} models of app '{APP_ID}' as upserts into {TABLE}.\n"
        f"-- Dialect: PostgreSQL (psql -f FILE); also runs on SQLite >= 3.24.\n"
        f'-- Needs a UNIQUE constraint on {TABLE}("{CONFLICT_KEY}").\n'
    )
    body = "\n".join(upsert_statement(m) for m in models)
    return f"{head}BEGIN;\n\n{body}\nCOMMIT;\n"


def export_catalog(models: Iterable[Model], fmt: str) -> str:
    if fmt == "json":
        return export_json(models)
    if fmt == "sql":
        return export_sql(models)
    from avatargen.errors import UsageError

    raise UsageError(f"unknown export format '{fmt}' (--format)", f"use one of {', '.join(FORMATS)}")


def write_text_atomic(path, text: str):
    """Write `text` to `path` through a temporary file in the same folder and a rename, so a
    reader (or psql) never sees half a file."""
    import os
    from pathlib import Path

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        from avatargen.errors import InputError

        raise InputError(
            f"{path}: cannot be written ({exc.strerror})", "check the folder exists and is writable"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path
