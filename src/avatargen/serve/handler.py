"""The Hugging Face Inference Endpoints custom handler: `EndpointHandler(path)` then `handler(data)`.

The endpoint's serving toolkit imports handler.py from the repository root, builds
`EndpointHandler(path=<repo folder>)` once, and calls it per request with the parsed JSON body;
a returned PIL image goes back as PNG bytes (`Accept: image/png`), an exception as
`400 {"error": ...}`. `avatargen endpoint bundle` turns this file plus pipelines.py into one
standalone handler.py, so nothing here may import avatargen outside the marked block.
"""

# No `from __future__ import annotations`: string annotations make dataclasses look the module up in
# sys.modules, which a handler loaded by file path may not be registered in.
# ---- bundle: body below (avatargen endpoint bundle copies everything after this line) ----
import os
from pathlib import Path
from typing import Any

# ---- bundle: strip start ----
from avatargen.serve.pipelines import (
    SPEC_FILE,
    ControlNetService,
    LoadError,
    ModelSpec,
    handler_hello,
    is_pipeline_folder,
    parse_request,
    spec_for_folder,
)

# ---- bundle: strip end ----


def _find_spec(path: Path) -> ModelSpec:
    """The bundle's avatargen-model.json (in the repository, or next to this file), else a guess
    from a saved pipeline in the repository."""
    for folder in (path, Path(__file__).resolve().parent):
        if (folder / SPEC_FILE).is_file():
            return spec_for_folder(folder)
    if is_pipeline_folder(path):
        return spec_for_folder(path)
    raise LoadError(f"no {SPEC_FILE} in {path} or beside handler.py, and no saved pipeline in {path}")


class EndpointHandler:
    def __init__(self, path: str = "") -> None:
        folder = Path(path or ".").resolve()
        self.spec = _find_spec(folder)
        # Weights stored in the repository win; otherwise the spec's Hub ids are downloaded.
        source = folder if is_pipeline_folder(folder) else None
        self.service = ControlNetService(
            self.spec, source=source, device=os.environ.get("AVATARGEN_DEVICE") or None
        )
        self.service.load()

    def __call__(self, data: dict[str, Any]) -> Any:
        hello = handler_hello(data, self.spec)  # "which handler is this?": a dict, sent back as JSON
        if hello is not None:
            return hello
        params = parse_request(data, self.spec)  # RequestError is a ValueError: the toolkit answers 400
        return self.service.generate(params)
