"""The bundle's standalone handler.py imports on Python 3.9 (an older endpoint image may run it).

Two checks: a static one on the generated source that runs everywhere (3.9 grammar; no `X | Y`
that Python evaluates at import or at call, unless the file has `from __future__ import
annotations`), and the real thing: a Python 3.9 (found by .ci/setup-toolkit.sh, which exports
AVATARGEN_PYTHON39) imports the handler by file path, as the toolkit does, and reads the bundle's
model facts with it (stdlib only: torch and diffusers are imported when a model loads).
"""

from __future__ import annotations

import ast
import json
import subprocess

from avatargen.serve.bundle import standalone_handler_source
from interop import interop_python


def _is_union(node: ast.AST | None) -> bool:
    return node is not None and any(
        isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for n in ast.walk(node)
    )


def python39_problems(source: str) -> list[str]:
    """What keeps `source` from importing (or its calls from running) on Python 3.9."""
    try:
        tree = ast.parse(source, feature_version=(3, 9))  # `match`, `except*`, ... are refused
    except SyntaxError as exc:
        return [f"line {exc.lineno}: not Python 3.9 syntax: {exc.msg}"]
    lazy = any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    problems = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            evaluated = []  # annotations Python evaluates when this statement runs
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = child.args
                every = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
                every += [a for a in (arguments.vararg, arguments.kwarg) if a]
                evaluated = [a.annotation for a in every] + [child.returns]
            elif isinstance(child, ast.AnnAssign) and not in_function:  # module and class level only
                evaluated = [child.annotation]
            if not lazy and any(_is_union(a) for a in evaluated):
                problems.append(f"line {child.lineno}: an `X | Y` annotation evaluated at import")
            if (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name)
                and child.func.id in ("isinstance", "issubclass")
                and len(child.args) == 2
                and _is_union(child.args[1])
            ):
                problems.append(f"line {child.lineno}: {child.func.id}(..., X | Y) fails on 3.9")
            visit(
                child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            )

    visit(tree, False)
    return problems


def test_the_checker_finds_what_breaks_python39():
    assert python39_problems("def f(x: int | None): pass")
    assert python39_problems("class A:\n    x: int | None = None")
    assert python39_problems("def f(v):\n    return isinstance(v, int | float)")
    assert python39_problems("match 1:\n    case 1: pass")
    assert not python39_problems("from __future__ import annotations\ndef f(x: int | None): pass")
    assert not python39_problems('def f(x: "int | None") -> dict[str, int]:\n    y: int | None = 1')


def test_standalone_handler_has_nothing_python39_refuses():
    assert python39_problems(standalone_handler_source()) == []


LOAD = r"""
import importlib.util, json, sys
bundle = sys.argv[1]
spec = importlib.util.spec_from_file_location("handler.EndpointHandler", bundle + "/handler.py")
sys.path.insert(0, bundle)
module = importlib.util.module_from_spec(spec)
sys.modules["handler.EndpointHandler"] = module
spec.loader.exec_module(module)
facts = module.spec_for_folder(bundle)
print(json.dumps({"version": list(sys.version_info[:2]), "key": facts.key, "steps": facts.steps,
                  "handler": callable(module.EndpointHandler)}))
"""


def test_bundled_handler_imports_on_python39(cli, tmp_path):
    python39 = interop_python("AVATARGEN_PYTHON39")
    bundle = tmp_path / "bundle"
    assert cli("endpoint", "bundle", "controlnet-openpose-sd15", "-o", str(bundle)).exit_code == 0
    done = subprocess.run(
        [str(python39), "-I", "-c", LOAD, str(bundle)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report == {
        "version": [3, 9],
        "key": "avatar-generator:controlnet-openpose-sd15",
        "steps": 30,
        "handler": True,
    }
