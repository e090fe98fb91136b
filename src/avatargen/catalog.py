"""The model catalog: load models.toml (shipped + user files), validate it, resolve a model.

Every validation problem names the file, the model key and the field, and exits with the
configuration code. `--json` speaks the seed's field names (see `Model.to_seed`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from avatargen import environment
from avatargen.errors import CatalogError, ConfigError, ModelUnavailable, UsageError
from avatargen.settings import TIERS, config_dir, config_path

APP_ID = "avatar-generator"
KEY_PREFIX = f"{APP_ID}:"
QUALITIES = ("sd", "hd", "ultra", "premium")
ARCHITECTURES = ("sd15", "sdxl", "sd35", "qwen-image", "flux")  # the last two: Inference Providers only
POSE_INPUTS = ("image", "words")

# The seed's record names for our snake_case fields, used by --json and `models export`.
SEED_NAMES = {
    "key": "modelKey",
    "model_id": "modelId",
    "credit_cost": "creditCost",
    "quota_cost": "quotaCost",
    "processing_time": "processingTime",
    "coming_soon": "comingSoon",
    "priority_queue": "priorityQueue",
    "pose_control": "poseControl",
    "disabled_reason": "disabledReason",
    "base_model_original": "baseModelOriginal",
    "hf_provider": "hfProvider",
    "provider_ids": "providerIds",
    "pose_input": "poseInput",
}


@dataclass(frozen=True)
class IdentityAdapter:
    """An IP-Adapter that makes the avatar look like the reference face, loaded with diffusers'
    `pipe.load_ip_adapter(repo, subfolder=..., weight_name=..., image_encoder_folder=...)`.
    Written as a `[models.identity_adapter]` table right after its `[[models]]` entry."""

    repo: str  # a Hub repo id, or a folder in the same layout
    subfolder: str = ""
    weight_name: str = ""  # required in a catalog file (checked by the loader)
    # diffusers resolves a bare name inside `subfolder` and a path with '/' from the repo root.
    image_encoder_folder: str = "image_encoder"
    scale: float = 0.6  # the default strength; 0 leaves the adapter off unless a job asks


_ADAPTER_TYPES = {f.name: {"str": str, "float": float}[f.type] for f in fields(IdentityAdapter)}
_ADAPTER_REQUIRED = ("repo", "weight_name")
MAX_ADAPTER_SCALE = 2.0  # the wire accepts 0..2 too (serve/body.py)


@dataclass(frozen=True)
class Model:
    key: str
    name: str
    huggingface_model: str
    base_model: str
    tier: str
    credit_cost: int
    resolution: str
    quality: str
    processing_time: str
    architecture: str
    model_id: str = ""
    description: str = ""
    provider: str = "huggingface"
    base_model_original: str = ""
    quota_cost: int = 1
    enabled: bool = True
    beta: bool = False
    coming_soon: bool = False
    disabled_reason: str = ""
    sota: bool = False
    priority_queue: bool = False
    pose_control: bool = True
    # Inference Providers (provider = "hf-providers"): which provider runs it by default, the
    # model's id there per provider ("fal-ai=fal-ai/flux-kontext/dev"), and how the pose travels:
    # "image" (the skeleton is sent) or "words" (its description goes into the prompt).
    hf_provider: str = ""
    provider_ids: tuple[str, ...] = ()
    pose_input: str = "image"
    steps: int = 30
    guidance_scale: float = 7.5
    controlnet_conditioning_scale: float = 1.0
    prompt: str = "professional portrait, high quality, detailed face"
    negative_prompt: str = "ugly, blurry, low quality, distorted"
    endpoint: str = ""
    fallbacks: tuple[str, ...] = ()
    identity_adapter: IdentityAdapter | None = None
    source: str = field(default="", compare=False)  # the file that last set this model

    @property
    def alias(self) -> str:
        return self.key.removeprefix(KEY_PREFIX)

    @property
    def edits_photo(self) -> bool:
        """An instruction-editing model (Inference Providers): the photo itself is its input,
        whatever --strength says, and reference photos may go along as further images."""
        return self.provider == "hf-providers"

    @property
    def size(self) -> tuple[int, int]:
        width, height = self.resolution.split("x")
        return int(width), int(height)

    @property
    def tier_rank(self) -> int:
        return TIERS.index(self.tier)

    @property
    def status(self) -> str:
        if self.enabled:
            return "beta" if self.beta else "enabled"
        return "coming soon" if self.coming_soon else "disabled"

    def to_seed(self) -> dict[str, Any]:
        """The seed's record for this model, plus our generation defaults."""
        record: dict[str, Any] = {"appId": APP_ID}
        for f in fields(self):
            if f.name in {"source", *_DEFAULT_FIELDS}:
                continue
            value = getattr(self, f.name)
            if isinstance(value, IdentityAdapter):
                value = asdict(value)
            record[SEED_NAMES.get(f.name, f.name)] = list(value) if isinstance(value, tuple) else value
        record["modelId"] = self.model_id or self.alias
        record["status"] = self.status
        record["defaults"] = {
            "num_inference_steps": self.steps,
            "guidance_scale": self.guidance_scale,
            "controlnet_conditioning_scale": self.controlnet_conditioning_scale,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
        }
        return record


_DEFAULT_FIELDS = {"steps", "guidance_scale", "controlnet_conditioning_scale", "prompt", "negative_prompt"}
_FIELD_TYPES: dict[str, type] = {}
for _f in fields(Model):
    if _f.name != "source":  # set by the loader, never by a file
        _FIELD_TYPES[_f.name] = {"int": int, "float": float, "bool": bool, "str": str}.get(_f.type, tuple)
_FIELD_TYPES["identity_adapter"] = dict
_REQUIRED = [
    "key",
    "name",
    "huggingface_model",
    "base_model",
    "tier",
    "credit_cost",
    "resolution",
    "quality",
    "processing_time",
    "architecture",
]


# ---------------------------------------------------------------- loading
def shipped_catalog_path() -> Path:
    """The catalog inside the installed package; in a source checkout, the repo's models.toml."""
    packaged = Path(__file__).with_name("models.toml")
    if packaged.is_file():
        return packaged
    return Path(__file__).resolve().parents[2] / "models.toml"


def catalog_files(extra: Path | str | None = None) -> list[Path]:
    """Files merged in order, later ones overriding earlier ones by key."""
    files = [shipped_catalog_path()]
    user = config_dir() / "models.toml"
    if user.is_file():
        files.append(user)
    env = os.environ.get(environment.CATALOG, "").strip()
    if env:
        files.append(Path(env).expanduser())
    if extra:
        files.append(Path(extra).expanduser())
    return files


def _check_value(path: Path, key: str, name: str, value: Any) -> Any:
    where = f"{path}: model '{key}', field '{name}'"
    expected = _FIELD_TYPES.get(name)
    if expected is None:
        import difflib  # only on an error: start-up stays lean

        close = difflib.get_close_matches(name, _FIELD_TYPES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it"
        raise CatalogError(f"{where}: unknown field", hint)
    if expected is dict:
        return _check_adapter(where, value)
    if expected is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise CatalogError(f"{where}: expected a list of model keys, got {value!r}")
        return tuple(value)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not expected:
        raise CatalogError(f"{where}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    if name == "tier" and value not in TIERS:
        raise CatalogError(f"{where}: unknown tier '{value}'", f"use one of {', '.join(TIERS)}")
    if name == "quality" and value not in QUALITIES:
        raise CatalogError(f"{where}: unknown quality '{value}'", f"use one of {', '.join(QUALITIES)}")
    if name == "architecture" and value not in ARCHITECTURES:
        raise CatalogError(
            f"{where}: unknown architecture '{value}'", f"use one of {', '.join(ARCHITECTURES)}"
        )
    if name == "pose_input" and value not in POSE_INPUTS:
        raise CatalogError(f"{where}: unknown pose_input '{value}'", f"use one of {', '.join(POSE_INPUTS)}")
    if name == "resolution":
        width, height = parse_resolution(value, where)
        value = f"{width}x{height}"  # normalised, so Model.size can always split it
    if name in ("credit_cost", "quota_cost") and value < 0:
        raise CatalogError(f"{where}: must not be negative, got {value}")
    if name == "steps" and value < 1:
        raise CatalogError(f"{where}: must be at least 1, got {value}")
    return value


def _check_adapter(where: str, value: Any) -> dict[str, Any]:
    """The `[models.identity_adapter]` table's own fields; a later file may set only some of them."""
    if not isinstance(value, dict):
        raise CatalogError(
            f"{where}: expected a table ([models.identity_adapter]), got {type(value).__name__} {value!r}"
        )
    checked: dict[str, Any] = {}
    for name, sub in value.items():
        inner = f"{where[:-1]}.{name}'"
        expected = _ADAPTER_TYPES.get(name)
        if expected is None:
            raise CatalogError(f"{inner}: unknown field", f"use {', '.join(_ADAPTER_TYPES)}")
        if expected is float and isinstance(sub, int) and not isinstance(sub, bool):
            sub = float(sub)
        if type(sub) is not expected:
            raise CatalogError(f"{inner}: expected {expected.__name__}, got {type(sub).__name__} {sub!r}")
        if expected is str and name != "subfolder" and not sub.strip():
            raise CatalogError(f"{inner}: must not be empty")
        if name == "scale" and not 0 <= sub <= MAX_ADAPTER_SCALE:
            raise CatalogError(f"{inner}: must be between 0 and {MAX_ADAPTER_SCALE:g}, got {sub}")
        checked[name] = sub
    return checked


def _build_adapter(source: str, key: str, values: dict[str, Any]) -> IdentityAdapter:
    missing = [name for name in _ADAPTER_REQUIRED if name not in values]
    if missing:
        raise CatalogError(
            f"{source}: model '{key}', field 'identity_adapter.{missing[0]}': missing "
            f"(an identity adapter needs {', '.join(_ADAPTER_REQUIRED)})"
        )
    return IdentityAdapter(**values)


def parse_resolution(text: str, where: str = "resolution") -> tuple[int, int]:
    parts = text.strip().lower().split("x")
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise CatalogError(
            f"{where}: bad resolution '{text}'", "write it as WIDTHxHEIGHT, e.g. 1024x1024"
        ) from None
    if not (64 <= width <= 4096 and 64 <= height <= 4096) or width % 8 or height % 8:
        raise CatalogError(
            f"{where}: bad resolution '{text}'", "both sides must be multiples of 8 between 64 and 4096"
        )
    return width, height


def _read_entries(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found", "check --catalog / AVATARGEN_CATALOG") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML ({exc})") from None
    except RecursionError:  # tomllib recurses once per nesting level
        raise CatalogError(f"{path}: not valid TOML (nested too deeply)") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{path}: not valid TOML (not UTF-8 text)") from None
    except OSError as exc:  # a folder, no permission...
        raise CatalogError(f"{path}: catalog file cannot be read ({exc.strerror})") from None
    unknown = set(data) - {"models"}
    if unknown:
        raise CatalogError(
            f"{path}: unknown top-level key(s) {', '.join(sorted(unknown))}",
            "a catalog holds [[models]] entries only",
        )
    entries = data.get("models", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise CatalogError(f"{path}: 'models' must be an array of tables ([[models]])")
    return entries


def load_catalog(extra: Path | str | None = None) -> Catalog:
    merged: dict[str, dict[str, Any]] = {}
    for path in catalog_files(extra):
        seen: set[str] = set()
        for index, entry in enumerate(_read_entries(path)):
            key = entry.get("key")
            if not isinstance(key, str) or not key:
                raise CatalogError(
                    f"{path}: model #{index + 1} has no 'key'", 'every [[models]] needs key = "..."'
                )
            if key in seen:
                raise CatalogError(f"{path}: model '{key}', field 'key': duplicate key in this file")
            seen.add(key)
            checked = {name: _check_value(path, key, name, value) for name, value in entry.items()}
            checked["source"] = str(path)
            earlier = merged.setdefault(key, {})
            if "identity_adapter" in checked:  # a later file may change one field of the adapter
                checked["identity_adapter"] = {
                    **earlier.get("identity_adapter", {}),
                    **checked["identity_adapter"],
                }
                checked["adapter_source"] = str(path)
            earlier.update(checked)
    models = []
    for key, values in merged.items():
        missing = [name for name in _REQUIRED if name not in values]
        if missing:
            raise CatalogError(
                f"{values['source']}: model '{key}', field '{missing[0]}': missing "
                f"(a new model needs {', '.join(missing)})"
            )
        adapter_source = values.pop("adapter_source", values["source"])
        if "identity_adapter" in values:
            values["identity_adapter"] = _build_adapter(adapter_source, key, values["identity_adapter"])
        models.append(Model(**values))
    catalog = Catalog(models)
    for model in models:
        for fallback in model.fallbacks:
            if fallback not in catalog.by_key:
                raise CatalogError(
                    f"{model.source}: model '{model.key}', field 'fallbacks': unknown model '{fallback}'"
                )
    return catalog


# ---------------------------------------------------------------- resolution
class Catalog:
    def __init__(self, models: list[Model]) -> None:
        self.models = models
        self.by_key = {m.key: m for m in models}

    def __iter__(self):
        return iter(self.models)

    def __len__(self) -> int:
        return len(self.models)

    def lookup(self, name: str, option: str = "--model") -> Model:
        """A model by full key or short alias; a typo gets a 'did you mean'."""
        if name in self.by_key:
            return self.by_key[name]
        full = KEY_PREFIX + name
        if full in self.by_key:
            return self.by_key[full]
        close = self.suggest(name)
        hint = f"did you mean '{close}'?" if close else "see `avatargen models list --all`"
        raise UsageError(f"unknown model '{name}' ({option})", hint)

    def suggest(self, name: str) -> str | None:
        """The alias a user most likely meant: one that contains what they typed (`sdxl-ultra`),
        else the closest spelling of an alias or of its tail (`contrlnet-openpose-sd15`, `sdxl-ulta`)."""
        import difflib

        wanted = name.strip().lower().removeprefix(KEY_PREFIX)
        if not wanted:
            return None
        aliases = [m.alias for m in self.models]
        containing = [a for a in aliases if wanted in a.lower()]
        if containing:
            # The shortest holder is the closest: 'sdxl' means ...-sdxl, not ...-sdxl-ultra.
            return min(containing, key=lambda a: (len(a), a))
        # Compare with every tail of every alias, so a typo in a short name still matches.
        tails: dict[str, str] = {}
        for alias in sorted(aliases, key=len):
            parts = alias.lower().split("-")
            for i in range(len(parts)):
                tails.setdefault("-".join(parts[i:]), alias)
        close = difflib.get_close_matches(wanted, list(tails), n=1, cutoff=0.6)
        return tails[close[0]] if close else None

    def enabled(self) -> list[Model]:
        return [m for m in self.models if m.enabled]


def _check_runnable(model: Model, plan: str | None) -> Model:
    if not model.enabled:
        why = model.disabled_reason or "it is disabled in the catalog"
        state = "coming soon" if model.coming_soon else "disabled"
        raise ModelUnavailable(
            f"model '{model.key}' is {state}: {why}", "pick another with `avatargen models list`"
        )
    if plan and model.tier_rank > TIERS.index(plan):
        raise ModelUnavailable(
            f"model '{model.key}' is tier '{model.tier}', above your plan '{plan}'",
            "choose a model at or below your plan, or change it: avatargen config set plan TIER",
        )
    return model


def resolve_model(
    catalog: Catalog,
    model: str | None = None,
    quality: str | None = None,
    tier: str | None = None,
    plan: str | None = None,
    default: str | None = None,
) -> Model:
    """The one model a command runs: by --model, --quality or --tier (one at a time), else the
    configured default, else the cheapest enabled model within the plan."""
    given = [name for name, value in (("--model", model), ("--quality", quality), ("--tier", tier)) if value]
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} cannot be used together", "give one of them")
    if plan is not None and plan not in TIERS:
        raise ConfigError(
            f"{config_path()}: unknown plan '{plan}'",
            f"use one of {', '.join(TIERS)}: avatargen config set plan TIER",
        )
    cap = TIERS.index(plan) if plan else len(TIERS) - 1
    if model:
        return _check_runnable(catalog.lookup(model), plan)
    if quality:
        if quality not in QUALITIES:
            raise UsageError(f"unknown quality '{quality}' (--quality)", f"use one of {', '.join(QUALITIES)}")
        matches = [m for m in catalog if m.quality == quality]
        if not matches:
            raise ModelUnavailable(f"no model in the catalog has quality '{quality}'")
        runnable = [m for m in matches if m.enabled and m.tier_rank <= cap]
        if not runnable:
            return _check_runnable(matches[0], plan)  # raises with the reason
        return min(runnable, key=lambda m: (m.credit_cost, m.key))
    if tier:
        if tier not in TIERS:
            raise UsageError(f"unknown tier '{tier}' (--tier)", f"use one of {', '.join(TIERS)}")
        limit = min(TIERS.index(tier), cap)
        runnable = [m for m in catalog.enabled() if m.tier_rank <= limit]
        if not runnable:
            raise ModelUnavailable(f"no enabled model at or below tier '{TIERS[limit]}'")
        return max(runnable, key=lambda m: (m.tier_rank, QUALITIES.index(m.quality), m.credit_cost, m.key))
    if default:
        try:
            chosen = catalog.lookup(default, option=f"config key 'model' in {config_path()}")
        except UsageError as exc:  # the config is wrong, not the command line
            raise ConfigError(exc.message, exc.hint) from None
        return _check_runnable(chosen, plan)
    runnable = [m for m in catalog.enabled() if m.tier_rank <= cap]
    if not runnable:
        raise ModelUnavailable("no enabled model within your plan", "see `avatargen models list --all`")
    return min(runnable, key=lambda m: (m.credit_cost, m.key))
