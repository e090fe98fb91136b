# Sourced by .ci/run before pytest (also runnable: `source .ci/setup-poseref.sh`).
# The reference annotator for our skeleton drawing: controlnet_aux 0.0.10's open_pose/util.py
# (draw_bodypose, draw_handpose, draw_facepose), in a venv of its own with OpenCV. The package
# itself is not installed: it would replace our CPU torch and its __init__ needs torchvision;
# only util.py is taken from the wheel and loaded by path (bench/poseref_draw.py stubs the two
# names it imports from its sibling body.py). Exports AVATARGEN_POSEREF_PYTHON and
# AVATARGEN_POSEREF_UTIL, read by tests/test_pose_reference.py and bench/poses.py.

_poseref_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_poseref_venv="$_poseref_root/.ci-poseref-venv"
_poseref_pins=("opencv-python-headless==4.11.0.86" "numpy" "matplotlib")
_poseref_wheel="controlnet-aux==0.0.10"
_poseref_stamp="${_poseref_pins[*]} $_poseref_wheel"

if [ "$(cat "$_poseref_venv/.avatargen-pins" 2>/dev/null)" != "$_poseref_stamp" ]; then
    rm -rf "$_poseref_venv"
    python3 -m venv "$_poseref_venv"
    "$_poseref_venv/bin/python" -m pip install --quiet "${_poseref_pins[@]}"
    "$_poseref_venv/bin/python" -m pip download --quiet --no-deps "$_poseref_wheel" -d "$_poseref_venv/wheel"
    "$_poseref_venv/bin/python" - "$_poseref_venv" <<'PY'
import glob, sys, zipfile
venv = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{venv}/wheel/*.whl")[0]) as wheel:
    data = wheel.read("controlnet_aux/open_pose/util.py")
with open(f"{venv}/controlnet_aux_open_pose_util.py", "wb") as out:
    out.write(data)
PY
    printf '%s' "$_poseref_stamp" >"$_poseref_venv/.avatargen-pins"
fi

AVATARGEN_POSEREF_PYTHON="$_poseref_venv/bin/python"
AVATARGEN_POSEREF_UTIL="$_poseref_venv/controlnet_aux_open_pose_util.py"
export AVATARGEN_POSEREF_PYTHON AVATARGEN_POSEREF_UTIL
