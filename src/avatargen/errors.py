"""Every error a user can meet: one class each, one message, one fixed exit code.

The CLI prints `error: <message> — <hint>` on one line of stderr and exits with the class's
code; `AVATARGEN_DEBUG=1` adds the traceback. The exit-code table in docs/exit-codes.md is checked
against `EXIT_CODES` by a test.
"""

from __future__ import annotations

OK = 0
PARTIAL = 1
USAGE = 2
CONFIG = 3
CREDITS = 4
INPUT = 5
UNAVAILABLE = 6
AUTH = 7
NETWORK = 8
PROVIDER = 9
LIMIT = 10
MISSING_EXTRA = 11
IO_ERROR = 74  # EX_IOERR: an output, the output folder or the ledger cannot be written
INTERNAL = 70  # EX_SOFTWARE: a bug, never a user mistake
INTERRUPTED = 130
HANGUP = 129  # 128 + SIGHUP: the terminal went away
TERMINATED = 143  # 128 + SIGTERM: asked to stop (kill, systemd, a CI timeout)

EXIT_CODES: dict[int, str] = {
    OK: "success: everything asked for was done",
    PARTIAL: "some jobs of a batch failed (the summary names them); the rest were done",
    USAGE: "bad command line: unknown option, bad value, conflicting options, missing --yes",
    CONFIG: "configuration problem: config.toml, a catalog file, or a setting",
    CREDITS: "not enough credits or over --max-credits (nothing ran), or the balance ran out mid-batch (the rest stays queued)",
    INPUT: "an input file, pose or folder cannot be used",
    UNAVAILABLE: "the model cannot run: disabled, coming soon, above your plan, or no endpoint",
    AUTH: "the Hugging Face token is missing, invalid or lacks a permission (401/403)",
    NETWORK: "the server could not be reached, or did not answer in time",
    PROVIDER: "the server refused or failed the request (4xx/5xx, bad image, HF credits used up)",
    LIMIT: "a configured usage limit (limits.daily_requests) would be crossed",
    MISSING_EXTRA: "an optional extra is not installed (pip install 'avatargen[pose]', '[serve]' or '[hub]')",
    IO_ERROR: "an output, the output folder or the ledger cannot be written (read-only, disk full, name too long); the rest stays queued",
    INTERNAL: "a bug in avatargen: rerun with AVATARGEN_DEBUG=1 and report the traceback",
    INTERRUPTED: "interrupted (Ctrl-C); in-flight credits were refunded",
    HANGUP: "stopped by SIGHUP (the terminal closed); in-flight credits were refunded",
    TERMINATED: "stopped by SIGTERM; in-flight credits were refunded",
}


class AvatargenError(Exception):
    """Base of every error meant for the user (never a bug)."""

    exit_code = PROVIDER
    # True: the failure is not this job's alone (the model cannot load, the disk is full), so a
    # batch stops at once, the job goes back to the queue with its credits refunded, and the
    # command exits with this error's code.
    stops_batch = False

    def __init__(self, message: str, hint: str | None = None) -> None:
        # The one place every error is made: a server's own words (a router echoing the token
        # back, a URL with credentials) are masked here, before anything prints or stores them.
        from avatargen.redact import redact_text

        message = redact_text(message)
        hint = redact_text(hint) if hint else hint
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f" — {self.hint}"
        return " ".join(text.split())  # one line, always

    def to_dict(self) -> dict:
        return {
            "type": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class UsageError(AvatargenError):
    exit_code = USAGE


class ConfigError(AvatargenError):
    exit_code = CONFIG


class CatalogError(ConfigError):
    """A catalog file is malformed; the message names the file, the model key and the field."""


class CreditsError(AvatargenError):
    exit_code = CREDITS


class InputError(AvatargenError):
    exit_code = INPUT


class ModelUnavailable(AvatargenError):
    exit_code = UNAVAILABLE


class ModelLoadError(ModelUnavailable):
    """The model's weights cannot be loaded (Hub unreachable, not logged in, out of disk)."""

    stops_batch = True


class OutputError(AvatargenError):
    """An output, the output folder or the ledger cannot be written: every job would fail alike."""

    exit_code = IO_ERROR
    stops_batch = True


class AuthError(AvatargenError):
    exit_code = AUTH


class NetworkError(AvatargenError):
    exit_code = NETWORK


class ProviderError(AvatargenError):
    exit_code = PROVIDER


class LimitError(AvatargenError):
    exit_code = LIMIT


class MissingExtra(AvatargenError):
    exit_code = MISSING_EXTRA

    def __init__(self, extra: str, what: str) -> None:
        super().__init__(
            f"{what} needs the optional extra '{extra}'",
            f"install it with: pip install 'avatargen[{extra}]'",
        )
        self.extra = extra


class Interrupted(AvatargenError):
    exit_code = INTERRUPTED


class HangUp(Interrupted):
    exit_code = HANGUP


class Terminated(Interrupted):
    exit_code = TERMINATED


class RunStopped(Exception):
    """Raised where a job runs when its batch is stopping (Ctrl-C, a signal): the job goes back to
    the queue, its credits refunded; never a failure of the job."""


class StopSignal(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so they stop a run exactly as Ctrl-C does."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def interrupted_by(signum: int | None, message: str, hint: str | None = None) -> Interrupted:
    """The error (and so the exit code, 128 + the signal) for a run stopped by a signal."""
    import signal

    cls = {int(signal.SIGTERM): Terminated, int(signal.SIGHUP): HangUp}.get(signum or 0, Interrupted)
    return cls(message, hint)


class InternalError(AvatargenError):
    """An unexpected exception (a bug): reported in one line like the others."""

    exit_code = INTERNAL
