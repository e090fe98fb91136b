"""What keeps `serve` and the local backend fast (issue 15): TCP_NODELAY on accepted connections,
and every pipeline call on one thread whatever thread asks (one OpenMP team, not one per thread)."""

# ruff: noqa: F811  (pytest fixtures imported from serve_fixtures are shadowed by parameters)
from __future__ import annotations

import socket
import threading
import time

import pytest
from starlette.testclient import TestClient

from avatargen.catalog import load_catalog
from avatargen.providers.base import GenerationRequest
from avatargen.providers.local import LocalProvider
from avatargen.serve import server as server_mod
from avatargen.serve.pipelines import ControlNetService, ModelSpec
from avatargen.serve.runner import PipelineRunner
from avatargen.serve.server import ModelHost, create_app
from serve_fixtures import fresh_local_backend, pose_png, request_body, tiny_home, tiny_models  # noqa: F401

SPEC = ModelSpec(key="tiny-key", architecture="sd15", controlnet="c", base_model="b", width=64, height=64)


class ThreadRecorder:
    """Notes the thread of each call, and whether two calls ever overlapped."""

    def __init__(self, hold_s: float = 0.05) -> None:
        self.hold_s = hold_s
        self.threads: list[int] = []
        self.running = 0
        self.overlapped = False
        self._lock = threading.Lock()

    def __call__(self, result=None):
        with self._lock:
            self.threads.append(threading.get_ident())
            self.running += 1
            self.overlapped |= self.running > 1
        time.sleep(self.hold_s)  # long enough for callers in other threads to arrive meanwhile
        with self._lock:
            self.running -= 1
        return result


def _from_threads(count: int, target) -> list[int]:
    """Run `target` in `count` threads at once; their idents."""
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return [thread.ident for thread in threads]


def test_runner_runs_every_call_on_its_one_thread_in_turn():
    runner = PipelineRunner()
    record = ThreadRecorder(hold_s=0.01)
    results: list[int] = []
    callers = _from_threads(6, lambda: results.append(runner.call(record, 7)))
    assert results == [7] * 6
    assert set(record.threads) == {runner.thread.ident}
    assert runner.thread.ident not in callers and runner.thread.daemon
    assert not record.overlapped
    # The caller gets the call's own exception; the thread lives on.
    with pytest.raises(ZeroDivisionError):
        runner.call(lambda: 1 / 0)
    assert runner.call(record, "again") == "again"
    # A call from inside a call runs at once instead of waiting for itself.
    assert runner.call(lambda: runner.call(lambda: "nested")) == "nested"


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_openmp_threads_sleep_when_idle_unless_the_user_chose(given, expected):
    """Set before torch loads (libgomp reads it then): a fresh interpreter, as `serve` is."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = (
        "import os; from avatargen.serve.runner import openmp_waits_passively as f; f(); "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected


def test_a_call_cancelled_before_its_turn_never_runs():
    runner = PipelineRunner()
    release = threading.Event()
    first = runner.submit(release.wait, 10)
    ran: list[str] = []
    second = runner.submit(ran.append, "second")
    assert second.cancel()
    release.set()
    assert first.result(10) is True
    assert runner.call(lambda: "after") == "after"  # the queue went past the cancelled call
    assert ran == []


class RecordingService:
    def __init__(self) -> None:
        self.record = ThreadRecorder()

    def generate(self, params):
        from PIL import Image

        return self.record(Image.new("RGB", (params.width, params.height), "white"))


def test_serve_generates_on_one_thread_whatever_worker_reads_the_request():
    service = RecordingService()
    host = ModelHost(SPEC, lambda: service, runner=PipelineRunner())
    host.start().join(5)
    statuses: list[int] = []
    with TestClient(create_app(host, queue_size=8)) as client:
        _from_threads(6, lambda: statuses.append(client.post("/", json=request_body()).status_code))
    assert statuses == [200] * 6
    assert set(service.record.threads) == {host.runner.thread.ident}
    assert not service.record.overlapped


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_local_backend")
def test_local_backend_loads_and_generates_on_the_pipeline_thread(tiny_home, monkeypatch):
    from avatargen.serve.runner import pipeline_runner

    record = ThreadRecorder(hold_s=0)
    build, generate = ControlNetService._build, ControlNetService.generate
    monkeypatch.setattr(ControlNetService, "_build", lambda self: record(build(self)))
    monkeypatch.setattr(ControlNetService, "generate", lambda self, params: record(generate(self, params)))
    provider = LocalProvider(load_catalog().lookup("controlnet-openpose-sd15"), tiny=True, say=lambda _: None)
    request = GenerationRequest(
        model=provider.model,
        prompt="a portrait",
        negative_prompt="",
        width=64,
        height=64,
        steps=2,
        guidance_scale=5.0,
        controlnet_conditioning_scale=1.0,
        seed=3,
        pose_png=pose_png(),
    )
    images: list[bytes] = []
    callers = _from_threads(3, lambda: images.append(provider.generate(request).image))
    assert len(images) == 3 and len(set(images)) == 1  # the same seed, the same image
    assert len(record.threads) == 4  # one load, three images
    assert set(record.threads) == {pipeline_runner().thread.ident}
    assert not set(callers) & set(record.threads)


@pytest.mark.slow
def test_accepted_connections_have_tcp_nodelay():
    """Without it, Nagle + delayed ACK hold each keep-alive response ~40 ms."""
    host = ModelHost(SPEC, lambda: RecordingService(), runner=PipelineRunner())
    host.start().join(5)
    sock = server_mod._bind("127.0.0.1", 0)  # as run_server binds and serves
    server = server_mod.uvicorn_server(create_app(host))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        with socket.create_connection(sock.getsockname(), timeout=10) as client:
            client.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = b""
            while not answer.endswith(b"Ok"):
                chunk = client.recv(4096)
                assert chunk, answer
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200")
            connections = list(server.server_state.connections)
            assert len(connections) == 1
            accepted = connections[0].transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
