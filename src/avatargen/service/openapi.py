"""The OpenAPI document of the routes (written by hand, so it says what the contract says)
and a small /docs page that lists them without loading anything from another host."""

from __future__ import annotations

import html
from typing import Any

from avatargen import __version__

B = "/api/apps/avatar-generator"
ERROR = {"$ref": "#/components/schemas/Error"}

# (method, path, summary, auth: "user" | "admin" | None, success status)
ROUTES: list[tuple[str, str, str, str | None, int]] = [
    (
        "post",
        f"{B}/generate",
        "Queue a generation (multipart: image or photoId, poseTemplateId or poses, quality, optional modelKey, prompt, negativePrompt, seed, steps, webhookUrl)",
        "user",
        202,
    ),
    ("get", f"{B}/generations", "The caller's generations, newest first (?limit=&cursor=)", "user", 200),
    (
        "get",
        f"{B}/generations/{{generationId}}",
        "One generation: status, queuePosition, waitingFor, outputUrl, error",
        "user",
        200,
    ),
    (
        "delete",
        f"{B}/generations/{{generationId}}",
        "Cancel a pending generation (refund) or delete a finished one",
        "user",
        200,
    ),
    ("get", f"{B}/generations/{{generationId}}/image", "The generated PNG (owner or admin)", "user", 200),
    ("get", f"{B}/photos/{{photoId}}", "A stored upload (owner only)", "user", 200),
    ("post", f"{B}/faces", "Face boxes found in a photo (multipart: image)", "user", 200),
    ("get", f"{B}/pose-templates", "Pose templates with thumbnail URLs", None, 200),
    ("get", f"{B}/pose-templates/{{id}}/thumbnail.png", "A template's skeleton as PNG", None, 200),
    ("get", f"{B}/models", "The catalog as the caller's tier sees it", "user", 200),
    ("get", "/api/me", "The caller: name, tier, credits, admin", "user", 200),
    ("get", "/api/credits", "The caller's balance and reserved credits", "user", 200),
    ("get", "/api/admin/users", "Every user (admin)", "admin", 200),
    (
        "post",
        "/api/admin/users",
        "Create a user {name, tier, credits}; the token is in the answer, once (admin)",
        "admin",
        201,
    ),
    ("post", "/api/admin/users/{name}/credits", "Add credits {amount} (admin)", "admin", 200),
    ("post", "/api/admin/users/{name}/tier", "Set the tier {tier} (admin)", "admin", 200),
    ("get", "/api/admin/queue", "Jobs by state and per user (admin)", "admin", 200),
    ("get", "/api/admin/workers", "Workers and their heartbeats (admin)", "admin", 200),
    ("get", "/api/admin/stats", "Today's generations per model (admin)", "admin", 200),
    ("get", "/health", "Liveness", None, 200),
]

ERRORS = {
    "401": "unauthorized: no or bad token",
    "402": "insufficient_credits",
    "403": "tier_too_low",
    "404": "not_found (also another user's id)",
    "408": "request_timeout: the body was too slow",
    "409": "processing: cannot delete a running generation",
    "413": "too_large: bytes or pixels",
    "422": "invalid_*: a bad field, image or pose",
    "429": "rate_limited (Retry-After)",
    "503": "queue_full (Retry-After)",
}


def schema() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, auth, ok in ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {
                str(ok): {"description": "OK"},
                **{
                    c: {"description": d, "content": {"application/json": {"schema": ERROR}}}
                    for c, d in ERRORS.items()
                },
            },
        }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if auth:
            op["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "avatargen API", "version": __version__},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                            "required": ["code", "message"],
                        }
                    },
                }
            },
        },
    }


def docs_page() -> str:
    rows = "".join(
        f"<tr><td>{m.upper()}</td><td><code>{html.escape(p)}</code></td><td>{html.escape(s)}</td><td>{a or 'public'}</td></tr>"
        for m, p, s, a, _ in ROUTES
    )
    errors = "".join(f"<li>{c}: {html.escape(d)}</li>" for c, d in ERRORS.items())
    return (
        "<!doctype html><meta charset=utf-8><title>avatargen API</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}td{padding:.2em .6em;vertical-align:top}</style>"
        f"<h1>avatargen API {html.escape(__version__)}</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. "
        "Every /api route takes <code>Authorization: Bearer &lt;token&gt;</code>; errors are "
        '<code>{"error": {"code", "message"}}</code>.</p>'
        f"<table>{rows}</table><h2>Errors</h2><ul>{errors}</ul>"
    )
