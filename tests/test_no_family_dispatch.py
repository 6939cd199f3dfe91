"""Nothing outside ``xstilts.families`` switches on a family or task name.

Task families are objects (``task.family``) that own their behaviour; a string
comparison such as ``task.family == "tagging"`` or ``task.name == "bucc2018"``
elsewhere would bring back the scattered dispatch they replaced. The checker
parses every module under ``src/xstilts`` except the families package and
flags:

* a comparison (``==``, ``!=``, ``in``, ``not in``) with a string constant that is
  a registered task or family name (also inside a tuple/list/set of constants);
* a comparison involving ``x.family`` or ``x.family.name`` (against anything), or
  a task's ``.name`` (``task.name``, ``t.name``) against a string constant;
* a subscript or ``.get`` keyed by ``x.family`` / ``x.family.name`` (a dispatch table).
"""
from __future__ import annotations

import ast
from pathlib import Path

import xstilts
from xstilts.families import FAMILY_NAMES
from xstilts.tasks import task_names

SRC = Path(xstilts.__file__).parent
_COMPARE_OPS = (ast.Eq, ast.NotEq, ast.In, ast.NotIn)


def _is_family_ref(node: ast.AST) -> bool:
    """``x.family`` or ``x.family.name``."""
    if isinstance(node, ast.Attribute) and node.attr == "name":
        node = node.value
    return isinstance(node, ast.Attribute) and node.attr == "family"


def _is_task_name_ref(node: ast.AST) -> bool:
    """``task.name``, ``t.name``, ``target_task.name``: a task's name (not a pandas column's)."""
    return (isinstance(node, ast.Attribute) and node.attr == "name" and isinstance(node.value, ast.Name)
            and (node.value.id == "t" or "task" in node.value.id))


def _string_constants(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [c.value for c in node.elts if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    return []


def _compare_problem(node: ast.Compare, names: set[str]) -> str | None:
    if not any(isinstance(op, _COMPARE_OPS) for op in node.ops):
        return None
    operands = [node.left, *node.comparators]
    if any(_is_family_ref(o) for o in operands):
        return "compares a task family"
    constants = [c for o in operands for c in _string_constants(o)]
    if any(_is_task_name_ref(o) for o in operands) and constants:
        return f"compares a task's name with {constants[0]!r}"
    hit = sorted(set(constants) & names)
    return f"compares with the task/family name {hit[0]!r}" if hit else None


def dispatch_problems(source: str, filename: str = "<source>") -> list[str]:
    """``file:line: problem`` for every family or task-name dispatch in ``source``."""
    names = set(task_names()) | set(FAMILY_NAMES)
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        problem = None
        if isinstance(node, ast.Compare):
            problem = _compare_problem(node, names)
        elif isinstance(node, ast.Subscript) and _is_family_ref(node.slice):
            problem = "looks up a table by task family"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and _is_family_ref(node.args[0])):
            problem = "looks up a table by task family"
        if problem:
            problems.append(f"{filename}:{node.lineno}: {problem}")
    return problems


def test_no_module_outside_the_families_dispatches_on_a_family_or_task_name() -> None:
    files = [p for p in sorted(SRC.rglob("*.py")) if "families" not in p.relative_to(SRC).parts]
    assert len(files) > 50  # the whole package was scanned
    problems = [p for f in files for p in dispatch_problems(f.read_text(encoding="utf-8"), str(f.relative_to(SRC)))]
    assert problems == []


def test_the_checker_flags_the_dispatch_this_refactoring_removed() -> None:
    bad = '''
if task.family == "tagging":
    pass
if spec.family != task.family:
    pass
if family in ("sentence_classification", "multiple_choice"):
    pass
if t.name == "bucc":
    pass
if t.family.name != "retrieval":
    pass
max_length = DEFAULT_MAX_LENGTH[t.family]
collate = {"tagging": 1}.get(task.family, None)
'''
    problems = dispatch_problems(bad)
    assert [int(p.split(":")[1]) for p in problems] == [2, 4, 6, 8, 10, 12, 13]


def test_the_checker_leaves_ordinary_code_alone() -> None:
    fine = '''
family = TAGGING
name = "tatoeba"
task = get_task("tatoeba")
if task.family.needs_head and kind != "target" and ref in ("", "default"):
    head = heads[task.name]
if col.name == "group":
    pass
x = task.family.decode(data, outputs)
'''
    assert dispatch_problems(fine) == []
