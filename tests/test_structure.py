"""The package's shape: no import cycle, dialects in storage/, small modules, a thin facade."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "asyncjobs"
DIALECT_WORDS = frozenset({"sqlite", "postgresql", "postgres", "aiosqlite", "asyncpg"})
DIALECT_ATTRS = frozenset({"dialect", "get_backend_name", "driver"})


def modules(src: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a package by its ``__init__``)."""
    found = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imported_names(module: str, path: Path) -> Iterator[str]:
    """What ``module`` imports anywhere: at the top, in functions, under ``TYPE_CHECKING``,
    relative or absolute, and through ``importlib.import_module("...")``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            # ``from a.b import c`` names a.b.c when that is a module, else a.b
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def import_graph(src: Path, package: str) -> dict[str, set[str]]:
    known = modules(src, package)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        targets = set()
        for name in imported_names(module, path):
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path back to its start, or ``None``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if target in path:
                return [*path[path.index(target) :], target]
            if target not in done and (cycle := visit(target)):
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)):
            return cycle
    return None


def test_no_import_cycle_among_the_package_modules() -> None:
    cycle = find_cycle(import_graph(SRC, PACKAGE))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_lazy_and_type_only_imports_count(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .c import x\n")
    (pkg / "sub" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .. import a\n"
    )
    assert find_cycle(import_graph(tmp_path, "pkg")) == ["pkg.a", "pkg.sub.b", "pkg.sub.c", "pkg.a"]


def _is_dialect_word(node: ast.AST) -> bool:
    values = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return any(isinstance(v, ast.Constant) and v.value in DIALECT_WORDS for v in values)


def test_no_dialect_branch_outside_storage() -> None:
    found = []
    for module, path in modules(SRC, PACKAGE).items():
        if module.startswith(f"{PACKAGE}.storage"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            sides = [node.left, *node.comparators] if isinstance(node, ast.Compare) else []
            if any(_is_dialect_word(side) for side in sides):
                found.append(f"{module}:{node.lineno} compares with a dialect name")
            if isinstance(node, ast.Attribute) and node.attr in DIALECT_ATTRS:
                found.append(f"{module}:{node.lineno} reads .{node.attr}")
    assert not found, "\n".join(found)


def test_sqlalchemy_only_under_storage_and_apscheduler_only_in_autorun() -> None:
    found = []
    for module, path in modules(SRC, PACKAGE).items():
        for name in imported_names(module, path):
            top = name.partition(".")[0]
            if top in {"sqlalchemy", "aiosqlite", "asyncpg"} and ".storage" not in module:
                found.append(f"{module} imports {name}")
            if top == "apscheduler" and module != f"{PACKAGE}.autorun":
                found.append(f"{module} imports {name}")
    assert not found, "\n".join(found)


def test_no_module_over_400_lines() -> None:
    sizes = {
        m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in modules(SRC, PACKAGE).items()
    }
    assert not {m: n for m, n in sizes.items() if n > 400}


def test_the_facade_stays_under_300_lines() -> None:
    assert len((SRC / PACKAGE / "jobs.py").read_text(encoding="utf-8").splitlines()) < 300
