# Sourced by .ci/run before pytest (also runnable: `bash .ci/setup-sdreader.sh`).
# A venv with sd-prompt-reader, a reader of Stable Diffusion PNG metadata that cannot share our
# venv: it pins pillow==10.3.0 and click<8.2. tests/test_metadata_interop.py runs its non-GUI
# reader (sd_prompt_reader.image_data_reader.ImageDataReader; it imports tkinter and
# customtkinter modules but opens no window, so it runs headless) on PNGs our CLI wrote.
# Exports AVATARGEN_SDREADER_PYTHON (tests/interop.py reads it).

_sdreader_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_sdreader_venv="$_sdreader_root/.ci-sdreader-venv"
_sdreader_pins=("sd-prompt-reader==1.3.5")
# The pins, written into the venv once it is complete: a changed list (or a half-built venv) rebuilds.
_sdreader_stamp="${_sdreader_pins[*]}"

if [ "$(cat "$_sdreader_venv/.avatargen-pins" 2>/dev/null)" != "$_sdreader_stamp" ]; then
    rm -rf "$_sdreader_venv"
    "${PYTHON:-python3}" -m venv "$_sdreader_venv"
    "$_sdreader_venv/bin/python" -m pip install --quiet "${_sdreader_pins[@]}"
    printf '%s' "$_sdreader_stamp" >"$_sdreader_venv/.avatargen-pins"
fi

AVATARGEN_SDREADER_PYTHON="$_sdreader_venv/bin/python"
export AVATARGEN_SDREADER_PYTHON
unset _sdreader_root _sdreader_venv _sdreader_pins _sdreader_stamp
