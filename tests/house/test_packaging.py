"""A non-editable install (`pip install .` into a fresh virtualenv) followed by `stillroom init` writes its database
under the current directory's data/ (or STILLROOM_DATA_DIR), never inside site-packages (issue 17).

Offline: the wheel is built with the build backend already installed (--no-build-isolation, --no-index), and the
fresh virtualenv borrows the test environment's third-party packages through a .pth line instead of downloading
them (that line is not processed as a site directory, so the editable checkout installed there stays out)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from core.store import config

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[Path]:
    """Every file under root, bytecode caches aside (Python may compile what it imports; that is not data)."""
    return {p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """A fresh virtualenv with Stillroom installed from its wheel: (its bin directory, its site-packages)."""
    pytest.importorskip("setuptools", reason="building offline needs the build backend installed beside pytest")
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "core", src / "core", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp / "w")],
                   check=True, timeout=120)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    wheel = next((tmp / "w").glob("stillroom-*.whl"))
    subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=120)
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c",
                                "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "_borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv / "bin", site


def _init(bin_dir: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("PYTHONPATH", "DATABASE_URL", "STILLROOM_DATABASE_URL", "STILLROOM_DATA_DIR")}
    return subprocess.run([str(bin_dir / "stillroom"), "init"], cwd=cwd, env={**clean, **env}, check=True,
                          capture_output=True, text=True, timeout=120)


def test_the_installed_package_is_the_one_that_runs(installed, tmp_path):
    bin_dir, site = installed
    where = subprocess.run([str(bin_dir / "python"), "-c", "import core; print(core.__file__)"], cwd=tmp_path,
                           env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
                           check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(site)


def test_init_writes_the_database_under_the_current_directory_not_site_packages(installed, tmp_path):
    bin_dir, site = installed
    before = _files(site)
    out = _init(bin_dir, tmp_path)
    assert (tmp_path / "data" / "stillroom.db").is_file()
    assert str(tmp_path / "data" / "stillroom.db") in out.stdout
    assert _files(site) == before, f"written into site-packages: {sorted(map(str, _files(site) - before))}"


def test_init_honours_stillroom_data_dir(installed, tmp_path):
    bin_dir, site = installed
    before = _files(site)
    (tmp_path / "cwd").mkdir()
    _init(bin_dir, tmp_path / "cwd", STILLROOM_DATA_DIR=str(tmp_path / "elsewhere"))
    assert (tmp_path / "elsewhere" / "stillroom.db").is_file()
    assert not (tmp_path / "cwd" / "data").exists()
    assert _files(site) == before


def test_a_checkout_keeps_its_own_data_directory_and_an_install_uses_the_current_one(tmp_path, monkeypatch):
    assert config.default_data_dir() == REPO / "data"  # make run and the tests run from the checkout
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path / "site-packages")
    monkeypatch.chdir(tmp_path)
    assert config.default_data_dir() == tmp_path / "data"
