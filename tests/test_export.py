"""`models export`: JSON records and SQL upserts, loaded into a real (SQLite) database."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace

import pytest

from avatargen.catalog import load_catalog
from avatargen.export import COLUMNS, capabilities, export_sql, sql_literal

# The seed backend's table as far as the export needs it (PostgreSQL would use jsonb/timestamptz).
CREATE_TABLE = """
CREATE TABLE ai_models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    "appId" TEXT NOT NULL,
    "modelId" TEXT NOT NULL,
    "modelKey" TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT,
    provider TEXT NOT NULL,
    tier TEXT NOT NULL,
    "creditCost" INTEGER NOT NULL,
    "quotaCost" INTEGER NOT NULL,
    capabilities TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    beta BOOLEAN NOT NULL,
    "createdAt" TIMESTAMP NOT NULL,
    "updatedAt" TIMESTAMP NOT NULL
)
"""


def _load(db: sqlite3.Connection, sql: str) -> list[dict]:
    db.executescript(sql)
    db.row_factory = sqlite3.Row
    rows = db.execute('SELECT * FROM ai_models ORDER BY "modelKey"').fetchall()
    return [dict(r) for r in rows]


def _expected(model) -> dict:
    return {
        "appId": "avatar-generator",
        "modelId": model.model_id or model.alias,
        "modelKey": model.key,
        "name": model.name,
        "description": model.description,
        "provider": model.provider,
        "tier": model.tier,
        "creditCost": model.credit_cost,
        "quotaCost": model.quota_cost,
        "enabled": int(model.enabled),
        "beta": int(model.beta),
    }


def test_sql_loads_into_a_real_database_twice_without_duplicates(run_cli, tmp_path):
    out = tmp_path / "models.sql"
    result = run_cli("models", "export", "--format", "sql", "-o", str(out), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    catalog = sorted(load_catalog(), key=lambda m: m.key)
    assert summary == {"path": str(out), "format": "sql", "models": len(catalog), "dialect": "postgresql"}
    sql = out.read_text()

    db = sqlite3.connect(tmp_path / "backend.db")
    db.execute(CREATE_TABLE)
    first = _load(db, sql)
    second = _load(db, sql)  # an upsert: running it again changes nothing but updatedAt
    assert len(second) == len(catalog) == 6
    assert [r["id"] for r in first] == [r["id"] for r in second]
    assert [r["createdAt"] for r in first] == [r["createdAt"] for r in second]

    for got, model in zip(second, catalog, strict=True):
        assert {k: got[k] for k in _expected(model)} == _expected(model)
        caps = json.loads(got["capabilities"])
        assert caps == capabilities(model)
        assert caps["model"] == model.huggingface_model and caps["poseControl"] == model.pose_control
        assert got["createdAt"] and got["updatedAt"]
    # Disabled models are exported too, marked disabled.
    disabled = [r for r in second if not r["enabled"]]
    assert [r["modelKey"] for r in disabled] == ["avatar-generator:sd35-controlnet-canny"]


def test_sql_upsert_updates_changed_fields(tmp_path):
    models = list(load_catalog())
    db = sqlite3.connect(":memory:")
    db.execute(CREATE_TABLE)
    _load(db, export_sql(models))
    cheaper = [replace(m, credit_cost=m.credit_cost + 100, name=m.name + " v2") for m in models]
    rows = _load(db, export_sql(cheaper))
    assert len(rows) == len(models)
    by_key = {r["modelKey"]: r for r in rows}
    for m in models:
        assert by_key[m.key]["creditCost"] == m.credit_cost + 100
        assert by_key[m.key]["name"] == m.name + " v2"


def test_quotes_and_odd_text_survive_the_round_trip(tmp_path):
    model = next(iter(load_catalog()))
    tricky = replace(
        model,
        name="O'Brien's \"model\"; DROP TABLE ai_models; --",
        description="back\\slash, newline\nand unicode: é✓ and ''doubled''",
        disabled_reason="it's off",
    )
    db = sqlite3.connect(":memory:")
    db.execute(CREATE_TABLE)
    [got] = _load(db, export_sql([tricky]))
    assert got["name"] == tricky.name
    assert got["description"] == tricky.description
    assert json.loads(got["capabilities"])["disabledReason"] == "it's off"


def test_sql_is_portable_postgresql():
    """Without a PostgreSQL server at hand: check the constructs psql needs and SQLite shares."""
    sql = export_sql(load_catalog())
    code = re.sub(r"'(?:[^']|'')*'", "''", sql)  # drop string literals, keep the SQL around them
    code = "\n".join(line for line in code.splitlines() if not line.startswith("--"))
    # camelCase columns must be quoted, or PostgreSQL folds them to lower case.
    for column in COLUMNS + ("createdAt", "updatedAt"):
        if column != column.lower():
            assert re.search(rf'(?<!"){column}(?!")', code) is None, column
    assert "`" not in code and "\\" not in code  # no MySQL quoting, no backslash escapes
    assert "NOW()" not in code and "datetime(" not in code
    assert code.strip().startswith("BEGIN;") and code.strip().endswith("COMMIT;")
    assert code.count("INSERT INTO ai_models") == code.count('ON CONFLICT ("modelKey") DO UPDATE SET') == 6
    assert set(re.findall(r"\b(TRUE|FALSE|true|false)\b", code)) <= {"TRUE", "FALSE"}


def test_sql_literals():
    assert sql_literal(True) == "TRUE" and sql_literal(False) == "FALSE"
    assert sql_literal(3) == "3" and sql_literal(None) == "NULL"
    assert sql_literal("it's") == "'it''s'"
    from avatargen.errors import ConfigError

    with pytest.raises(ConfigError, match="NUL"):
        sql_literal("a\x00b", "model 'x', field 'name'")
    with pytest.raises(ConfigError):
        sql_literal(float("nan"))


def test_json_export_is_the_seed_records_of_every_model(cli, tmp_path):
    result = cli("models", "export", "--format", "json")
    assert result.exit_code == 0
    records = json.loads(result.stdout)
    catalog = list(load_catalog())
    assert records == [m.to_seed() for m in catalog]
    assert {r["appId"] for r in records} == {"avatar-generator"}
    assert {"modelKey", "modelId", "creditCost", "quotaCost", "huggingface_model"} <= set(records[0])
    assert any(r["enabled"] is False for r in records)


def test_json_to_a_file_and_sql_inside_json_on_stdout(cli, tmp_path):
    out = tmp_path / "models.json"
    result = cli("models", "export", "-f", "json", "-o", str(out))
    assert result.exit_code == 0
    assert result.stdout == ""  # the file is the result; the note goes to stderr
    assert len(json.loads(out.read_text())) == 6
    assert not list(tmp_path.glob(".*.tmp"))

    result = cli("models", "export", "-f", "sql", "--json")
    doc = json.loads(result.stdout)
    assert doc["format"] == "sql" and doc["dialect"] == "postgresql" and doc["models"] == 6
    assert doc["sql"].count("INSERT INTO ai_models") == 6


def test_export_honours_catalog_overrides(cli, tmp_path):
    extra = tmp_path / "extra.toml"
    extra.write_text('[[models]]\nkey = "avatar-generator:controlnet-openpose-sdxl"\ncredit_cost = 42\n')
    result = cli("--catalog", str(extra), "models", "export", "-f", "sql")
    assert result.exit_code == 0
    db = sqlite3.connect(":memory:")
    db.execute(CREATE_TABLE)
    rows = {r["modelKey"]: r for r in _load(db, result.stdout)}
    assert rows["avatar-generator:controlnet-openpose-sdxl"]["creditCost"] == 42


def test_unknown_format_is_a_usage_error(run_cli):
    result = run_cli("models", "export", "--format", "csv")
    assert result.returncode == 2
    assert "--format" in result.stderr and "json, sql" in result.stderr
    assert result.stdout == ""


def test_unwritable_output_is_an_input_error(run_cli, tmp_path):
    result = run_cli("models", "export", "-o", str(tmp_path / "missing" / "models.json"))
    assert result.returncode == 5
    assert "missing/models.json" in result.stderr
