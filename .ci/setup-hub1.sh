# Sourced by .ci/run before pytest (also runnable: `source .ci/setup-hub1.sh`).
# The oldest huggingface_hub the `hub` extra allows (1.0, which sends through httpx; 2.x sends
# through httpx2, whose exceptions are not httpx's), beside avatargen's core dependencies, in a venv
# of its own. tests/test_hub_versions_23.py runs the CLI from src/ with it. Exports
# AVATARGEN_HUB1_PYTHON.

_hub1_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_hub1_venv="$_hub1_root/.ci-hub1-venv"
_hub1_pins=(
    "huggingface_hub==1.0.*"
    "typer>=0.12,<0.29"
    "rich>=13"
    "httpx>=0.27"
    "pillow>=10.3"
    "tomli-w>=1.0"
    "platformdirs>=4"
    "tenacity>=8.2"
)
_hub1_stamp="${_hub1_pins[*]}"

if [ "$(cat "$_hub1_venv/.avatargen-pins" 2>/dev/null)" != "$_hub1_stamp" ]; then
    rm -rf "$_hub1_venv"
    python3 -m venv "$_hub1_venv"
    "$_hub1_venv/bin/python" -m pip install --quiet "${_hub1_pins[@]}"
    printf '%s' "$_hub1_stamp" >"$_hub1_venv/.avatargen-pins"
fi

AVATARGEN_HUB1_PYTHON="$_hub1_venv/bin/python"
export AVATARGEN_HUB1_PYTHON
unset _hub1_root _hub1_venv _hub1_pins _hub1_stamp
