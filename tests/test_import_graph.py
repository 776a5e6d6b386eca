"""The package's own modules import each other without a cycle.

Read with ``ast``, nothing imported. Only imports that run when a module is imported
count: statements at module level, also inside module-level ``if``/``try``/``with`` blocks
and class bodies, but not inside functions. A function-level import is how the project
keeps heavy or optional dependencies (crewai, llama_cpp) off the import path, and it cannot
create an import-time cycle. Imports under ``if TYPE_CHECKING:`` never run, so they are left
out too (annotations are strings here: ``from __future__ import annotations``).

Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` (unless the importer lives inside
``a.b``, which is then already importing), so those edges count as well.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import agentic_orchestration

PACKAGE = agentic_orchestration.__name__
ROOT = Path(agentic_orchestration.__file__).resolve().parent


def _module_names() -> dict[str, Path]:
    """Every module of the package: dotted name -> file (packages by their ``__init__``)."""
    modules = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported (see the module docstring)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_time_nodes(node.orelse)
        else:  # if / try / with / for / class bodies run at import time
            for field in ("body", "orelse", "finalbody"):
                yield from _import_time_nodes(getattr(node, field, None) or [])
            for clause in [*getattr(node, "handlers", []), *getattr(node, "cases", [])]:
                yield from _import_time_nodes(clause.body)


def _imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom,
              modules: dict[str, Path]) -> Iterator[str]:
    """Dotted names of the package's modules that ``node`` imports."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:  # relative: resolve against the importing module's package
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    yield target
    for alias in node.names:  # ``from pkg import submodule``
        if f"{target}.{alias.name}" in modules:
            yield f"{target}.{alias.name}"


def _parse(path: Path) -> ast.Module:
    """``ast.parse``, again if Python 3.11's shared AST state was raced: a traceback formatted
    in another thread (a previous test's leftover server thread, say) parses source lines
    too, and 3.11.7 then fails this parse with "AST constructor recursion depth mismatch"
    (CPython gh-106905). The source does not change between tries; the retry is exact."""
    source = path.read_text(encoding="utf-8")
    for _ in range(2):
        try:
            return ast.parse(source, filename=str(path))
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
    return ast.parse(source, filename=str(path))


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports at import time (parent packages too)."""
    modules = _module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = _parse(path)
        own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for node in _import_time_nodes(tree.body):
            for target in _imported(name, is_package, node, modules):
                parts = target.split(".")
                for i in range(1, len(parts) + 1):  # a.b.c runs a, a.b and a.b.c
                    dependency = ".".join(parts[:i])
                    if dependency in modules and dependency not in own_packages:
                        graph[name].add(dependency)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as ``[a, b, ..., a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        state[start] = 1
        stack = [iter(sorted(graph[start]))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_graph_sees_the_package() -> None:
    graph = import_graph()
    assert f"{PACKAGE}.errors" in graph and f"{PACKAGE}.mcp.resolution" in graph
    # A module-level import is an edge; a function-level one (crewai_hotfix) is not.
    assert f"{PACKAGE}.errors" in graph[f"{PACKAGE}.mcp.crewai_hotfix"]
    assert f"{PACKAGE}.mcp.crewai_hotfix" not in graph[f"{PACKAGE}.mcp.resolution"]


def test_find_cycle_reports_the_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_between_the_package_modules() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
