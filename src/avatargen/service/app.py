"""The HTTP routes (docs/api.md): the original app backend's, unchanged, plus accounts and admin.

Handlers are async; every database call runs in the thread pool (one connection per thread).
Every error is `{"error": {"code", "message"}}` with a stable code. Another user's generation,
photo or image is 404 not_found exactly like one that does not exist; admin routes are 404 to
everyone else, so they are not revealed either.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from avatargen.app.request import GenerateRequest
from avatargen.catalog import QUALITIES, TIERS, Catalog, Model
from avatargen.errors import AvatargenError, CreditsError, LimitError
from avatargen.service import views
from avatargen.service.accounts import Accounts, User
from avatargen.service.config import ServiceConfig
from avatargen.service.queue import NewJob, Queue, QueueFull, new_id, priority_of
from avatargen.service.uploads import ApiError, check_image, read_body, store

log = logging.getLogger("avatargen.service")
BASE = views.BASE
WEB_DIR = Path(__file__).parent / "web"
MAX_POSES = 20
MAX_PROMPT = 2000


class RateLimiter:
    """At most N generate requests per user per rolling minute (in this process)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[int, collections.deque] = {}
        self._lock = threading.Lock()

    def check(self, user_id: int) -> None:
        if not self.per_minute:
            return
        now = time.monotonic()
        with self._lock:
            seen = self._seen.setdefault(user_id, collections.deque())
            while seen and now - seen[0] > 60:
                seen.popleft()
            if len(seen) >= self.per_minute:
                wait = int(60 - (now - seen[0])) + 1
                raise ApiError(
                    429,
                    "rate_limited",
                    f"more than {self.per_minute} requests a minute",
                    {"Retry-After": str(wait)},
                )
            seen.append(now)


class Service:
    """What the routes need: settings, database, accounts, queue, catalog, local workers."""

    def __init__(self, config: ServiceConfig, db, catalog: Catalog, pool=None) -> None:
        self.config = config
        self.db = db
        self.catalog = catalog
        self.accounts = Accounts(db)
        self.queue = Queue(db, config.limits, config.max_pending_per_user)
        self.pool = pool
        self.rate = RateLimiter(config.rate_per_minute)
        self._thumbs: dict[str, bytes] = {}


# ---------------------------------------------------------------- helpers
def error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def not_found() -> ApiError:
    return ApiError(404, "not_found", "no such generation, photo or route for this account")


async def authenticate(request: Request) -> User:
    svc: Service = request.app.state.service
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401, "unauthorized", "send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
        )
    user = await run_in_threadpool(svc.accounts.authenticate, token.strip())
    if user is None:
        raise ApiError(
            401,
            "unauthorized",
            "the token is not valid (revoked or mistyped)",
            {"WWW-Authenticate": "Bearer"},
        )
    return user


async def admin(request: Request) -> User:
    user = await authenticate(request)
    if not user.is_admin:
        raise not_found()
    return user


def model_view(model: Model, user: User) -> dict[str, Any]:
    allowed, reason = True, None
    if not model.enabled:
        allowed, reason = False, model.disabled_reason or model.status
    elif TIERS.index(user.tier) < model.tier_rank:
        allowed, reason = False, f"needs the {model.tier} tier (yours: {user.tier})"
    return {
        "modelKey": model.key,
        "name": model.name,
        "description": model.description,
        "quality": model.quality,
        "creditCost": model.credit_cost,
        "tier": model.tier,
        "resolution": model.resolution,
        "processingTime": model.processing_time,
        "priorityQueue": model.priority_queue,
        "allowed": allowed,
        "reason": reason,
    }


def choose_model(catalog: Catalog, user: User, model_key: str | None, quality: str) -> Model:
    if model_key:
        model = catalog.by_key.get(model_key) or catalog.by_key.get(f"avatar-generator:{model_key}")
        if model is None:
            raise ApiError(422, "invalid_model", f"no model '{model_key}' (GET {BASE}/models lists them)")
    else:
        if quality not in QUALITIES:
            raise ApiError(422, "invalid_quality", f"quality must be one of {', '.join(QUALITIES)}")
        # The seed's mapping: each quality's own model, the lowest tier (then cost) that has it;
        # the image models only (an Inference Providers editor is asked for by modelKey).
        matches = [m for m in catalog if m.quality == quality and m.enabled and m.provider != "hf-providers"]
        if not matches:
            raise ApiError(422, "model_unavailable", f"no model offers quality '{quality}' now")
        model = min(matches, key=lambda m: (m.tier_rank, m.credit_cost, m.key))
    if not model.enabled:
        raise ApiError(
            422, "model_unavailable", f"{model.key} is {model.status}: {model.disabled_reason}".rstrip(": ")
        )
    if TIERS.index(user.tier) < model.tier_rank:
        raise ApiError(403, "tier_too_low", f"{model.key} needs the {model.tier} tier; yours is {user.tier}")
    return model


def pose_names(form) -> list[str]:
    from avatargen.poses.templates import get_template

    raw = form.get("poses") or form.get("poseTemplateId") or ""
    if not isinstance(raw, str):
        raise ApiError(422, "invalid_pose", "poseTemplateId must be text")
    names = [p.strip() for p in raw.split(",") if p.strip()]
    if not names:
        raise ApiError(422, "invalid_pose", f"give poseTemplateId (GET {BASE}/pose-templates lists them)")
    if len(names) > MAX_POSES:
        raise ApiError(422, "invalid_pose", f"at most {MAX_POSES} poses in one set")
    out = []
    for name in names:
        try:
            out.append(get_template(name, "poseTemplateId").name)
        except AvatargenError as exc:
            raise ApiError(422, "invalid_pose", exc.message) from None
    return list(dict.fromkeys(out))


def int_field(form, name: str, low: int, high: int) -> int | None:
    value = form.get(name)
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError:
        raise ApiError(422, f"invalid_{name.lower()}", f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise ApiError(422, f"invalid_{name.lower()}", f"{name} must be from {low} to {high}")
    return number


def text_field(form, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_PROMPT:
        raise ApiError(
            422, f"invalid_{name.lower()}", f"{name} must be text of at most {MAX_PROMPT} characters"
        )
    return value


def webhook_field(svc: Service, form) -> str | None:
    url = form.get("webhookUrl")
    if not url:
        return None
    if not svc.config.webhooks:
        raise ApiError(422, "webhooks_disabled", "this service does not send webhooks (service.webhooks)")
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.hostname or len(str(url)) > 2000:
        raise ApiError(422, "invalid_webhook", "webhookUrl must be an http:// or https:// URL")
    return str(url)


async def read_form(request: Request, svc: Service):
    kind = request.headers.get("content-type", "")
    # A form without a file (photoId instead of image) may come url-encoded.
    if not kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        raise ApiError(422, "invalid_request", "send multipart/form-data (curl -F image=@photo.jpg ...)")
    declared = request.headers.get("content-length")
    body = await read_body(
        request.receive,
        svc.config.max_upload_bytes,
        svc.config.body_timeout,
        int(declared) if declared and declared.isdigit() else None,
    )
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        return await Request(request.scope, replay).form(max_files=3, max_fields=40, max_part_size=64 * 1024)
    except HTTPException as exc:
        raise ApiError(422, "invalid_request", f"the multipart body cannot be read ({exc.detail})") from None
    except Exception:
        raise ApiError(422, "invalid_request", "the multipart body cannot be read") from None


MAX_POSE_BYTES = 2_000_000


def check_pose_file(data: bytes) -> tuple[bytes, str]:
    """A pose of the user's own: OpenPose JSON or a skeleton PNG, by its bytes."""
    if len(data) > MAX_POSE_BYTES:
        raise ApiError(413, "too_large", f"'pose' is larger than {MAX_POSE_BYTES} bytes")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data, "png"
    if data.lstrip()[:1] in (b"{", b"["):
        return data, "json"
    raise ApiError(422, "invalid_pose", "'pose' must be OpenPose JSON or a skeleton PNG")


def store_pose(svc: Service, user: User, data: bytes, extension: str) -> str:
    """Store it where every worker finds it, and read it once as the engine will (422 if it cannot)."""
    from avatargen.poses.sources import resolve_pose

    path = store(svc.config.data_dir / "poses" / str(user.id), f"{new_id()}.{extension}", data)
    try:
        resolve_pose(str(path))
    except AvatargenError as exc:
        path.unlink(missing_ok=True)
        raise ApiError(422, "invalid_pose", exc.message.replace(str(path), "'pose'")) from None
    return str(path)


# ---------------------------------------------------------------- generate
@dataclass
class _Asked:
    """A generate request's form, checked: what to make, from which photo."""

    model: Model
    names: list[str]  # pose template names ("custom" for the user's own pose file)
    custom_pose: tuple[bytes, str] | None
    seed: int
    request: GenerateRequest  # prompt, negative prompt, steps: planned as the CLI plans them
    webhook: str | None
    checked: Any  # the new upload (uploads.check_image), or None for an earlier photoId
    photo_id: str
    is_set: bool  # asked as `poses`: answered with the list


async def _read_asked(request: Request, svc: Service, user: User) -> _Asked:
    form = await read_form(request, svc)
    try:
        model = choose_model(
            svc.catalog, user, form.get("modelKey") or None, str(form.get("quality") or "sd")
        )
        custom = form.get("pose")
        custom_pose = None
        if custom is not None and not isinstance(custom, str):  # the user's own OpenPose JSON or skeleton PNG
            custom_pose = check_pose_file(await custom.read())
            names = ["custom"]
        else:
            names = pose_names(form)
        seed = int_field(form, "seed", 0, 2**32 - 1)
        asked = GenerateRequest(
            prompt=text_field(form, "prompt"),
            negative_prompt=text_field(form, "negativePrompt"),
            steps=int_field(form, "steps", 1, 150),
        )
        webhook = webhook_field(svc, form)
        checked, photo_id = await _photo_of(form, svc, user)
        is_set = bool(form.get("poses"))
    finally:
        await form.close()
    seed = secrets.randbelow(2**32) if seed is None else seed
    return _Asked(model, names, custom_pose, seed, asked, webhook, checked, photo_id, is_set)


async def _photo_of(form, svc: Service, user: User) -> tuple[Any, str]:
    """(the checked upload, its new id), or (None, the id of the caller's earlier upload)."""
    upload = form.get("image")
    photo_id = form.get("photoId")
    if upload is not None and not isinstance(upload, str):
        return check_image(await upload.read(), "image", svc.config.max_pixels), new_id()
    if photo_id:
        if await run_in_threadpool(svc.queue.photo, str(photo_id), user.id) is None:
            raise not_found()
        return None, str(photo_id)
    raise ApiError(
        422, "invalid_image", "attach the photo as 'image' (or give the photoId of an earlier upload)"
    )


def _new_jobs(asked: _Asked, user: User, specs: dict[str, str | None]) -> list[NewJob]:
    """One job per pose, its parameters planned by the app layer as `generate`'s are."""
    from avatargen.app.planning import job_params

    model = asked.model
    return [
        NewJob(
            model_key=model.key,
            pose=name,
            quality=model.quality,
            params=job_params(asked.request, model, specs[name] or name).to_dict(),
            seed=asked.seed,
            credit_cost=model.credit_cost,
            priority=priority_of(user.tier, model.priority_queue),
            webhook_url=asked.webhook,
        )
        for name in asked.names
    ]


def _accept(svc: Service, user: User, asked: _Asked, jobs: list[NewJob]) -> list[dict[str, Any]]:
    """The upload stored, the credits reserved and the jobs queued: one transaction (a file
    written for an accept that then fails is removed)."""
    path = photo_row = None
    checked = asked.checked
    if checked is not None:
        path = store(
            svc.config.uploads_dir / str(user.id), f"{asked.photo_id}.{checked.extension}", checked.data
        )
        photo_row = {
            "path": str(path),
            "sha256": checked.sha256,
            "content_type": checked.content_type,
            "width": checked.width,
            "height": checked.height,
        }
    try:
        return svc.queue.accept(user.id, photo_row, asked.photo_id, jobs)
    except BaseException:
        if path is not None:
            path.unlink(missing_ok=True)
        raise


async def generate(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    svc.rate.check(user.id)
    asked = await _read_asked(request, svc, user)
    specs: dict[str, str | None] = dict.fromkeys(
        asked.names, None
    )  # pose name -> the spec the engine resolves
    if asked.custom_pose is not None:
        specs = {"custom": await run_in_threadpool(store_pose, svc, user, *asked.custom_pose)}
    try:
        accepted = await run_in_threadpool(_accept, svc, user, asked, _new_jobs(asked, user, specs))
    except CreditsError as exc:
        raise ApiError(402, "insufficient_credits", exc.message) from None
    except LimitError as exc:
        raise ApiError(429, "rate_limited", exc.message, {"Retry-After": "3600"}) from None
    except QueueFull as exc:
        raise ApiError(
            503, "queue_full", "the queue is full; try again later", {"Retry-After": str(exc.retry_after)}
        ) from None
    if svc.pool is not None:
        svc.pool.wake.set()
    items = [
        {"generationId": a["generationId"], "status": "pending", "creditCost": a["creditCost"],
         "queuePosition": a["queuePosition"], "poseTemplateId": name, "photoId": asked.photo_id}
        for a, name in zip(accepted, asked.names, strict=True)
    ]  # fmt: skip
    if asked.is_set:
        total = sum(i["creditCost"] for i in items)
        return JSONResponse(
            {"generations": items, "creditCost": total, "photoId": asked.photo_id}, status_code=202
        )
    return JSONResponse(items[0], status_code=202)


# ---------------------------------------------------------------- generations
async def get_generation(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    gen_id = request.path_params["gen_id"]

    def look():
        row = svc.queue.get(gen_id, None if user.is_admin else user.id)
        if row is None:
            return None
        return views.generation(row, svc.queue.position(row) if row["status"] == "pending" else None)

    found = await run_in_threadpool(look)
    if found is None:
        raise not_found()
    return JSONResponse(found)


async def list_generations(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    try:
        limit = int(request.query_params.get("limit", "20"))
        cursor = request.query_params.get("cursor")
        before = None
        if cursor:  # "<created_at>_<seq>" of the last generation of the page before
            when, _, seq = cursor.partition("_")
            before = (float(when), int(seq))
    except ValueError:
        raise ApiError(
            422, "invalid_cursor", "limit must be a whole number, cursor a nextCursor given before"
        ) from None
    if not 1 <= limit <= 100:
        raise ApiError(422, "invalid_limit", "limit must be from 1 to 100")
    rows = await run_in_threadpool(svc.queue.list_for, user.id, limit + 1, before)
    more = len(rows) > limit
    rows = rows[:limit]
    return JSONResponse(
        {
            "generations": [views.generation(r) for r in rows],
            "nextCursor": f"{rows[-1]['created_at']!r}_{rows[-1]['seq']}" if more and rows else None,
        }
    )


async def delete_generation(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    outcome = await run_in_threadpool(svc.queue.cancel_or_delete, user.id, request.path_params["gen_id"])
    if outcome is None:
        raise not_found()
    if outcome == "processing":
        raise ApiError(
            409, "processing", "the generation is running now; it can be deleted once it has finished"
        )
    return JSONResponse({"generationId": request.path_params["gen_id"], "status": outcome})


async def generation_image(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    row = await run_in_threadpool(
        svc.queue.get, request.path_params["gen_id"], None if user.is_admin else user.id
    )
    if (
        row is None
        or row["status"] != "completed"
        or not row["output_path"]
        or not Path(row["output_path"]).is_file()
    ):
        raise not_found()
    return FileResponse(
        row["output_path"], media_type="image/png", headers={"Cache-Control": "private, no-store"}
    )


async def photo(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    row = await run_in_threadpool(svc.queue.photo, request.path_params["photo_id"], user.id)
    if row is None or not Path(row["path"]).is_file():
        raise not_found()
    return FileResponse(
        row["path"], media_type=row["content_type"], headers={"Cache-Control": "private, no-store"}
    )


async def faces(request: Request) -> Response:
    svc: Service = request.app.state.service
    await authenticate(request)
    form = await read_form(request, svc)
    try:
        upload = form.get("image")
        if upload is None or isinstance(upload, str):
            raise ApiError(422, "invalid_image", "attach the photo as 'image'")
        checked = check_image(await upload.read(), "image", svc.config.max_pixels)
    finally:
        await form.close()

    def detect() -> list[tuple[float, float, float, float]]:
        from PIL import Image

        from avatargen.faces import detect_faces

        with Image.open(io.BytesIO(checked.data)) as img:
            img.load()
            return detect_faces(img)

    try:
        boxes = await run_in_threadpool(detect)
    except AvatargenError as exc:  # the pose extra (MediaPipe) is not installed here
        raise ApiError(503, "faces_unavailable", exc.message) from None
    if not boxes:
        raise ApiError(422, "no_face", "no face found in the photo")
    return JSONResponse(
        {
            "width": checked.width,
            "height": checked.height,
            "faces": [{"x": round(x), "y": round(y), "w": round(w), "h": round(h)} for x, y, w, h in boxes],
        }
    )


# ---------------------------------------------------------------- catalog and poses
async def pose_templates(request: Request) -> Response:
    from avatargen.poses.templates import load_templates

    return JSONResponse(
        [
            {
                "id": t.name,
                "name": t.name.replace("-", " ").title(),
                "description": t.description,
                "framing": t.framing,
                "thumbnailUrl": f"{BASE}/pose-templates/{t.name}/thumbnail.png",
            }
            for t in load_templates().values()
        ]
    )


async def pose_thumbnail(request: Request) -> Response:
    from avatargen.poses.templates import load_templates

    svc: Service = request.app.state.service
    name = request.path_params["name"]
    if name not in load_templates():
        raise not_found()

    def draw() -> bytes:
        if name not in svc._thumbs:
            from avatargen.images import png_bytes
            from avatargen.poses.sources import resolve_pose

            svc._thumbs[name] = png_bytes(resolve_pose(name).image(256, 256))
        return svc._thumbs[name]

    data = await run_in_threadpool(draw)
    return Response(data, media_type="image/png", headers={"Cache-Control": "public, max-age=86400"})


async def models(request: Request) -> Response:
    svc: Service = request.app.state.service
    user = await authenticate(request)
    return JSONResponse([model_view(m, user) for m in svc.catalog])


async def me(request: Request) -> Response:
    user = await authenticate(request)
    return JSONResponse(
        {
            "name": user.name,
            "tier": user.tier,
            "credits": {"balance": user.balance, "reserved": user.reserved},
            "admin": user.is_admin,
        }
    )


async def credits(request: Request) -> Response:
    user = await authenticate(request)
    return JSONResponse({"balance": user.balance, "reserved": user.reserved})


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


# ---------------------------------------------------------------- admin
async def json_body(request: Request, svc: Service) -> dict[str, Any]:
    body = await read_body(request.receive, 64 * 1024, svc.config.body_timeout, None)
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(422, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_json", "the body must be a JSON object")
    return data


def _user_errors(fn, *args):
    try:
        return fn(*args)
    except AvatargenError as exc:
        if exc.message.startswith("no user named"):
            raise not_found() from None
        raise ApiError(422, "invalid_request", exc.message) from None


async def admin_users(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    if request.method == "GET":
        users = await run_in_threadpool(svc.accounts.list)
        return JSONResponse([u.public() for u in users])
    data = await json_body(request, svc)
    credits_ = data.get("credits", 0)
    if not isinstance(credits_, int) or isinstance(credits_, bool):
        raise ApiError(422, "invalid_request", "credits must be a whole number")
    user, token = await run_in_threadpool(
        _user_errors, svc.accounts.add, str(data.get("name", "")), str(data.get("tier", "free")), credits_
    )
    return JSONResponse(
        {**user.public(), "token": token}, status_code=201, headers={"Cache-Control": "no-store"}
    )


async def admin_credits(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    data = await json_body(request, svc)
    amount = data.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise ApiError(422, "invalid_request", "amount must be a whole number")
    user = await run_in_threadpool(
        _user_errors, svc.accounts.add_credits, request.path_params["name"], amount
    )
    return JSONResponse(user.public())


async def admin_tier(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    data = await json_body(request, svc)
    user = await run_in_threadpool(
        _user_errors, svc.accounts.set_tier, request.path_params["name"], str(data.get("tier", ""))
    )
    return JSONResponse(user.public())


async def admin_queue(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    return JSONResponse(await run_in_threadpool(svc.queue.queue_stats))


async def admin_workers(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    rows = await run_in_threadpool(svc.queue.workers)
    return JSONResponse(
        [{"id": r["id"], "host": r["host"], "pid": r["pid"], "startedAt": views.iso(r["started_at"]),
          "heartbeatAt": views.iso(r["heartbeat_at"]), "jobsDone": r["jobs_done"]} for r in rows]
    )  # fmt: skip


async def admin_stats(request: Request) -> Response:
    svc: Service = request.app.state.service
    await admin(request)
    return JSONResponse({"requestsToday": await run_in_threadpool(svc.queue.stats_today)})


# ---------------------------------------------------------------- page, docs
async def index(request: Request) -> Response:
    page = WEB_DIR / "index.html"
    if page.is_file():
        return FileResponse(page, media_type="text/html")
    return HTMLResponse(
        "<!doctype html><title>avatargen</title><p>avatargen API: see <a href='/docs'>/docs</a>.</p>"
    )


async def openapi(request: Request) -> Response:
    from avatargen.service.openapi import schema

    return JSONResponse(schema())


async def docs(request: Request) -> Response:
    from avatargen.service.openapi import docs_page

    return HTMLResponse(docs_page())


# ---------------------------------------------------------------- errors
async def on_api_error(request: Request, exc: ApiError) -> Response:
    return error(exc.status, exc.code, exc.message, exc.headers)


async def on_http_error(request: Request, exc: HTTPException) -> Response:
    if exc.status_code == 404:  # an unknown route reads exactly like a hidden one
        missing = not_found()
        return error(404, missing.code, missing.message)
    codes = {405: "method_not_allowed"}
    return error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))


async def on_crash(request: Request, exc: Exception) -> Response:
    log.error("unexpected %s on %s %s", type(exc).__name__, request.method, request.url.path)
    return error(
        500, "internal_error", "unexpected error; the administrator can find it in the service's log"
    )


ROUTES = [
    Route(f"{BASE}/generate", generate, methods=["POST"]),
    Route(f"{BASE}/generations", list_generations, methods=["GET"]),
    Route(f"{BASE}/generations/{{gen_id}}", get_generation, methods=["GET"]),
    Route(f"{BASE}/generations/{{gen_id}}", delete_generation, methods=["DELETE"]),
    Route(f"{BASE}/generations/{{gen_id}}/image", generation_image, methods=["GET"]),
    Route(f"{BASE}/photos/{{photo_id}}", photo, methods=["GET"]),
    Route(f"{BASE}/faces", faces, methods=["POST"]),
    Route(f"{BASE}/pose-templates", pose_templates, methods=["GET"]),
    Route(f"{BASE}/pose-templates/{{name}}/thumbnail.png", pose_thumbnail, methods=["GET"]),
    Route(f"{BASE}/models", models, methods=["GET"]),
    Route("/api/me", me, methods=["GET"]),
    Route("/api/credits", credits, methods=["GET"]),
    Route("/api/admin/users", admin_users, methods=["GET", "POST"]),
    Route("/api/admin/users/{name}/credits", admin_credits, methods=["POST"]),
    Route("/api/admin/users/{name}/tier", admin_tier, methods=["POST"]),
    Route("/api/admin/queue", admin_queue, methods=["GET"]),
    Route("/api/admin/workers", admin_workers, methods=["GET"]),
    Route("/api/admin/stats", admin_stats, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/docs", docs, methods=["GET"]),
    Route("/", index, methods=["GET"]),
]


def create_app(service: Service) -> Starlette:
    from starlette.middleware import Middleware
    from starlette.staticfiles import StaticFiles

    middleware = []
    if service.config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=service.config.cors_origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Authorization", "Content-Type"],
            )
        )
    routes = [*ROUTES, Mount("/static", StaticFiles(directory=WEB_DIR, check_dir=False), name="static")]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        exception_handlers={ApiError: on_api_error, HTTPException: on_http_error, Exception: on_crash},
    )
    app.state.service = service
    return app
