"""The package's modules import one another without a circle, counting the imports deferred into functions (a
deferred import that hides a circle is still one) and leaving out those only type checkers read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import samplerzoo

ROOT = Path(samplerzoo.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, outside ``if TYPE_CHECKING:`` blocks."""
    typing_only = {id(node) for block in ast.walk(tree)
                   if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
                   for node in ast.walk(block)}
    yield from (node for node in ast.walk(tree)
                if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only)


def imported(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: set[str]) -> set[str]:
    """The package's modules that ``node`` in ``module`` imports: ``from . import a`` is the module ``a`` (not the
    package) when ``a`` is one."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names} & modules
    base = module.split(".")[: len(module.split(".")) + is_package - node.level] if node.level else []
    source = ".".join([*base, *([node.module] if node.module else [])])
    members = {f"{source}.{alias.name}" for alias in node.names}
    return (members if members <= modules else {source} | members) & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(path): path for path in ROOT.rglob("*.py")}
    modules = set(paths)
    return {module: {target for node in runtime_imports(ast.parse(path.read_text()))
                     for target in imported(module, path.name == "__init__.py", node, modules)} - {module}
            for module, path in paths.items()}


def test_the_import_graph_is_read():
    graph = import_graph()
    assert "samplerzoo.checkpoints.families.dit" in graph["samplerzoo.checkpoints.families"]
    assert "samplerzoo.checkpoints.families.family" in graph["samplerzoo.checkpoints.families.dit"]
    assert "samplerzoo.checkpoints.families" not in graph["samplerzoo.checkpoints.families.dit"]
    assert "samplerzoo.plugins" in graph["samplerzoo.checkpoints.loading"]


def test_no_import_circle():
    try:
        TopologicalSorter(import_graph()).prepare()
    except CycleError as error:
        raise AssertionError(f"import circle: {' -> '.join(error.args[1])}") from None
