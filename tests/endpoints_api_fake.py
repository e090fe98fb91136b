"""A loopback fake of the two Hugging Face APIs `avatargen endpoint deploy` talks to, through
huggingface_hub's HfApi, with the JSON shapes of the real ones:

- the Hub (HF_ENDPOINT): GET /api/whoami-v2, POST /api/repos/create (409 when it exists),
  POST /api/models/{repo}/preupload/{rev} and POST /api/models/{repo}/commit/{rev} (NDJSON:
  a header line, then one line per file with its base64 content);
- the Inference Endpoints API v2 (AVATARGEN_ENDPOINTS_API = {url}v2): /endpoint/{ns} (GET list,
  POST create), /endpoint/{ns}/{name} (GET, PUT update, DELETE), .../pause, .../resume,
  .../scale-to-zero, and /provider/{ns} (the hardware with its price per hour).

Each GET of an endpoint moves it one step along `script` (pending -> initializing -> running by
default, or -> failed with `fail_message`), as the real one moves while it deploys. Every request
is recorded (method, path, JSON body, whether the expected token came with it).
"""

from __future__ import annotations

import base64
import copy
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from loopback import LoopbackServer

USER = "alice"
TOKEN = "hf_fakeDeployToken1234567890"

HARDWARE = {
    "vendors": [
        {
            "name": "aws",
            "regions": [
                {
                    "name": "us-east-1",
                    "label": "N. Virginia",
                    "status": "available",
                    "computes": [
                        _c
                        for _c in (
                            {
                                "id": f"aws-us-east-1-{kind}-x1",
                                "accelerator": "gpu",
                                "instanceType": kind,
                                "instanceSize": "x1",
                                "architecture": arch,
                                "numAccelerators": 1,
                                "numCpus": 4,
                                "memoryGb": 16,
                                "gpuMemoryGb": mem,
                                "pricePerHour": price,
                                "status": "available",
                                "quota": {"maxAccelerators": 4, "usedAccelerators": 0},
                            }
                            for kind, arch, mem, price in (
                                ("nvidia-t4", "Nvidia T4", 16, 0.5),
                                ("nvidia-l4", "Nvidia L4", 24, 0.8),
                            )
                        )
                    ],
                }
            ],
        }
    ]
}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class EndpointsApiFake(LoopbackServer):
    def __init__(
        self,
        endpoint_url: str = "http://127.0.0.1:9/",
        script: tuple[str, ...] = ("pending", "initializing", "running"),
        fail_message: str = "",
    ) -> None:
        self.endpoint_url = endpoint_url  # what a running endpoint reports as its URL
        self.script = script
        self.fail_message = fail_message
        self.ready_replica: int | None = None  # set by a test: the replicas running now
        self.repos: dict[str, dict[str, bytes]] = {}  # repo id -> files
        self.endpoints: dict[str, dict] = {}  # "ns/name" -> raw endpoint
        self.steps: dict[str, list[str]] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.listen(self._handler())

    @property
    def api(self) -> str:
        return self.url + "v2"

    def env(self) -> dict[str, str]:
        return {
            "HF_ENDPOINT": self.url.rstrip("/"),
            "AVATARGEN_ENDPOINTS_API": self.api,
            "HF_TOKEN": TOKEN,
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        }

    def calls(self, method: str, fragment: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == method and fragment in r["path"]]

    # ------------------------------------------------------------ endpoint state
    def _raw(self, body: dict, namespace: str) -> dict:
        model = dict(body.get("model") or {})
        model.setdefault("task", None)
        model.setdefault("revision", None)
        model.setdefault("env", {})
        model.setdefault("secrets", {})
        return {
            "name": body["name"],
            "type": body.get("type", "authenticated"),
            "accountId": None,
            "compute": copy.deepcopy(body.get("compute") or {}),
            "model": model,
            "provider": dict(body.get("provider") or {}),
            "tags": list(body.get("tags") or []),
            "healthRoute": "/health",
            "cacheHttpResponses": False,
            "status": {
                "createdAt": _now(),
                "createdBy": {"id": "1", "name": namespace},
                "updatedAt": _now(),
                "updatedBy": {"id": "1", "name": namespace},
                "private": None,
                "state": "pending",
                "message": "Endpoint waiting to be scheduled",
                "readyReplica": 0,
                "targetReplica": 1,
            },
        }

    def _advance(self, key: str) -> None:
        raw = self.endpoints[key]
        steps = self.steps.get(key) or []
        if steps:
            state = steps.pop(0)
            self._set_state(raw, state)
        if self.ready_replica is not None and raw["status"]["state"] == "running":
            raw["status"]["readyReplica"] = self.ready_replica
            raw["status"]["targetReplica"] = self.ready_replica

    def _set_state(self, raw: dict, state: str) -> None:
        status = raw["status"]
        status["state"] = state
        status["updatedAt"] = _now()
        status["message"] = {"running": "Endpoint is running", "failed": "Endpoint failed"}.get(state, state)
        if state == "failed":
            status["errorMessage"] = self.fail_message
        if state == "running":
            status["url"] = self.endpoint_url.rstrip("/")
            status["readyReplica"] = status["targetReplica"] = 1
        elif state in ("paused", "scaledToZero"):
            status["readyReplica"] = status["targetReplica"] = 0
            status.pop("url", None) if state == "paused" else None

    def _deploy_steps(self) -> list[str]:
        if self.fail_message:
            return ["pending", "initializing", "failed"]
        return list(self.script)

    # ------------------------------------------------------------ HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, data) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self, method: str) -> None:
                raw_body = self._body()
                path = urlsplit(self.path).path
                try:
                    parsed = json.loads(raw_body) if raw_body and "/commit/" not in path else None
                except ValueError:
                    parsed = None
                authorized = self.headers.get("Authorization") == f"Bearer {TOKEN}"
                with fake.lock:
                    fake.requests.append(
                        {"method": method, "path": path, "json": parsed, "authorized": authorized}
                    )
                    if not authorized:
                        return self._reply(401, {"error": "Invalid credentials in Authorization header"})
                    status, data = fake._route(method, path, parsed, raw_body)
                self._reply(status, data)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

        return Handler

    def _route(self, method: str, path: str, body, raw_body: bytes):
        parts = [p for p in path.split("/") if p]
        if path == "/api/whoami-v2":
            return 200, {"type": "user", "name": USER, "orgs": [], "auth": {"type": "access_token"}}
        if path == "/api/validate-yaml":  # huggingface_hub checks a README's metadata before a commit
            return 200, {"errors": [], "warnings": []}
        if path == "/api/repos/create" and method == "POST":
            repo_id = f"{body.get('organization') or USER}/{body['name']}"
            if repo_id in self.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}{repo_id}"}
            self.repos[repo_id] = {}
            return 200, {"url": f"{self.url}{repo_id}", "name": repo_id, "id": "r1"}
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
            files = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in body["files"]
            ]
            return 200, {"files": files, "commitOid": "0" * 40}
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
            repo_id = f"{parts[2]}/{parts[3]}"
            if repo_id not in self.repos:
                return 404, {"error": "Repository not found"}
            for line in raw_body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    self.repos[repo_id][value["path"]] = base64.b64decode(value["content"])
            oid = f"{len(self.requests):040x}"
            return 200, {"commitUrl": f"{self.url}{repo_id}/commit/{oid}", "commitOid": oid, "success": True}
        if parts[:1] == ["v2"] and len(parts) >= 3 and parts[1] == "provider":
            return 200, HARDWARE
        if parts[:2] == ["v2", "endpoint"]:
            return self._endpoints_route(method, parts[2:], body)
        return 404, {"error": f"no route {method} {path}"}

    def _endpoints_route(self, method: str, parts: list[str], body):
        namespace = parts[0]
        if len(parts) == 1:
            if method == "GET":
                items = [copy.deepcopy(v) for k, v in self.endpoints.items() if k.startswith(namespace + "/")]
                return 200, {"items": items}
            key = f"{namespace}/{body['name']}"
            if key in self.endpoints:
                return 409, {"error": "Endpoint name already exists"}
            self.endpoints[key] = self._raw(body, namespace)
            self.steps[key] = self._deploy_steps()[1:]
            return 200, copy.deepcopy(self.endpoints[key])
        key = f"{namespace}/{parts[1]}"
        if key not in self.endpoints:
            return 404, {"error": f"Endpoint {parts[1]} not found"}
        raw = self.endpoints[key]
        action = parts[2] if len(parts) > 2 else None
        if action is None and method == "GET":
            self._advance(key)
            return 200, copy.deepcopy(raw)
        if action is None and method == "PUT":
            for section, values in body.items():
                if isinstance(values, dict) and isinstance(raw.get(section), dict):
                    for name, value in values.items():
                        if isinstance(value, dict) and isinstance(raw[section].get(name), dict):
                            raw[section][name].update(value)
                        else:
                            raw[section][name] = value
                else:
                    raw[section] = values
            self._set_state(raw, "updating")
            self.steps[key] = ["running"]
            return 200, copy.deepcopy(raw)
        if action is None and method == "DELETE":
            del self.endpoints[key]
            return 200, {}
        if action == "pause":
            self._set_state(raw, "paused")
            self.steps[key] = []
        elif action == "resume":
            self._set_state(raw, "pending")
            self.steps[key] = ["initializing", "running"]
        elif action == "scale-to-zero":
            self._set_state(raw, "scaledToZero")
            self.steps[key] = []
        else:
            return 404, {"error": "no such action"}
        return 200, copy.deepcopy(raw)
