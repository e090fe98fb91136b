"""Keep third-party chatter off stderr, so it holds avatargen's own lines only.

torch, transformers, diffusers and huggingface_hub print warnings meant for their developers
(a missing torchvision, a deprecated argument diffusers still passes), logging lines and tqdm
bars. `quiet()` turns them off before those libraries are imported (environment variables they
read on import) and on the ones already imported (their logging switches):

- transformers, diffusers and huggingface_hub log errors only;
- their UserWarning, FutureWarning and DeprecationWarning are ignored;
- progress bars: when stderr is not a terminal, every tqdm bar (a log gets no carriage-return
  spam); on a terminal diffusers' and transformers' own bars (loading components and weights,
  denoising steps), which would fight avatargen's progress display, while a first download keeps
  huggingface_hub's bars.

`AVATARGEN_DEBUG=1` leaves everything as the libraries have it. A variable the user set
(TRANSFORMERS_VERBOSITY=info, HF_HUB_DISABLE_PROGRESS_BARS=0, ...) is never replaced.
No heavy import here: this runs before torch is loaded.
"""

from __future__ import annotations

import os
import sys
import warnings

from avatargen import environment

_NOISY = r"(huggingface_hub|transformers|diffusers|torch|accelerate)(\.|$)"
_QUIET_ENV = {
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
}
_PIPE_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # when stderr is not a terminal
ENV_NAMES = (*_QUIET_ENV, *_PIPE_ENV)  # every variable quiet() may set


def debugging() -> bool:
    return os.environ.get(environment.DEBUG, "") not in ("", "0")


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def quiet(libraries: bool = False) -> None:
    """Silence the libraries above for the rest of this process (idempotent). Without `libraries`
    it only sets what they read on import (cheap: for a server that listens before torch loads);
    with it, it imports their logging modules and switches them too (for a caller about to load a
    pipeline anyway)."""
    if debugging():
        return
    terminal = stderr_is_terminal()
    for name, value in _QUIET_ENV.items():
        os.environ.setdefault(name, value)
    if not terminal:  # tqdm reads TQDM_* as its defaults; huggingface_hub (and so transformers) its own
        for name, value in _PIPE_ENV.items():
            os.environ.setdefault(name, value)
    for category in (UserWarning, FutureWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOISY)
    if libraries or "diffusers" in sys.modules or "transformers" in sys.modules:
        _quiet_libraries(bars=os.environ.get("TQDM_DISABLE", "") in ("", "0"))


def _quiet_libraries(bars: bool) -> None:
    """The same switches through the libraries' own logging modules: they read the environment
    once, on import, so this is what reaches one that was imported before quiet() ran."""
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import disable_progress_bars
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    hub_logging.set_verbosity_error()
    transformers_logging.set_verbosity_error()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()  # diffusers' own bars only, never the downloads'
    # transformers' own bars ("Loading weights"): its disable_progress_bar() would switch off
    # huggingface_hub's download bars too, so only its own switch is turned.
    transformers_logging._tqdm_active = False
    if not bars:
        disable_progress_bars()  # huggingface_hub's, and transformers' (which follows it)
        transformers_logging.disable_progress_bar()


def quiet_pipelines(*pipes: object) -> None:
    """No per-step bars from these diffusers pipelines (avatargen reports progress itself)."""
    if debugging():
        return
    for pipe in pipes:
        if pipe is not None and hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=True)
