# Sourced by .ci/run before pytest (also runnable: `bash .ci/setup-toolkit.sh`).
# A second venv with the library versions the Hugging Face inference toolkit pins
# (transformers 4.51, diffusers 0.33; the toolkit runs torch 2.5, here torch 2.13.0, whose CPU wheel
# lies on local disk: any other torch version downloads gigabytes). tests/test_toolkit_interop.py
# loads a `--tiny` bundle's handler.py in it, as the toolkit does, with no avatargen installed.
# Exports AVATARGEN_TOOLKIT_PYTHON (tests/interop.py reads it), and AVATARGEN_PYTHON39 where a
# Python 3.9 is installed (pyenv's, on this project's machines): tests/test_bundle_python39.py
# imports the standalone handler with it.

_toolkit_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_toolkit_venv="$_toolkit_root/.ci-toolkit-venv"
_toolkit_pins=(
    "torch==2.13.0"
    "transformers==4.51.*"
    "diffusers==0.33.*"
    "accelerate"
    "safetensors"
    "pillow"
    "numpy"
)
# The pins, written into the venv once it is complete: a changed list (or a half-built venv) rebuilds.
_toolkit_stamp="${_toolkit_pins[*]}"

if [ "$(cat "$_toolkit_venv/.avatargen-pins" 2>/dev/null)" != "$_toolkit_stamp" ]; then
    rm -rf "$_toolkit_venv"
    # The system python3 may be another minor version than the one torch's local wheel is built for;
    # the python that runs this script's caller (.ci-venv, 3.11) is the one to copy.
    python3 -m venv "$_toolkit_venv"
    "$_toolkit_venv/bin/python" -m pip install --quiet "${_toolkit_pins[@]}"
    printf '%s' "$_toolkit_stamp" >"$_toolkit_venv/.avatargen-pins"
fi

AVATARGEN_TOOLKIT_PYTHON="$_toolkit_venv/bin/python"
export AVATARGEN_TOOLKIT_PYTHON

for _toolkit_py39 in "$(command -v python3.9 || true)" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9; do
    # pyenv's shim is on PATH even where 3.9 is not the selected version: ask the interpreter itself.
    if [ -x "$_toolkit_py39" ] && "$_toolkit_py39" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 9))' 2>/dev/null; then
        AVATARGEN_PYTHON39="$_toolkit_py39"
        export AVATARGEN_PYTHON39
        break
    fi
done
unset _toolkit_root _toolkit_venv _toolkit_pins _toolkit_stamp _toolkit_py39
