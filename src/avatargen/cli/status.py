"""`avatargen status MODEL`: the catalog facts, which backend and URL a generation would use, and
whether it answers now (the work is in providers/status_report.py)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from avatargen.cli import context
from avatargen.cli.options import Json


def status(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Argument(metavar="MODEL", help="Model key, or its alias without 'avatar-generator:'.")
    ],
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="Probe this endpoint URL instead of the configured one.")
    ] = None,
    provider: Annotated[
        str | None,
        typer.Option(
            "--provider", help="hf-endpoint, hf-inference, local or hf-providers (default: by endpoint)."
        ),
    ] = None,
    hf_provider: Annotated[
        str | None,
        typer.Option(
            "--hf-provider", help="hf-providers: check this Inference Provider (default: the catalog's)."
        ),
    ] = None,
    json_: Json = False,
) -> None:
    """Show which backend a model would run on and whether it is ready (exit 0 whatever the state)."""
    from avatargen import config
    from avatargen.output import emit_json, result_console
    from avatargen.providers.status_report import build_status

    found = context.load_catalog(ctx).lookup(model, option="MODEL")
    report = build_status(
        found,
        config=config.load(),
        endpoint=endpoint,
        provider=provider,
        history_stats=history_stats(found),
        hf_provider=hf_provider,
    )
    if json_:
        emit_json(report)
        return
    console = result_console()
    for line in render(report):
        console.print(line, markup=False, highlight=False)


def history_stats(model: Any) -> dict[str, Any] | None:
    """Recent success rate and median latency of this model, from the ledger's job history
    (None before the first job; a status check never creates a ledger)."""
    from avatargen.ledger import Ledger, default_path

    path = default_path()
    if not path.is_file():
        return None
    from avatargen.settings import get_value, load_config

    config = load_config()
    with Ledger(path) as ledger:
        stats = ledger.model_stats(model.key) or {}
        stats["requests_today"] = ledger.requests_today(model.key)
        stats["requests_today_all_models"] = ledger.requests_today()
    stats["daily_request_limit"] = get_value("limits.daily_requests", config)
    stats["daily_request_limit_model"] = get_value(f"limits.models.{model.key}", config)
    return stats


def render(report: dict[str, Any]) -> list[str]:
    m = report["model"]
    lines = [
        f"model     {m['key']}  ({m['name']}, {m['status']})",
        f"          {_repos(m)}, {m['architecture']} {m['resolution']}, "
        f"tier {m['tier']}, {m['credit_cost']} credits",
    ]
    backend = report["backend"] or "none"
    where = f"  {report['url']}" if report["url"] else ""
    lines.append(f"backend   {backend}{where}  (from {report['url_source']})")
    line = f"state     {report['state']}"
    if report.get("detail"):
        line += f": {report['detail']}"
    if report.get("round_trip_ms") is not None:
        line += f"  ({report['round_trip_ms']:.0f} ms)"
    lines.append(line)
    if report.get("hint"):
        lines.append(f"hint      {report['hint']}")
    for model_id, info in report.get("hub", {}).items():
        lines.append(f"hub       {model_id}: {info['state']}, {info['detail']}")
    if report.get("weights"):
        lines.append(f"weights   {report['weights']['detail']}")
    if report.get("note"):
        lines.append(f"note      {report['note']}")
    token = report["token"]
    text = f"token     {token['source']}" if token["found"] else "token     none"
    if token.get("detail"):
        text += f": {token['detail']}"
    if token.get("user"):
        text += f" (user {token['user']})"
    lines.append(text)
    lines.append(f"waits     up to {report['wait_timeout']:g} s for a cold model (wait_timeout)")
    history = report.get("history")
    if history:
        shown = ((k, _plain(k, v)) for k, v in history.items())
        lines.append("history   " + ", ".join(f"{k} {v}" for k, v in shown if v))
    return lines


def _repos(m: dict[str, Any]) -> str:
    """'ControlNet on base', or the one repo of a model that is its own base (an editing model)."""
    if m["huggingface_model"] == m["base_model"]:
        return m["huggingface_model"]
    return f"{m['huggingface_model']} on {m['base_model']}"


def _plain(key: str, value: Any) -> str:
    """A value as a person reads it, never a Python repr ('' leaves the field out)."""
    if value is None:
        return "no limit" if "limit" in key else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={_plain(k, v)}" for k, v in value.items() if _plain(k, v))
    if isinstance(value, list | tuple):
        return ", ".join(text for text in (_plain(key, v) for v in value) if text)
    return str(value)
