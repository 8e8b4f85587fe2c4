"""One import name: what a wheel installs lives under ``lakelabel``; nothing named ``jobs`` or ``operators``."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_package_folder_is_listed_and_mapped_under_lakelabel() -> None:
    settings = _project()["tool"]["setuptools"]
    dirs = settings["package-dir"]
    listed = set(settings["packages"])
    found = {"lakelabel", *settings["package-data"]}  # folders of data files install as packages too
    for package, folder in dirs.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *relative.parts]))
    assert listed == found
    assert all(name == "lakelabel" or name.startswith("lakelabel.") for name in listed)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"  # setuptools builds in the source tree: a copy keeps build/ out of the checkout
    listing = ["git", "ls-files", "--cached", "--others", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    for name in tracked.splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    (built,) = out.glob("lakelabel-*.whl")
    return built


def test_the_wheel_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        top = {name.split("/")[0] for name in names}
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert {name for name in top if not name.endswith(".dist-info")} == {"lakelabel"}
    for module in ("lakelabel/__init__.py", "lakelabel/jobs/cli.py", "lakelabel/operators/registry.py"):
        assert module in names
    assert {"lakelabel/jobs/demo_data/texts.jsonl", "lakelabel/jobs/demo_data/speech/match.flac"} <= set(names)
    assert "lakelabel = lakelabel.jobs.cli:main" in scripts


def test_the_installed_package_imports_as_lakelabel_and_not_as_jobs(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    code = (
        "import importlib, lakelabel, lakelabel.jobs.cli, lakelabel.operators.registry\n"
        f"assert lakelabel.jobs.__file__.startswith({str(site)!r}), lakelabel.jobs.__file__\n"
        "for name in ('jobs', 'operators'):\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except ImportError:\n"
        "        continue\n"
        "    raise SystemExit(f'{name} imports')\n"
        "print(lakelabel.__version__)\n"
    )
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == _project()["project"]["version"]


def test_lakelabel_version_prints_the_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lakelabel", "--version"], capture_output=True, text=True, check=True, cwd="/"
    )
    assert result.stdout.strip() == f"lakelabel {_project()['project']['version']}"


def test_every_public_name_resolves_and_all_lists_them() -> None:
    import lakelabel

    assert set(lakelabel.__all__) == {*lakelabel._PUBLIC, "__version__"}
    assert all(getattr(lakelabel, name) is not None for name in lakelabel.__all__)
