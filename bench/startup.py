"""Start-up benchmark (issue 2, item 7; issue 15, finding 6): how long `avatargen models list`,
`poses list` and `credits` take to start, in a pipe and on a terminal (a pseudo-terminal from
os.openpty, as a person sees them), beside `python -c "import typer"` (the floor for any Typer
CLI). Target: every ratio <= 1.5.

Each command runs N times, interleaved (a, b, c, a, b, c, ...) so a busy machine slows all of
them alike; the median wall time and the median CPU time (user + system of the child, which a
machine shared with other work disturbs far less than wall time) of each are printed in
milliseconds, then the ratios.

Usage: python bench/startup.py [--runs 15] [--importtime]
  --importtime   also print the 15 slowest imports of `models list` (python -X importtime)
"""

from __future__ import annotations

import argparse
import os
import resource
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


def time_once(command: list[str], env: dict, cwd: str, tty: bool = False) -> tuple[float, float]:
    """Wall and CPU milliseconds of one run; with tty=True its stdout is a terminal (a pty), as
    for a person."""
    master = slave = None
    stdout = subprocess.DEVNULL
    if tty:
        master, slave = os.openpty()
        stdout = slave
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if tty:
        os.close(slave)
        os.close(master)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.decode()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed * 1000, cpu * 1000


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
        "avatargen poses list": [*cli, "poses", "list"],
        "avatargen poses list (terminal)": [*cli, "poses", "list"],
        "avatargen credits": [*cli, "credits"],
        "avatargen credits (terminal)": [*cli, "credits"],
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
        cpu: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                wall_ms, cpu_ms = time_once(command, env, home, tty="terminal" in name)
                times[name].append(wall_ms)
                cpu[name].append(cpu_ms)
        imports = slowest_imports(env, home) if args.importtime else []

    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    width = max(map(len, medians))
    print(f"median of {args.runs} runs each, interleaved ({sys.executable}, {' '.join(cli)})")
    print(f"  {'':<{width}}  {'wall':>7}      {'cpu':>7}")
    for name, value in medians.items():
        spread = f"wall min {min(times[name]):.0f}  max {max(times[name]):.0f}"
        print(f"  {name:<{width}}  {value:7.1f} ms   {cpu_medians[name]:7.1f} ms   ({spread})")
    floor_name = 'python -c "import typer"'
    for name in [name for name in medians if name.startswith("avatargen ") and "--" not in name]:
        ratio = medians[name] / medians[floor_name]
        cpu_ratio = cpu_medians[name] / cpu_medians[floor_name]
        verdict = "meets" if max(ratio, cpu_ratio) <= 1.5 else "misses"
        print(
            f"ratio {name.removeprefix('avatargen ')} / import typer: wall {ratio:.2f}, cpu {cpu_ratio:.2f} "
            f"({verdict} the target <= 1.5)"
        )
    floor = medians["minimal Typer command, one str option"] / medians['python -c "import typer"']
    print(f"ratio minimal Typer command / import typer: {floor:.2f} (what Typer itself costs)")
    if imports:
        print("slowest imports of `models list` (cumulative microseconds):")
        for micros, name in imports:
            print(f"  {micros:8d}  {name}")


if __name__ == "__main__":
    main()
