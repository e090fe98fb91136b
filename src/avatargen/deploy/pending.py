"""An `--endpoint-after pause|scale-to-zero` promised by a run that never got to keep it.

A batch ending normally (Ctrl-C and SIGTERM included) pauses or scales its endpoint in
batch_hooks.finish(); a `kill -9`, a power cut or an OOM kill skips that, and the endpoint keeps
running and billing with nothing to tell the user. So the promise is written down when the batch
starts (the process id, the endpoint, the action) and crossed out when it is kept. A promise
whose process is gone is reported by the next `generate`/`retry` and by `endpoint list`, until
the endpoint is paused, scaled to zero or deleted (by a later batch or by hand).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def path() -> Path:
    from avatargen.settings import data_dir

    return data_dir() / "endpoint-after-pending.json"


def _load() -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path().read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}


def _save(data: dict[str, dict[str, Any]]) -> None:
    target = path()
    with contextlib.suppress(OSError):  # bookkeeping: never the reason a batch fails
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, target)


def promise(where: str, action: str) -> None:
    """This process will `action` endpoint `where` (namespace/name) when its batch ends."""
    data = _load()
    data[str(os.getpid())] = {
        "endpoint": where,
        "action": action,
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    _save(data)


def kept(where: str) -> None:
    """The endpoint was paused, scaled to zero or deleted: every promise about it is settled
    (this run's, and those of killed runs before it)."""
    data = _load()
    left = {pid: entry for pid, entry in data.items() if entry.get("endpoint") != where}
    if left != data:
        _save(left)


def withdraw() -> None:
    """This process's promise, crossed out (the action ran, or failed and was said)."""
    data = _load()
    if data.pop(str(os.getpid()), None) is not None:
        _save(data)


def broken() -> list[dict[str, Any]]:
    """The promises of processes that no longer run, oldest first."""
    from avatargen.ledger import pid_alive

    found = []
    for pid, entry in _load().items():
        if pid.isdigit() and not pid_alive(int(pid)):
            found.append({**entry, "pid": int(pid)})
    return sorted(found, key=lambda e: str(e.get("since", "")))


def report(say: Callable[[str], None]) -> int:
    """One warning per endpoint a killed run left running; how many."""
    shown: set[str] = set()
    for entry in broken():
        where = str(entry.get("endpoint"))
        if where in shown:
            continue
        shown.add(where)
        action = entry.get("action", "scale-to-zero")
        name = where.rsplit("/", 1)[-1]
        say(
            f"endpoint {where} was left running: the run of {entry.get('since', '?')} (pid {entry.get('pid')}) "
            f"asked for --endpoint-after {action} but was killed before it; it may still be billing. "
            f"Run: avatargen endpoint {action} {name}"
        )
    return len(shown)
