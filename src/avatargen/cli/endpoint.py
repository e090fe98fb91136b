"""`avatargen endpoint bundle|deploy|list|status|pause|resume|scale-to-zero|delete`: a catalog model as a
Hugging Face Inference Endpoint, from a folder to a running, stoppable endpoint (the work is in deploy/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avatargen.cli import context
from avatargen.cli.options import Json, TokenOpt

app = typer.Typer(help="Hugging Face Inference Endpoints running avatargen's handler.", no_args_is_help=True)

NamespaceOpt = Annotated[
    str | None, typer.Option("--namespace", help="User or organisation (default: the token's user).")
]
# What endpoint_name("controlnet-openpose-sd15") gives (deploy/plan.py; checked by a test).
NAME_EXAMPLE = "avatargen-controlnet-open-001360"
TargetArg = Annotated[
    str, typer.Argument(help="A model key or alias (its deployed endpoint), or an endpoint name.")
]


@app.command("bundle")
def bundle(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model key or alias, e.g. controlnet-openpose-sd15.")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="DIR", help="Folder to write (created).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite bundle files that differ.")] = False,
    tiny: Annotated[
        bool,
        typer.Option(
            "--tiny",
            help="Put a tiny random-weight model of the same architecture inside (noise images, no "
            "download): tries the whole deploy path in minutes. Needs the serve extra.",
        ),
    ] = False,
    json_: Json = False,
) -> None:
    """Write handler.py, requirements.txt, README.md and the model's facts, ready to upload as the
    model repository of an Inference Endpoint (see docs/endpoints.md)."""
    from avatargen.errors import InputError, MissingExtra, ModelUnavailable, OutputError
    from avatargen.serve.bundle import write_bundle
    from avatargen.serve.pipelines import ARCHITECTURES

    chosen = context.load_catalog(ctx).lookup(model)
    if chosen.architecture not in ARCHITECTURES:
        raise ModelUnavailable(
            f"model '{chosen.key}' is architecture '{chosen.architecture}': the handler runs "
            f"{' and '.join(ARCHITECTURES)} ControlNet pipelines only",
            "bundle an OpenPose model, e.g. controlnet-openpose-sd15",
        )
    folder = Path(output).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} (--output) exists and is not a folder")
    try:
        written = write_bundle(chosen, folder, force=force, tiny=tiny)
    except ImportError as exc:  # --tiny builds the model with torch, diffusers and transformers
        raise MissingExtra("serve", f"--tiny ({exc.name or 'a module'} is missing)") from None
    except FileExistsError as exc:
        raise InputError(f"{exc} already exist(s) with other content", "add --force to overwrite") from None
    except OSError as exc:
        raise OutputError(f"cannot write {folder} (--output): {exc.strerror or exc}") from None
    if json_:
        from avatargen.output import emit_json

        emit_json(
            {"model": chosen.key, "folder": str(folder), "tiny": tiny, "files": [str(p) for p in written]}
        )
        return
    from avatargen.output import info

    for path in written:
        print(path)
    if tiny:
        info(
            "tiny model inside: random weights, so every image is noise; bundle again without --tiny to deploy"
        )
    info(
        f"next: upload {folder} as a model repository (hf upload YOUR_NAME/REPO {folder} .), create an "
        f"Inference Endpoint from it (task Custom), then: avatargen config set endpoints.{chosen.key} URL"
    )


class _StateLine:
    """The endpoint's state on stderr: rewritten in place on a terminal, one line per change otherwise."""

    def __init__(self, name: str) -> None:
        import sys

        self.name = name
        self.tty = sys.stderr.isatty()
        self.last: str | None = None

    def __call__(self, state: str, elapsed: float) -> None:
        import sys

        if self.tty:
            sys.stderr.write(f"\rendpoint {self.name}: {state} ({elapsed:.0f} s)\033[K")
            if state in ("running", "failed", "updateFailed"):
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif state != self.last:
            print(f"endpoint {self.name}: {state}", file=sys.stderr, flush=True)
        self.last = state


@app.command("deploy")
def deploy(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="Model key or alias, e.g. controlnet-openpose-sd15.")],
    vendor: Annotated[str | None, typer.Option("--vendor", help="Cloud vendor (default aws).")] = None,
    region: Annotated[str | None, typer.Option("--region", help="Region (default us-east-1).")] = None,
    instance_type: Annotated[
        str | None,
        typer.Option(
            "--instance-type", help="Default: nvidia-l4 (24 GB) for SDXL, nvidia-t4 (16 GB) for SD 1.5."
        ),
    ] = None,
    instance_size: Annotated[str | None, typer.Option("--instance-size", help="Default x1.")] = None,
    min_replicas: Annotated[int, typer.Option("--min-replicas", help="0 lets it scale to zero.")] = 0,
    max_replicas: Annotated[int, typer.Option("--max-replicas", help="Replicas under load.")] = 1,
    scale_to_zero_after: Annotated[
        int,
        typer.Option("--scale-to-zero-after", metavar="MINUTES", help="Idle minutes before zero replicas."),
    ] = 15,
    security: Annotated[
        str, typer.Option("--security", help="authenticated (token needed), private or public.")
    ] = "authenticated",
    namespace: NamespaceOpt = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            help="Endpoint name (default: avatargen-<alias> in lowercase; one longer than the API's 32 "
            f"characters is cut and ends in a short hash, e.g. {NAME_EXAMPLE} for controlnet-openpose-sd15).",
        ),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once created; do not wait for it to run.")
    ] = False,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", metavar="SECONDS", help="Give up waiting after this long.")
    ] = 1800.0,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every call it would make; nothing is sent or created.")
    ] = False,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """From nothing to a running Inference Endpoint: bundle, private repository NAMESPACE/avatargen-<alias>,
    endpoint (updated when it exists), wait until running, probe, store its URL in endpoints.<model key>."""
    from avatargen.deploy.plan import DeployOptions, make_plan
    from avatargen.output import emit_json, info
    from avatargen.serve.bundle import bundle_files

    chosen = context.load_catalog(ctx).lookup(model)
    options = DeployOptions(
        vendor=vendor,
        region=region,
        instance_type=instance_type,
        instance_size=instance_size,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_to_zero_after=scale_to_zero_after,
        security=security,
        namespace=namespace,
        name=name,
    )
    plan = make_plan(chosen, options, files=[])
    plan.files = sorted(bundle_files(chosen))
    if dry_run:
        calls = plan.calls()
        if json_:
            emit_json({"dry_run": True, "plan": plan.to_dict(), "calls": calls})
            return
        import json

        for number, call in enumerate(calls, 1):
            what = call.pop("call")
            print(f"{number}. {what}")
            for key, value in call.items():
                print(f"   {key}: {json.dumps(value)}")
        info("dry run: nothing was sent or created")
        return
    from avatargen.deploy import hub
    from avatargen.deploy.run import deploy as run_deploy

    secret = hub.require_token(token)
    result = run_deploy(
        plan,
        chosen,
        secret,
        wait=not no_wait,
        wait_timeout=wait_timeout,
        say=info,
        show_state=_StateLine(plan.name),
    )
    if json_:
        emit_json(result)
        return
    if result.get("probe") and result["probe"]["state"] != "ready":
        from avatargen.output import warn

        warn(f"the endpoint runs but its probe says {result['probe']['state']}: {result['probe']['detail']}")
    if no_wait:
        info(f"not waiting: follow it with `avatargen endpoint status {chosen.alias}`")
    else:
        info(f"stored in config endpoints.{chosen.key}; try: avatargen generate PHOTO -m {chosen.alias}")
    print(result["url"] or f"{result['namespace']}/{result['name']} ({result['state']})")


def _api_and_target(ctx: typer.Context, what: str, namespace: str | None, token: str | None):
    from avatargen.deploy import hub, manage

    api = hub.hf_api(hub.require_token(token))
    target = manage.target_for(what, context.load_catalog(ctx), namespace)
    target.namespace = manage.namespace_of(api, target.namespace)
    return api, target


def _show(data: dict, json_: bool) -> None:
    from avatargen.output import emit_json, print_table

    if json_:
        emit_json(data)
        return
    replicas = data["replicas"]
    hardware = data["hardware"]
    cost = data["cost_per_hour_usd"]
    rows = [
        [
            "state",
            str(data["state"])
            + (f" ({data['message']})" if data["state"] != "running" and data["message"] else ""),
        ],
        ["url", data["url"] or "-"],
        ["replicas", replicas_text(replicas)],
        [
            "hardware",
            " ".join(
                str(hardware[k])
                for k in ("vendor", "region", "instance_type", "instance_size")
                if hardware[k] is not None
            )
            or "not reported",
        ],
        [
            "cost",
            f"${cost:g} per hour per replica" if cost is not None else "unknown (the API gave no price)",
        ],
        ["repository", data["repository"] or "-"],
        ["security", data["security"] or "-"],
    ]
    print_table(
        f"endpoint {data['namespace']}/{data['name']}",
        ["what", "value"],
        rows,
        detail=("value",),
        show_header=False,
    )


def _count(value) -> str:
    """A replica count as shown: '?' when the API left the field out (never 'None')."""
    return "?" if value is None else str(value)


def replicas_text(replicas: dict) -> str:
    """'1 running (min 0, max 1)'; fields the API did not send are said to be unknown."""
    running = (
        "running count not reported" if replicas["current"] is None else f"{replicas['current']} running"
    )
    bounds = ", ".join(
        f"{name} {_count(replicas[name])}" for name in ("min", "max") if replicas.get(name) is not None
    )
    return f"{running} ({bounds})" if bounds else running


@app.command("list")
def list_(
    all_: Annotated[
        bool, typer.Option("--all", help="Every endpoint of the account, not only avatargen's.")
    ] = False,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """The endpoints avatargen deployed (tagged 'avatargen'), with state and URL."""
    from avatargen.deploy import hub, manage
    from avatargen.output import emit_json, print_table

    api = hub.hf_api(hub.require_token(token))
    ns = manage.namespace_of(api, namespace)
    found = hub.call(f"list endpoints of {ns}", api.list_inference_endpoints, namespace=ns)
    rows = [manage.summary(e.raw, ns) for e in found if all_ or manage.is_ours(e.raw)]
    _report_left_running(rows, ns)
    if json_:
        emit_json({"namespace": ns, "endpoints": rows})
        return
    print_table(
        f"endpoints of {ns}" + ("" if all_ else " deployed by avatargen"),
        ["name", "state", "replicas", "url"],
        [
            [
                r["name"],
                r["state"],
                f"{_count(r['replicas']['current'])}/{_count(r['replicas']['max'])}",
                r["url"] or "-",
            ]
            for r in rows
        ],
        detail=("url",),
    )


def _report_left_running(rows: list[dict], namespace: str) -> None:
    """Warn about endpoints a killed run promised to pause or scale to zero and left running;
    one listed as paused, scaled to zero or gone settles its promise."""
    from avatargen.deploy import pending
    from avatargen.output import warn

    states = {f"{namespace}/{r['name']}": r["state"] for r in rows}
    for entry in pending.broken():
        where = str(entry.get("endpoint"))
        if where.startswith(f"{namespace}/") and states.get(where) in (None, "paused", "scaledToZero"):
            pending.kept(where)
    pending.report(warn)


@app.command("status")
def status_(
    ctx: typer.Context,
    target: TargetArg,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """State, URL, replicas (running/min/max), hardware and cost per hour of one endpoint."""
    from avatargen.deploy import hub, manage

    api, where = _api_and_target(ctx, target, namespace, token)
    endpoint = hub.call(
        f"read endpoint {where.name}", api.get_inference_endpoint, where.name, namespace=where.namespace
    )
    _show(manage.summary(endpoint.raw, where.namespace, manage.prices(api, where.namespace)), json_)


def _act(
    ctx: typer.Context,
    action: str,
    target: str,
    namespace: str | None,
    token: str | None,
    json_: bool,
    wait: bool = False,
):
    from avatargen.deploy import hub, manage

    api, where = _api_and_target(ctx, target, namespace, token)
    method = getattr(api, f"{action.replace('-', '_')}_inference_endpoint")
    endpoint = hub.call(f"{action} endpoint {where.name}", method, where.name, namespace=where.namespace)
    if wait:
        from avatargen.deploy.run import DEFAULT_WAIT_S, wait_running

        endpoint = wait_running(endpoint, DEFAULT_WAIT_S, _StateLine(where.name))
    data = manage.summary(endpoint.raw, where.namespace)
    if action in ("pause", "scale-to-zero", "delete"):
        from avatargen.deploy import pending

        pending.kept(f"{where.namespace}/{where.name}")  # a killed run's promise, kept by hand
    if json_:
        from avatargen.output import emit_json

        emit_json(data)
    else:
        print(f"{where.namespace}/{where.name}: {data['state']}")


@app.command("pause")
def pause(
    ctx: typer.Context,
    target: TargetArg,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """Stop the endpoint and its billing; it stays stopped (a request does not wake it) until resumed."""
    _act(ctx, "pause", target, namespace, token, json_)


@app.command("resume")
def resume(
    ctx: typer.Context,
    target: TargetArg,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it runs again.")] = False,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """Start a paused endpoint again."""
    _act(ctx, "resume", target, namespace, token, json_, wait=wait)


@app.command("scale-to-zero")
def scale_to_zero(
    ctx: typer.Context,
    target: TargetArg,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """Drop to zero replicas now (no cost); the next request starts one again (a cold start)."""
    _act(ctx, "scale-to-zero", target, namespace, token, json_)


@app.command("delete")
def delete(
    ctx: typer.Context,
    target: TargetArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed without a terminal).")] = False,
    namespace: NamespaceOpt = None,
    token: TokenOpt = None,
    json_: Json = False,
) -> None:
    """Delete the endpoint (its repository stays). Asks first; without a terminal it needs --yes."""
    import sys

    from avatargen.deploy import hub, records
    from avatargen.errors import UsageError

    api, where = _api_and_target(ctx, target, namespace, token)
    question = f"Delete endpoint {where.namespace}/{where.name}?"
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"{question} No terminal to ask on", "pass --yes to delete from a script")
        if not typer.confirm(question, default=False, err=True):
            raise UsageError("cancelled: nothing was deleted")
    hub.call(
        f"delete endpoint {where.name}", api.delete_inference_endpoint, where.name, namespace=where.namespace
    )
    forgot = None
    for model_key, record in records.forget(where.name, where.namespace):
        forgot = _forget_url(model_key, record.get("url")) or forgot
    if json_:
        from avatargen.output import emit_json

        emit_json({"deleted": f"{where.namespace}/{where.name}", "config_unset": forgot})
    else:
        print(f"deleted {where.namespace}/{where.name}")


def _forget_url(model_key: str, url: str | None) -> str | None:
    """Unset endpoints.<key> when it still points at the deleted endpoint (or drop it from a list)."""
    from avatargen import settings

    key = f"endpoints.{model_key}"
    current = settings.get_value(key)
    if not url or current is None:
        return None
    if current == url:
        settings.unset_value(key)
        return key
    if isinstance(current, list) and url in current:
        data = settings.load_config()
        rest = [u for u in current if u != url]
        data["endpoints"][model_key] = rest if len(rest) != 1 else rest[0]
        settings.save_config(data)
        return key
    return None
