"""`avatargen api` (the HTTP service with its worker threads) and `avatargen worker` (workers
only, for more machines on one PostgreSQL database). Needs the api extra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from avatargen import environment
from avatargen.cli import context
from avatargen.cli.options import EndpointOpt, Json, ProviderOpt, TokenOpt, WaitTimeoutOpt

DatabaseOpt = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar=environment.DATABASE,
        help="postgresql://USER@HOST/DB for several machines (default: SQLite in the data folder).",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Folder for the SQLite file, uploads and outputs (shared by every machine)."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option("--workers", min=0, max=256, help="Worker threads (default: config service.workers, 2)."),
]
TinyOpt = Annotated[
    bool, typer.Option("--tiny", help="Local backend: a tiny random-weight model (tests; images are noise).")
]
ModelDirOpt = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Local backend: load a saved diffusers pipeline from this folder."),
]
HfProviderOpt = Annotated[
    str | None, typer.Option("--hf-provider", help="hf-providers backend: the provider to use.")
]


def require_extra() -> None:
    from importlib.util import find_spec

    from avatargen.errors import MissingExtra

    missing = [name for name in ("starlette", "uvicorn", "multipart") if find_spec(name) is None]
    if missing:
        raise MissingExtra(
            f"the service needs {', '.join(missing)}", "install the api extra: pip install 'avatargen[api]'"
        )


def _setup(database, data_dir, workers=None, migrate=True):
    from avatargen import settings
    from avatargen.service import config as service_config
    from avatargen.service.runtime import open_database

    config = settings.load_config()
    cfg = service_config.load(config, data_dir=data_dir, database=database, workers=workers)
    return config, cfg, open_database(cfg, migrate=migrate)


def _backend(endpoint, provider, token, wait_timeout, tiny, model_dir, hf_provider):
    from avatargen.redact import remember_secret
    from avatargen.service.engine import BackendOptions

    remember_secret(token)
    return BackendOptions(
        endpoint=endpoint,
        provider=provider,
        token=token,
        wait_timeout=wait_timeout,
        model_dir=str(model_dir) if model_dir else None,
        tiny=tiny,
        hf_provider=hf_provider,
    )


def api(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free one).")] = 8000,
    workers: WorkersOpt = None,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    migrate_only: Annotated[
        bool,
        typer.Option("--migrate-only", help="Apply the database migrations and exit (deploy pipelines)."),
    ] = False,
    endpoint: EndpointOpt = None,
    provider: ProviderOpt = None,
    token: TokenOpt = None,
    wait_timeout: WaitTimeoutOpt = None,
    tiny: TinyOpt = False,
    model_dir: ModelDirOpt = None,
    hf_provider: HfProviderOpt = None,
    json_: Json = False,
) -> None:
    """Run the avatar service: the HTTP API on 127.0.0.1:8000 and worker threads, one SQLite file
    (WAL) in the data folder by default."""
    require_extra()
    from avatargen.output import emit_json, info

    config, cfg, db = _setup(database, data_dir, workers)
    from avatargen.service.accounts import Accounts
    from avatargen.service.migrations import applied

    Accounts(db).ensure_admin()  # its token is never printed: `users rotate admin` makes one
    if migrate_only:
        names = applied(db)
        if json_:
            emit_json({"database": db.where, "migrations": names})
        else:
            print(f"{db.where}: migrations applied: {', '.join(names)}")
        db.close()
        return
    backend = _backend(endpoint, provider, token, wait_timeout, tiny, model_dir, hf_provider)
    catalog = context.load_catalog(ctx)
    serve_forever(config, cfg, db, catalog, backend, host, port, json_, emit_json if json_ else None, info)


def serve_forever(config, cfg, db, catalog, backend, host, port, json_, emit, info) -> None:
    import socket

    import uvicorn

    from avatargen.service.app import Service, create_app
    from avatargen.service.runtime import worker_pool

    pool = worker_pool(db, cfg, catalog, backend, config, cfg.workers)
    service = Service(cfg, db, catalog, pool if cfg.workers else None)
    app = create_app(service)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        from avatargen.errors import UsageError

        raise UsageError(
            f"--host {host} --port {port}: cannot listen there ({exc.strerror})", "pick another --port"
        ) from None
    sock.listen(1024)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}"
    pool.start()
    where = f"PostgreSQL {db.where}" if db.postgres else f"SQLite {db.where}"
    if emit is not None:
        emit(
            {
                "url": url,
                "database": db.where,
                "workers": cfg.workers,
                "admin_hint": "avatargen users rotate admin",
            }
        )
    else:
        print(f"avatargen api on {url} ({where}, {cfg.workers} worker thread(s))", flush=True)
        print(
            "admin: `avatargen users rotate admin` prints an admin token (once); "
            "add users with `avatargen users add NAME --tier basic --credits 100`",
            flush=True,
        )
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,  # paths only would be safe, but request lines are nobody's business
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            lifespan="off",
        )
    )
    try:
        server.run(sockets=[sock])
    finally:
        pool.shutdown()
        db.close()
    info("avatargen api stopped")


def worker(
    ctx: typer.Context,
    workers: WorkersOpt = None,
    database: DatabaseOpt = None,
    data_dir: DataDirOpt = None,
    endpoint: EndpointOpt = None,
    provider: ProviderOpt = None,
    token: TokenOpt = None,
    wait_timeout: WaitTimeoutOpt = None,
    tiny: TinyOpt = False,
    model_dir: ModelDirOpt = None,
    hf_provider: HfProviderOpt = None,
    json_: Json = False,
) -> None:
    """Run worker threads only: claim jobs from the service's database and run them (several
    machines: --database postgresql://... and a shared --data-dir)."""
    import signal
    import threading

    from avatargen.output import emit_json, info
    from avatargen.service.runtime import worker_pool

    config, cfg, db = _setup(database, data_dir, workers)
    count = cfg.workers or 1
    pool = worker_pool(
        db,
        cfg,
        context.load_catalog(ctx),
        _backend(endpoint, provider, token, wait_timeout, tiny, model_dir, hf_provider),
        config,
        count,
    )
    done = threading.Event()
    for name in ("SIGTERM", "SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), lambda *_: done.set())
    pool.start()
    if json_:
        emit_json({"worker": pool.id, "database": db.where, "workers": count})
    else:
        print(f"avatargen worker {pool.id}: {count} thread(s) on {db.where}", flush=True)
    while not done.wait(0.5):
        pass
    pool.shutdown()
    db.close()
    info("avatargen worker stopped")
    sys.stdout.flush()
