"""Shape rules the code base keeps: short functions, and one module that talks to MLflow."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "xstilts"
MAX_LINES = 60
#: A function may be longer when its docstring says why, with this phrase.
EXCUSE = "Long because"
#: The run store owns the tracking client; the pyfunc modules (PyTorch and ONNX) are the logged
#: models' own code.
MLFLOW_MODULES = {"tracking/store.py", "tracking/pyfunc.py", "tracking/pyfunc_code.py",
                  "tracking/onnx_pyfunc.py", "tracking/onnx_pyfunc_code.py"}


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines of the function without its docstring."""
    lines = node.end_lineno - node.lineno + 1
    doc = node.body[0] if node.body else None
    if isinstance(doc, ast.Expr) and isinstance(getattr(doc, "value", None), ast.Constant) \
            and isinstance(doc.value.value, str):
        lines -= doc.end_lineno - doc.lineno + 1
    return lines


def long_functions(source: str, name: str = "<source>") -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _body_lines(node) > MAX_LINES:
            if EXCUSE not in (ast.get_docstring(node) or ""):
                out.append(f"{name}:{node.lineno} {node.name} ({_body_lines(node)} lines)")
    return out


def mlflow_imports(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "mlflow" for a in node.names):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
            lines.append(node.lineno)
    return lines


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path.relative_to(SRC).as_posix(), path.read_text()


def test_no_function_in_src_is_longer_than_60_lines_without_saying_why():
    found = [f for rel, text in _modules() for f in long_functions(text, rel)]
    assert not found, "functions over 60 lines (split them, or say why in the docstring):\n" + "\n".join(found)


def test_the_length_check_catches_a_long_function_and_accepts_an_excused_one():
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    assert long_functions(f"def f():\n    '''Doc.'''\n{body}\n")
    assert not long_functions(f"def f():\n    '''{EXCUSE} it is a table.'''\n{body}\n")


def test_only_the_run_store_talks_to_mlflow():
    found = [f"{rel}:{line}" for rel, text in _modules() if rel not in MLFLOW_MODULES
             for line in mlflow_imports(text)]
    assert not found, "MLflow imported outside the run store:\n" + "\n".join(found)
    assert mlflow_imports("import mlflow\nfrom mlflow import MlflowClient\n") == [1, 2]


#: Work functions get everything through arguments: no environment reads, no tracking setup.
WORK_MODULES = ("training/phase.py", "training/loop.py", "evaluation/runner.py", "evaluation/predict.py",
                "grid/plan.py", "grid/executor.py")


def environment_reads(source: str) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "putenv") \
                and isinstance(node.value, ast.Name) and node.value.id == "os":
            lines.append(node.lineno)
    return sorted(lines)


def test_work_functions_read_no_environment_variables():
    found = [f"{rel}:{line}" for rel in WORK_MODULES for line in environment_reads((SRC / rel).read_text())]
    assert not found, "environment read in a work module (pass it in instead):\n" + "\n".join(found)
    assert environment_reads("import os\nx = os.environ.get('A')\ny = os.getenv('B')\n") == [2, 3]
