"""`avatargen endpoint bundle`: a folder to deploy a catalog model as a Hugging Face Inference Endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from avatargen.cli import state
from avatargen.cli.options import Json

app = typer.Typer(help="Hugging Face Inference Endpoints running avatargen's handler.", no_args_is_help=True)


@app.command("bundle")
def bundle(
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

    chosen = state.load_catalog().lookup(model)
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
