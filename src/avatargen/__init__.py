"""avatargen: pose-guided avatars from photos through ControlNet OpenPose models."""

import sys as _sys
import types as _types

__version__ = "0.1.0"


def _skip_httpx_command_line() -> None:
    """httpx imports its own command-line client when click, rich and pygments are installed
    (ours always are): click, rich's console, progress and syntax, pygments' lexers, 40-130 ms
    of every run that makes a request, for a `main` avatargen never calls. A stand-in module
    takes its place, unless httpx is loaded already."""
    if "httpx" in _sys.modules or "httpx._main" in _sys.modules:
        return
    stand_in = _types.ModuleType("httpx._main")

    def main() -> None:
        raise SystemExit(
            "httpx's command line is not loaded in a process running avatargen: run `httpx` itself"
        )

    stand_in.main = main
    _sys.modules["httpx._main"] = stand_in


_skip_httpx_command_line()
