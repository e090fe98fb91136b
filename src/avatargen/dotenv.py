"""Read a `.env` file from the working directory into the environment, never overriding it.

The seed kept `HUGGINGFACE_API_KEY` in `.env`; users moving from it expect that to work. This
is a small parser of our own (stdlib only, so start-up stays fast and the core stays small)
for the common subset of the format python-dotenv reads:

    # comment
    KEY=value                 unquoted: surrounding spaces dropped, ` #...` is a comment
    export KEY=value          the shell's `export` prefix is allowed
    KEY='literal value'       single quotes: taken as written
    KEY="line\\nbreak"        double quotes: \\n \\t \\r \\" \\\\ escapes

No variable expansion and no multi-line values. A line that does not parse is skipped with a
warning naming the file and the line number (never the line: it may hold a token).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


class _Malformed(ValueError):
    pass


def _unquote_double(body: str) -> str:
    out: list[str] = []
    chars = iter(body)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
        else:
            out.append(ch)
    return "".join(out)


def _parse_value(raw: str) -> str:
    if not raw:
        return ""
    quote = raw[0]
    if quote in ("'", '"'):
        # Find the closing quote (skipping escaped ones inside double quotes); only a comment may follow.
        i = 1
        while i < len(raw):
            if quote == '"' and raw[i] == "\\":
                i += 2
                continue
            if raw[i] == quote:
                break
            i += 1
        else:
            raise _Malformed("unterminated quote")
        rest = raw[i + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise _Malformed("text after the closing quote")
        body = raw[1:i]
        return _unquote_double(body) if quote == '"' else body
    # Unquoted: a '#' starts a comment only after whitespace, so `a#b` stays whole.
    value = re.split(r"\s#", raw, maxsplit=1)[0]
    return value.strip()


def parse_dotenv(text: str) -> tuple[dict[str, str], list[int]]:
    """The KEY=VALUE pairs of a .env text, and the numbers of the lines that did not parse."""
    values: dict[str, str] = {}
    bad: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            bad.append(number)
            continue
        try:
            values[match.group(1)] = _parse_value(match.group(2))
        except _Malformed:
            bad.append(number)
    return values, bad


def _warn(message: str) -> None:
    # Plain stderr write: Rich is not worth importing at start-up for a rare warning.
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def load_dotenv_file(path: Path | str | None = None) -> list[str]:
    """Set the variables of `path` (default: ./.env) that the environment does not already have.

    Returns the names it set. Never raises: a missing file does nothing; an unreadable file or
    a bad line is a warning on stderr. Values are never printed."""
    path = Path(path) if path is not None else Path.cwd() / ".env"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        _warn(f"{path}: ignored ({reason})")
        return []
    values, bad = parse_dotenv(text)
    for number in bad:
        _warn(f"{path}:{number}: line ignored (expected KEY=VALUE)")
    loaded = []
    for name, value in values.items():
        if name not in os.environ:  # the environment always wins
            os.environ[name] = value
            loaded.append(name)
    return loaded
