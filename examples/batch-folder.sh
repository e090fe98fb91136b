#!/usr/bin/env bash
# Batch-process a folder of photos into avatars, safely from a script.
#
#   examples/batch-folder.sh PHOTOS_DIR OUT_DIR [extra avatargen generate options...]
#
# Writes one JSON line per image to OUT_DIR/results.jsonl, prints a one-line summary and
# exits with avatargen's own code (0 all done, 1 some failed, 4 not enough credits, 74 output
# folder not writable, ...; see the README's exit-code table).
# Re-running it resumes: finished images are skipped and not charged again.
# Identity is on by default: a photo in which no face is found is a failed job ("no face found");
# pass --identity-scale 0 for pose-only avatars, or --pose wave,sitting for a set per photo.
set -uo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 PHOTOS_DIR OUT_DIR [avatargen generate options...]" >&2
    exit 2
fi
photos=$1
out=$2
shift 2
mkdir -p "$out"

# --yes: never stop to ask in a script; --json: machine-readable lines on stdout.
avatargen generate "$photos" --recursive -o "$out" --json --yes "$@" > "$out/results.jsonl"
code=$?

done_count=$(grep -c '"status": "done"' "$out/results.jsonl" || true)
failed_count=$(grep -c '"status": "failed"' "$out/results.jsonl" || true)
skipped_count=$(grep -c '"status": "skipped"' "$out/results.jsonl" || true)
echo "done=$done_count failed=$failed_count skipped=$skipped_count exit=$code"
exit "$code"
