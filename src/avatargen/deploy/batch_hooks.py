"""What `generate` and `retry` do with an endpoint avatargen deployed: before the batch, refuse a paused
one (or resume it with --resume-endpoint) and read its replicas; while it runs, follow the
replica count; after it (Ctrl-C included), pause it or scale it to zero if asked.

Only an endpoint named in the deploy record (records.py) whose URL the batch uses is touched:
an --endpoint URL of somebody else's server is left alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from avatargen.errors import AvatargenError, ConfigError, ModelUnavailable, UsageError
from avatargen.settings import ENDPOINT_AFTER as AFTER

REFRESH_S = 15.0  # how often the replica count is read again while a batch runs


def check_after(value: str, source: str) -> str:
    if value not in AFTER:
        cls = UsageError if source.startswith("--") else ConfigError
        raise cls(f"{source} must be one of {', '.join(AFTER)}, got '{value}'")
    return value


class EndpointSession:
    def __init__(
        self,
        record: dict[str, Any] | None,
        model_key: str,
        *,
        after: str,
        resume: bool,
        token: str | None,
        say: Callable[[str], None],
        refresh_s: float | None = None,
    ) -> None:
        self.record = record
        self.model_key = model_key
        self.after = after
        self.resume = resume
        self.cli_token = token
        self.say = say
        self.refresh_s = refresh_s or REFRESH_S  # read at run time: tests shorten it
        self.api: Any = None
        self.replicas: int | None = None  # running now, as the API last said
        self.max_replicas: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return self.record is not None

    @property
    def where(self) -> str:
        assert self.record is not None
        return f"{self.record['namespace']}/{self.record['name']}"

    def _call(self, action: str) -> Any:
        from avatargen.deploy import hub

        method = getattr(self.api, f"{action.replace('-', '_')}_inference_endpoint")
        assert self.record is not None
        return hub.call(
            f"{action} endpoint {self.where}", method, self.record["name"], namespace=self.record["namespace"]
        )

    def start(self) -> None:
        if not self.active:
            return
        from avatargen.deploy import hub

        try:
            self.api = hub.hf_api(hub.require_token(self.cli_token))
            endpoint = self._call("get")
        except AvatargenError as exc:
            if self.after != "keep" or self.resume:
                raise  # asked to act on the endpoint: not being able to is an error now, not at the end
            self.say(f"could not read the state of endpoint {self.where}: {exc.message}")
            self.record = None
            return
        if endpoint.status == "paused":
            if not self.resume:
                self.api = None  # refused before any change: nothing for finish() to undo
                raise ModelUnavailable(
                    f"endpoint {self.where} is paused: requests would wait for nothing",
                    "add --resume-endpoint to start it (billing resumes), or: avatargen endpoint resume "
                    f"{self.record['name']} --wait",
                )
            self.say(f"resuming endpoint {self.where}")
            endpoint = self._call("resume")
            from avatargen.deploy.run import DEFAULT_WAIT_S, wait_running

            endpoint = wait_running(endpoint, DEFAULT_WAIT_S, lambda state, _t: None)
        self._read(endpoint.raw)
        if self.after != "keep":  # written down, so a kill -9 before finish() is found later
            from avatargen.deploy import pending

            pending.promise(self.where, self.after)

    def _read(self, raw: dict) -> None:
        status = raw.get("status") or {}
        scaling = (raw.get("compute") or {}).get("scaling") or {}
        ready = status.get("readyReplica")
        self.replicas = ready if isinstance(ready, int) else self.replicas
        top = scaling.get("maxReplica")
        self.max_replicas = top if isinstance(top, int) and top >= 1 else self.max_replicas

    def follow(self) -> None:
        """Re-read the replica count every refresh_s seconds until stop()."""
        if not self.active or self.api is None or self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.wait(self.refresh_s):
                with contextlib.suppress(AvatargenError):
                    self._read(self._call("get").raw)

        self._thread = threading.Thread(target=loop, name="avatargen-replicas", daemon=True)
        self._thread.start()

    def finish(self) -> None:
        self._stop.set()
        if not self.active or self.after == "keep" or self.api is None:
            return
        from avatargen.deploy import pending

        try:
            endpoint = self._call(self.after)
        except AvatargenError as exc:  # the batch's own outcome matters more: say it, do not raise
            from avatargen.output import warn

            pending.withdraw()  # said here, now: not again as a killed run's
            warn(f"could not {self.after} endpoint {self.where}: {exc.message}")
            return
        pending.kept(self.where)
        self.say(f"endpoint {self.where}: {endpoint.status} (--endpoint-after {self.after})")


def session_for(
    model: Any,
    endpoint_option: str | None,
    *,
    config: Any,
    after: str,
    resume: bool,
    token: str | None,
    say: Callable[[str], None],
) -> EndpointSession:
    """The session for this batch's model: active only for an endpoint avatargen deployed and
    the batch uses (its URL is the recorded one)."""
    from avatargen.deploy import pending, records
    from avatargen.output import warn

    pending.report(warn)  # an endpoint a killed run promised to pause or scale to zero
    record = None
    if records.all_for(model.key):
        from avatargen.providers.select import configured_urls, resolve_endpoint

        url, source = resolve_endpoint(model, endpoint_option, config=config)
        in_use = configured_urls(model, config=config) if source.startswith("config") else [url]
        # The endpoint whose URL the batch uses (the first such): never another one deployed for
        # the same model, nor one whose URL is unknown.
        record = next((r for u in in_use if (r := records.for_url(model.key, u))), None)
    if record is None and after != "keep":
        say(
            f"--endpoint-after {after}: no endpoint deployed by avatargen serves {model.alias}; nothing to do"
        )
    return EndpointSession(record, model.key, after=after, resume=resume, token=token, say=say)


@contextlib.contextmanager
def running(session: EndpointSession):
    """start() before the batch, finish() after it, however it ends: a signal, a failed state or
    the time limit while start() waits for a resumed endpoint included (it bills from the resume)."""
    try:
        session.start()
        session.follow()
        yield session
    finally:
        session.finish()


SLOTS_PER_REPLICA = 2  # requests per replica: one generating, one uploading or queued behind it


def parse_concurrency(text: str | None) -> int | str | None:
    """--concurrency: a number from 1 to 64, or 'auto'."""
    if text is None or text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 64:
        raise UsageError(f"--concurrency must be a number from 1 to 64 or auto, got '{text}'")
    return value


def scaling(
    session: EndpointSession | None,
    model: Any,
    run_settings: Any,
    concurrency: int | str | None,
    configured_concurrency: bool,
    say: Callable[[str], None],
    config: Any,
) -> Callable[..., Any] | None:
    """Set the batch's concurrency and return the provider factory that spreads the model's jobs
    over its URLs (endpoints.<key> as a list) under the replica-following cap; None when the
    plain single provider will do."""
    import os

    from avatargen.providers.pool import Capacity, EndpointPool
    from avatargen.providers.select import ENDPOINT_ENV, configured_urls, make_provider

    overridden = run_settings.endpoint is not None or bool(os.environ.get(ENDPOINT_ENV, "").strip())
    urls = (
        []
        if overridden or run_settings.provider not in (None, "hf-endpoint")
        else configured_urls(model, config=config)
    )
    known = session is not None and session.active and session.max_replicas is not None
    auto = concurrency == "auto" or (concurrency is None and not configured_concurrency and known)
    if auto and not known:
        say(
            f"--concurrency auto: no replica count for {model.alias} (not deployed by avatargen); using a fixed one"
        )
        auto = False
    capacity = None
    others = max(0, len(urls) - 1) * SLOTS_PER_REPLICA  # the other servers' share
    if auto:
        assert session is not None and session.max_replicas is not None
        watched = session
        capacity = Capacity(lambda: max(1, watched.replicas or 1) * SLOTS_PER_REPLICA + others)
        run_settings.concurrency = session.max_replicas * SLOTS_PER_REPLICA + others
        run_settings.concurrency_auto = True  # so that `retry` follows them too
        say(
            f"concurrency follows the replicas of {session.where}: {session.replicas or 0} of "
            f"{session.max_replicas} running, {SLOTS_PER_REPLICA} requests each"
        )
    elif len(urls) > 1 and concurrency is None and not configured_concurrency:
        run_settings.concurrency = max(run_settings.concurrency, SLOTS_PER_REPLICA * len(urls))
    if len(urls) < 2 and capacity is None:
        return None

    def factory(candidate: Any, **kwargs: Any) -> Any:
        if candidate.key != model.key or kwargs.get("endpoint"):
            return make_provider(candidate, **kwargs)  # fallbacks, and an --endpoint, stay single
        members = [make_provider(candidate, **{**kwargs, "endpoint": url}) for url in urls] or [
            make_provider(candidate, **kwargs)
        ]
        return EndpointPool(members, capacity=capacity, say=say)

    return factory
