"""The package's import graph, read from the source (AST): no circles, and Ray imported by the adapter alone.

Every ``import`` counts, wherever it is: at module level, inside a function, under ``TYPE_CHECKING``. Packages are
mapped to folders as pyproject.toml maps them (``lakelabel.jobs`` -> ``jobs/``).
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RAY_MODULES = {"lakelabel.jobs.ray_adapter", "lakelabel.jobs.submit"}
"""The Ray Data adapter and the job-submission client."""


def package_folders(root: Path = ROOT) -> dict[str, Path]:
    """Each package name pyproject.toml maps to a folder of its own."""
    dirs = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["package-dir"]
    return {package: root / folder for package, folder in dirs.items()}


def modules(folders: dict[str, Path]) -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Path] = {}
    mapped = set(folders.values())
    for package, folder in folders.items():
        for path in folder.rglob("*.py"):
            if any(parent in mapped and parent != folder for parent in path.parents):
                continue  # another mapping's folder inside this one
            parts = [part for part in path.relative_to(folder).with_suffix("").parts if part != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def imports(path: Path, package: str) -> set[str]:
    """Every module name ``path`` imports (``from a import b`` counts ``a`` and ``a.b``); relative ones resolved."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - (path.name == "__init__.py"))[0]
                base = f"{anchor}.{base}".rstrip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def graph(folders: dict[str, Path]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The package's own import edges, and every module's imports."""
    found = modules(folders)
    every = {name: imports(path, name) for name, path in found.items()}
    return {
        name: {other for other in names if other in found and other != name} for name, names in every.items()
    }, every


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(edges[node]):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def ray_importers(every: dict[str, set[str]]) -> set[str]:
    """Modules that import Ray."""
    return {name for name, names in every.items() if any(n == "ray" or n.startswith("ray.") for n in names)}


def test_the_graph_sees_every_module_and_its_imports() -> None:
    edges, every = graph(package_folders())
    assert "lakelabel.jobs.runner" in edges
    assert "lakelabel.operators.text.zero_shot" in edges
    assert "lakelabel.jobs.plan" in edges["lakelabel.jobs.runner"]
    assert "ray" in every["lakelabel.jobs.ray_adapter"]


def test_no_import_circles() -> None:
    edges, _ = graph(package_folders())
    assert circles(edges) == []


def test_only_the_adapter_and_the_submission_client_import_ray() -> None:
    _, every = graph(package_folders())
    assert ray_importers(every) == RAY_MODULES


def test_circles_and_ray_importers_are_found(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg import b\n")
    (package / "b.py").write_text("def f():\n    from pkg.c import g\n")
    (package / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n")
    (package / "d.py").write_text("from . import c\nimport ray.data\n")
    edges, every = graph({"pkg": package})
    assert circles(edges) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert "pkg.c" in edges["pkg.d"]
    assert ray_importers(every) == {"pkg.d"}


def test_no_module_is_far_above_four_hundred_lines() -> None:
    """About 400 lines at most: none more than a tenth above."""
    long = {
        name: lines
        for name, path in modules(package_folders()).items()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > 440
    }
    assert long == {}
