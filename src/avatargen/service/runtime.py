"""Starting the service: open and migrate the database, load the catalog, start the workers."""

from __future__ import annotations

from typing import Any

from avatargen.service.config import ServiceConfig
from avatargen.service.db import Database
from avatargen.service.engine import BackendOptions, SharedEngine, run_settings


def open_database(config: ServiceConfig, migrate: bool = True) -> Database:
    from avatargen.service.migrations import migrate as run_migrations

    db = Database(config.database, config.data_dir)
    if migrate:
        run_migrations(db)
    return db


def worker_pool(
    db: Database,
    config: ServiceConfig,
    catalog,
    backend: BackendOptions,
    settings: dict[str, Any],
    count: int,
):
    from avatargen.config import Config
    from avatargen.service.queue import Queue
    from avatargen.service.worker import WorkerPool

    shared = SharedEngine(catalog, run_settings(settings, backend), Config.from_dict(settings))
    return WorkerPool(Queue(db, config.limits, config.max_pending_per_user), shared, config, count)
