"""`avatargen serve`: run a catalog model behind the Inference Endpoint contract on this machine."""

from __future__ import annotations

from typing import Annotated

import typer

from avatargen import environment
from avatargen.cli import context
from avatargen.cli.options import Json
from avatargen.serve.runner import DEFAULT_MAX_BATCH


def serve(
    ctx: typer.Context,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Model key or alias (default: config 'model', else the cheapest)."
        ),
    ] = None,
    model_dir: Annotated[
        str | None,
        typer.Option("--model-dir", metavar="PATH", help="Load the weights from this saved pipeline folder."),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (loopback by default).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port; 0 picks a free one.", min=0, max=65535)] = 8000,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar=environment.ENDPOINT_TOKEN,
            show_envvar=True,
            help="Require 'Authorization: Bearer TOKEN' on generation requests.",
        ),
    ] = None,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny", help="A tiny random-weight model of the same architecture: noise images, no download."
        ),
    ] = False,
    queue: Annotated[
        int,
        typer.Option(
            "--queue", min=1, max=1000, help="Requests accepted at once (running + waiting); more get 429."
        ),
    ] = 4,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch",
            min=1,
            max=64,
            help="Requests of the same size, steps and settings already queued when the model comes "
            "free share one pipeline call, up to N (never waited for): more images/s, and each "
            "image matches the one made alone up to float rounding. 1: one request per call; "
            "lower it if a batch runs out of GPU memory.",
        ),
    ] = DEFAULT_MAX_BATCH,
    json_: Json = False,
) -> None:
    """Serve a model over HTTP with the Inference Endpoint contract (POST /, GET /health).

    The URL is the first line on stdout (a JSON line with --json). Point generate at it with
    --endpoint URL or `avatargen config set endpoints.MODEL URL`.
    """
    from avatargen.catalog import resolve_model
    from avatargen.errors import UsageError
    from avatargen.output import info, warn
    from avatargen.quiet import quiet
    from avatargen.serve.resolve import (
        SERVE_WAYS,
        hub_preflight,
        load_error,
        model_source,
        require_serve_extra,
    )
    from avatargen.settings import get_value

    require_serve_extra(
        "avatargen serve", ("starlette", "uvicorn", "torch", "diffusers", "transformers", "PIL")
    )
    quiet()  # before the server imports torch and diffusers: their chatter off stderr
    from avatargen.serve.runner import openmp_waits_passively

    openmp_waits_passively()  # before torch too
    if tiny and model_dir:
        raise UsageError("--tiny and --model-dir cannot be used together", "give one of them")
    catalog = context.load_catalog(ctx)
    chosen = catalog.lookup(model) if model else resolve_model(catalog, default=get_value("model"))
    spec, source = model_source(chosen, model_dir=model_dir, tiny=tiny, lazy=True)
    if source is None:  # Hub weights: an unreachable Hub is said now, not after the server started
        hub_preflight(spec, chosen, ways=SERVE_WAYS)
    loopback = host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not token:
        warn(
            f"listening on {host} WITHOUT a token: anyone who can reach this address can use your GPU. "
            "Add --token (or AVATARGEN_ENDPOINT_TOKEN), or keep the default --host 127.0.0.1."
        )
    elif not loopback:
        warn(f"listening on {host}: the token travels in clear text over plain HTTP; put TLS in front of it.")
    if tiny:
        info("tiny model: random weights, so every image is noise; it exercises the real pipeline code path")

    from avatargen.serve.pipelines import LoadError
    from avatargen.serve.server import ServeOptions, run_server

    options = ServeOptions(
        spec=spec,
        source=source,
        host=host,
        port=port,
        token=token or None,
        queue_size=queue,
        max_batch=max_batch,
        json_output=json_,
    )
    try:
        run_server(options, say=info)
    except LoadError as exc:
        raise load_error(exc, chosen, ways=SERVE_WAYS) from None
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc})",
            "pick another --port (0 takes a free one) or --host",
        ) from None
