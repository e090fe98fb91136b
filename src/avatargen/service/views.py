"""The JSON shapes of the API (the contract's field names), from database rows."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

BASE = "/api/apps/avatar-generator"


def iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def generation(row: dict[str, Any], position: int | None = None) -> dict[str, Any]:
    status = row["status"]
    error = None
    if status == "failed":
        error = {"code": row["error_code"] or "generation_failed", "message": row["error_message"] or ""}
    out = {
        "generationId": row["id"],
        "status": status,
        "queuePosition": position if status == "pending" else None,
        "waitingFor": row["waiting_for"] if status in ("pending", "processing") else None,
        "outputUrl": f"{BASE}/generations/{row['id']}/image" if status == "completed" else None,
        "error": error,
        "createdAt": iso(row["created_at"]),
        "startedAt": iso(row["started_at"]),
        "completedAt": iso(row["completed_at"]),
        "modelKey": row["model_key"],
        "modelUsed": row["model_used"],
        "poseTemplateId": row["pose"],
        "quality": row["quality"],
        "seed": int(row["seed"]),
        "creditCost": int(row["credit_cost"]),
        "photoId": row["photo_id"],
    }
    if row["started_at"] and row["completed_at"] and status == "completed":
        out["seconds"] = round(row["completed_at"] - row["started_at"], 3)
    return out
