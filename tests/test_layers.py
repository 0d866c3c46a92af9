"""Imports point one way: no cycles, kernels import nothing above them, nobody imports the CLI.

Read from the source with ``ast`` (nothing is imported), so the test is instant.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ivfpq"

# Modules whose function bodies may not import the package's own modules (optional
# dependencies such as h5py or dask are imported where they are used, and are fine).
NO_LOCAL_IMPORTS = ["cli", "cluster", "kernels", "io", "datasets", "plot", "quantize", "index", "_storage",
                    "_validation", "_threads", "_base"]


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _target(module, node, is_package):
    """The ivfpq module an import statement names, or None for other packages."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "ivfpq"]
    if node.level == 0:
        return [node.module] if (node.module or "").split(".")[0] == "ivfpq" else []
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    name = ".".join(base + ([node.module] if node.module else []))
    if node.module:
        return [name]
    return [f"{name}.{a.name}" for a in node.names]  # from . import x: x may be a module


def _modules():
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(top_level_only):
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_level_only else [n for n in ast.walk(tree)]
        targets = set()
        for node in nodes:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _target(module, node, path.name == "__init__.py"):
                    while name not in modules and "." in name:
                        name = name.rsplit(".", 1)[0]  # an attribute of a module
                    if name in modules and name != module:
                        targets.add(name)
        graph[module] = targets
    return graph


def _function_level_imports(path, module):
    tree = ast.parse(path.read_text())
    found = []
    for func in ast.walk(tree):
        if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(func):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if _target(module, node, path.name == "__init__.py"):
                        found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_import_cycles():
    graph = _imports(top_level_only=True)
    state = {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(graph[module]):
            # A package's __init__ importing its own submodules is how packages work.
            if target.startswith(module + "."):
                continue
            if state.get(target) == "open":
                cycle = trail[trail.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_nobody_imports_the_cli():
    for module, targets in _imports(top_level_only=False).items():
        if not module.startswith("ivfpq.cli"):
            assert not any(t.startswith("ivfpq.cli") for t in targets), (module, targets)


def test_kernels_import_nothing_above_them():
    for module, targets in _imports(top_level_only=False).items():
        if module.startswith("ivfpq.kernels"):
            assert all(t.startswith("ivfpq.kernels") for t in targets), (module, targets)


@pytest.mark.parametrize("name", NO_LOCAL_IMPORTS)
def test_no_function_level_imports_of_the_package(name):
    root = PACKAGE / name
    paths = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
    found = [hit for p in paths for hit in _function_level_imports(p, _module_name(p))]
    assert not found, f"function-level imports of ivfpq modules: {found}"
