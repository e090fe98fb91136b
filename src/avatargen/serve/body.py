"""The JSON of a request body, parsed strictly: anything a client can send becomes a value or a
RequestError (400), never an exception the server answers with a 500.

Python's json module, left to itself, accepts `NaN`, `Infinity` and `1e309` (a float inf), raises
RecursionError on deep nesting and ValueError on an integer of more than 4300 digits, and builds
tens of millions of objects from a 32 MiB body like `[{},{},...]`. The wire contract is one object
of a dozen fields, so a body with more structure than that is refused before it is parsed.
"""

from __future__ import annotations

import json
import math
from typing import Any

from avatargen.serve.pipelines import RequestError

# Each "{", "[" and "," opens at most one value. Prompts may hold commas and brackets (two prompts of
# MAX_PROMPT_CHARS at most), base64 holds none, so a real request stays far below this.
MAX_JSON_STRUCTURE = 10_000


def _refuse_constant(name: str) -> Any:
    raise RequestError(f"the request body has {name}, which is not a JSON number", 400)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RequestError(f"the number {text[:20]} is too large for a float", 400)
    return value


def parse_json_body(body: bytes) -> Any:
    """The parsed body (any JSON value; the request parser checks its shape)."""
    structure = body.count(b"{") + body.count(b"[") + body.count(b",")
    if structure > MAX_JSON_STRUCTURE:
        raise RequestError(
            f"the request body has over {MAX_JSON_STRUCTURE:,} JSON objects, arrays or commas; "
            "a request is one object of a few fields",
            400,
        )
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise RequestError("the request body is nested too deeply", 400) from None
    except RequestError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, and ints over 4300 digits
        detail = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise RequestError(f"the request body is not valid JSON ({detail})", 400) from None
