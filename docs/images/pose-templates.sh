#!/usr/bin/env bash
# Redraws docs/images/pose-templates.png: every pose template as avatargen's renderer draws it for
# ControlNet (`avatargen poses show`, at each template's default size), laid out by `avatargen sheet`.
# Run from the repository root with avatargen installed.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
avatargen poses list --json | python3 -c 'import json, sys; print("\n".join(p["name"] for p in json.load(sys.stdin)))' |
    while read -r pose; do
        avatargen poses show "$pose" -o "$work/$pose.png" > /dev/null
    done
avatargen sheet "$work" -o docs/images/pose-templates.png --columns 7 --thumb 200
