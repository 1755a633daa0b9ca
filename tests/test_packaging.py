"""Installed, pollable is one import package: a wheel built from the repository holds
``pollable`` (and its dist-info) at the top level and nothing else."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("lifecycle", "store", "handlers", "server", "openapi", "testing", "dashboard")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(ROOT)],
        check=True, capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("pollable-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_adds_one_top_level_package(wheel: zipfile.ZipFile) -> None:
    tops = {name.split("/", 1)[0] for name in wheel.namelist()}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"pollable"}


def test_the_wheel_holds_every_part_as_real_files(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for part in PARTS:
        sources = sorted(p.name for p in (ROOT / part).glob("*.py"))
        assert sources, part
        assert {f"pollable/{part}/{name}" for name in sources} <= names
    assert "pollable/openapi/captain.json" in names
    assert "pollable/openapi/sandbox.jobs.json" in names
    # The dashboard's pages and assets: served from the package, nothing fetched.
    for folder, pattern in (("templates", "*.html"), ("static", "*")):
        shipped = sorted(p.name for p in (ROOT / "dashboard" / folder).glob(pattern))
        assert shipped, folder
        assert {f"pollable/dashboard/{folder}/{name}" for name in shipped} <= names
    assert "pollable/py.typed" in names


def test_the_console_script_is_the_packaged_cli(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    assert "pollable = pollable.server.cli:main" in wheel.read(entry_points).decode()


def test_the_pytest_plugin_is_registered(wheel: zipfile.ZipFile) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith("entry_points.txt")]
    text = wheel.read(entry_points).decode()
    assert "[pytest11]\npollable = pollable.testing.plugin" in text


def test_each_part_is_linked_from_the_package_folder() -> None:
    for part in PARTS:
        link = ROOT / "pollable" / part
        assert link.is_symlink() and link.resolve() == (ROOT / part).resolve(), part
