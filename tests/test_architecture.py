"""The layer contracts in pyproject.toml hold, and they do catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def lint(root: Path) -> subprocess.CompletedProcess:
    """Run lint-imports over the `dance` package found in `root`, with the project's contracts."""
    env = {"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}
    return subprocess.run([*LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_layers_the_streamlit_rule_and_the_torch_free_serving_hold():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    shutil.copytree(ROOT / "dance", tmp_path / "dance", ignore=shutil.ignore_patterns("__pycache__"))
    labels = tmp_path / "dance" / "data" / "labels.py"
    labels.write_text(labels.read_text() + "\nfrom dance.inference import predict  # an upward import\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "Layers: each package imports only the ones below it BROKEN" in result.stdout
    assert "dance.data.labels -> dance.inference.predict" in result.stdout


def test_streamlit_outside_the_ui_breaks_its_contract(tmp_path):
    shutil.copytree(ROOT / "dance", tmp_path / "dance", ignore=shutil.ignore_patterns("__pycache__"))
    plots = tmp_path / "dance" / "plots.py"
    plots.write_text(plots.read_text() + "\nimport streamlit\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "Streamlit only in the UI BROKEN" in result.stdout


def test_torch_in_a_serving_module_breaks_its_contract(tmp_path):
    shutil.copytree(ROOT / "dance", tmp_path / "dance", ignore=shutil.ignore_patterns("__pycache__"))
    sidecar = tmp_path / "dance" / "models" / "sidecar.py"
    sidecar.write_text(sidecar.read_text() + "\nfrom dance.models import registry  # pulls in torch\n")
    result = lint(tmp_path)
    assert result.returncode != 0 and "Serving modules never import torch BROKEN" in result.stdout
