"""What both HTTP backends share: the client, which host may see which token, and error text.

Token rule (docs/backends.md documents it):
- the Hugging Face token goes only to Hugging Face hosts over https: huggingface.co,
  *.huggingface.co (the router) and *.huggingface.cloud (Inference Endpoints);
- `AVATARGEN_ENDPOINT_TOKEN` (e.g. the `--token` of `avatargen serve`) goes only to the host
  of the endpoint it was resolved with, whatever that host is;
- redirects are never followed, so a token can never travel on to another host;
- credentials inside a URL (`user:pass@`) are never sent, as Basic auth or otherwise.
"""

from __future__ import annotations

import json
import os
import time
from urllib.parse import urlsplit

import httpx

from avatargen.redact import redact_text, remember_secret
from avatargen.settings import ENDPOINT_TOKEN_ENV, Secret, TokenInfo

HF_HOST_SUFFIXES = (".huggingface.co", ".huggingface.cloud")
HF_HOSTS = ("huggingface.co",)
CONNECT_TIMEOUT = 10.0
MESSAGE_LIMIT = 300
PROBE_TIMEOUT_S = 10.0  # a status probe: short, `avatargen status` must answer quickly
# The largest answer read. An SDXL Ultra PNG is a few MB; anything near this is not an image of
# ours, and reading it whole would hold it all in memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
PROBE_BODY_BYTES = 1024 * 1024  # /health and the Hub API answer in a few KB


class BodyTooLarge(Exception):
    """The answer's body passed the cap; reading stopped there and the connection was dropped."""

    def __init__(self, cap: int, status_code: int) -> None:
        super().__init__(f"more than {cap // (1024 * 1024)} MB")
        self.cap = cap
        self.status_code = status_code


def send_capped(
    client: httpx.Client, method: str, url: str, *, cap: int = MAX_BODY_BYTES, **kwargs
) -> httpx.Response:
    """Send, then read the answer's (decoded) body as a stream, at most `cap` bytes: past it, raise
    BodyTooLarge without reading on. The response returned holds the whole body, like a plain send.

    The whole exchange (connect, headers, body) ends within the client's connect + read timeout,
    or a number `timeout` given for this request (or an earlier deadline the caller set, e.g. the job's wait_timeout), however slowly the server
    sends: past it, httpx.ReadTimeout (see deadline.py)."""
    from avatargen.providers.deadline import deadline_in

    asked = kwargs.get("timeout")
    if isinstance(asked, int | float):
        whole = float(asked)  # a probe's one number: the whole exchange's budget
    else:
        timeout = asked if isinstance(asked, httpx.Timeout) else client.timeout
        whole = (timeout.connect or CONNECT_TIMEOUT) + (timeout.read or 60.0)
    with deadline_in(whole):
        return _send_capped(client, method, url, cap, kwargs)


def without_userinfo(url: str | httpx.URL) -> httpx.URL:
    """The URL without `user:pass@`. httpx would turn those into a Basic Authorization header; the
    rule is that URL credentials are never sent (only the tokens of the token rule are), so a
    `user:pass@` in --endpoint never replaces the endpoint token, nor reaches a webhook."""
    parsed = httpx.URL(url)
    return parsed.copy_with(userinfo=b"") if parsed.userinfo else parsed


def _send_capped(client: httpx.Client, method: str, url: str, cap: int, kwargs: dict) -> httpx.Response:
    request = client.build_request(method, without_userinfo(url), **kwargs)
    response = client.send(request, stream=True)
    chunks: list[bytes] = []
    try:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            raise BodyTooLarge(cap, response.status_code)
        if declared.isdigit() and response.headers.get("content-encoding", "identity") == "identity":
            # Not compressed, and HTTP/1.1 framing stops at the declared length: read as usual.
            response.read()
            return response
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > cap:
                raise BodyTooLarge(cap, response.status_code)
            chunks.append(chunk)
    finally:
        response.close()  # unread data left: httpx drops the connection instead of draining it
    # The body is decoded already: the new response must not decode it again.
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=response.extensions,
    )


def new_client(read_timeout: float = 60.0) -> httpx.Client:
    """A sync client shared by the worker threads of one backend (httpx.Client is thread-safe)."""
    timeout = httpx.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout, write=60.0, pool=None)
    # The batch bounds the requests in flight (--concurrency, any number); the pool keeps one
    # connection per request in flight. httpx's default keeps 20 alive and opens at most 100:
    # past 20 workers, connections were closed after each answer and opened again.
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    from avatargen.providers import deadline, warmup

    client = httpx.Client(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        headers={"User-Agent": user_agent()},
        verify=warmup.ssl_context() or True,  # the same context httpx would build, built ahead
    )
    return deadline.install(client)  # send_capped's whole-request deadline holds on it


def user_agent() -> str:
    from avatargen import __version__

    return f"avatargen/{__version__}"


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def is_hf_host(url: str) -> bool:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and (host in HF_HOSTS or host.endswith(HF_HOST_SUFFIXES))


class TokenScope:
    """Decides, per URL, which token (if any) goes into the Authorization header."""

    def __init__(self, hf_token: TokenInfo | None, endpoint_url: str | None = None) -> None:
        self.hf_token = hf_token.token if hf_token else None
        raw = os.environ.get(ENDPOINT_TOKEN_ENV, "").strip()
        self.endpoint_token = Secret(raw) if raw and endpoint_url else None
        self.endpoint_host = host_of(endpoint_url) if endpoint_url else None
        for value in self.secrets():  # --token, the config's or the file's token: masked from now on
            remember_secret(value)

    def token_for(self, url: str) -> Secret | None:
        if self.endpoint_token is not None and host_of(url) == self.endpoint_host:
            return self.endpoint_token
        if self.hf_token is not None and is_hf_host(url):
            return self.hf_token
        return None

    def headers_for(self, url: str) -> dict[str, str]:
        token = self.token_for(url)
        return {"Authorization": f"Bearer {token.reveal()}"} if token else {}

    def secrets(self) -> list[str]:
        """Every token value this scope knows, for scrubbing text before it leaves."""
        return [s.reveal() for s in (self.hf_token, self.endpoint_token) if s is not None]


def scrub(text: str, secrets: list[str]) -> str:
    """`text` without these secrets, any other secret avatargen knows, URL credentials, or an
    HF-shaped token the server echoes back."""
    return redact_text(text, secrets)


def server_message(response: httpx.Response) -> str:
    """The server's own words, cleaned: JSON {"error": str|list}, X-Error-Message, or plain text."""
    message = ""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        error = data.get("error") or data.get("message") or data.get("detail")
        if isinstance(error, list):
            message = "; ".join(_as_text(item) for item in error)
        elif error:
            message = _as_text(error)
    if not message:
        message = response.headers.get("x-error-message", "")
    if not message and data is None:
        text = response.text.strip()
        if "<html" in text[:500].lower() or "<!doctype" in text[:100].lower():
            message = "an HTML page"  # a proxy or login page: its markup says nothing useful
        else:
            message = text
    if not message:
        message = response.reason_phrase or f"HTTP {response.status_code}"
    message = " ".join(message.split())
    if len(message) > MESSAGE_LIMIT:
        message = message[: MESSAGE_LIMIT - 1] + "…"
    return message


def _as_text(item: object) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "msg" in item:  # FastAPI-style validation entries
        where = ".".join(str(p) for p in item.get("loc", []) if p != "body")
        return f"{where}: {item['msg']}" if where else str(item["msg"])
    return json.dumps(item, default=str)


def estimated_time(response: httpx.Response) -> float | None:
    """The `estimated_time` of a 503 'loading' answer, if the body has one."""
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict):
        value = data.get("estimated_time")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value)
    return None


def elapsed_ms(began: float) -> float:
    """Milliseconds since `began` (a time.perf_counter() value), for round-trip figures."""
    return round((time.perf_counter() - began) * 1000, 1)


def network_detail(exc: Exception, secrets: list[str]) -> str:
    """A transport error as one cleaned phrase, e.g. 'ConnectError: Connection refused'."""
    return scrub(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, secrets)
