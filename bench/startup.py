"""Start-up benchmark (issue 2, item 7): how long `avatargen models list` takes to start, beside
`python -c "import typer"` (the floor for any Typer CLI). Target: ratio <= 1.5.

Each command runs N times, interleaved (a, b, c, a, b, c, ...) so a busy machine slows all of
them alike; the median wall time of each is printed in milliseconds, then the ratio.

Usage: python bench/startup.py [--runs 15] [--importtime]
  --importtime   also print the 15 slowest imports of `models list` (python -X importtime)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_TYPER = """
from typing import Annotated
import typer
app = typer.Typer()
@app.command()
def hello(name: Annotated[str | None, typer.Option()] = None, json_: bool = False) -> None:
    print(name)
app(["--name", "x"], standalone_mode=False)
"""


def avatargen_command() -> list[str]:
    script = Path(sys.executable).with_name("avatargen")
    if script.exists():
        return [str(script)]
    found = shutil.which("avatargen")
    return [found] if found else [sys.executable, "-m", "avatargen"]


def time_once(command: list[str], env: dict, cwd: str, tty: bool = False) -> float:
    """Wall time of one run; with tty=True its stdout is a terminal (a pty), as for a person."""
    master = slave = None
    stdout = subprocess.DEVNULL
    if tty:
        master, slave = os.openpty()
        stdout = slave
    start = time.perf_counter()
    done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    if tty:
        os.close(slave)
        os.close(master)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    return elapsed * 1000


def slowest_imports(env: dict, cwd: str, count: int = 15) -> list[tuple[int, str]]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "avatargen", "models", "list"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()

    cli = avatargen_command()
    commands = {
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        # The floor for running any Typer command with a text option (Typer 0.29 imported
        # pydantic here: pyproject caps typer below 0.29 for that reason).
        "minimal Typer command, one str option": [sys.executable, "-c", MINIMAL_TYPER],
        "avatargen models list": [*cli, "models", "list"],
        "avatargen models list (terminal)": [*cli, "models", "list"],
        "avatargen models list --json": [*cli, "models", "list", "--json"],
        "avatargen --help": [*cli, "--help"],
    }
    with tempfile.TemporaryDirectory() as home:
        # A fresh user folder (no user catalog or config) and a neutral working directory.
        env = {**os.environ, "AVATARGEN_HOME": home, "COLUMNS": "120"}
        # Bytecode is written as an installed package would have it (some shells here set
        # PYTHONDONTWRITEBYTECODE, which would recompile avatargen's sources on every run).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for name, command in commands.items():  # warm the OS file cache and .pyc files once
            time_once(command, env, home, tty="terminal" in name)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                times[name].append(time_once(command, env, home, tty="terminal" in name))
        imports = slowest_imports(env, home) if args.importtime else []

    medians = {name: statistics.median(values) for name, values in times.items()}
    width = max(map(len, medians))
    print(f"median of {args.runs} runs each, interleaved ({sys.executable}, {' '.join(cli)})")
    for name, value in medians.items():
        spread = f"min {min(times[name]):.0f}  max {max(times[name]):.0f}"
        print(f"  {name:<{width}}  {value:7.1f} ms   ({spread})")
    for name in ("avatargen models list", "avatargen models list (terminal)"):
        ratio = medians[name] / medians['python -c "import typer"']
        verdict = "meets" if ratio <= 1.5 else "misses"
        print(
            f"ratio {name.removeprefix('avatargen ')} / import typer: {ratio:.2f} ({verdict} the target <= 1.5)"
        )
    floor = medians["minimal Typer command, one str option"] / medians['python -c "import typer"']
    print(f"ratio minimal Typer command / import typer: {floor:.2f} (what Typer itself costs)")
    if imports:
        print("slowest imports of `models list` (cumulative microseconds):")
        for micros, name in imports:
            print(f"  {micros:8d}  {name}")


if __name__ == "__main__":
    main()
