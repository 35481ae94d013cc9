"""The typed public API: py.typed ships, mypy is clean on the package, and docs/api.md is in sync."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_package_is_marked_typed_and_ships_the_marker():
    import tomllib

    assert (ROOT / "nkernels" / "py.typed").exists()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["nkernels"]


def test_mypy_is_clean_on_the_public_modules():
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_api_reference_matches_the_docstrings():
    result = subprocess.run([sys.executable, "docs/generate_api.py", "--check"], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
