"""Each notebook's cells run in order in one kernel under the suite's own pytest-xdist settings (pyproject.toml's
addopts and tests/conftest.py, copied into a scratch project of small notebooks), and the conftest's check fails a
run whose cells of one notebook were spread over two kernels."""
import os
import shutil
import subprocess
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
N_CELLS = 12


def _scratch_project(tmp_path: Path) -> Path:
    addopts = re.search(r'^addopts = "(.*)"$', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    (tmp_path / "pytest.ini").write_text(f"[pytest]\naddopts = {addopts}\n")
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    for name in ("a", "b", "c"):   # a later cell fails with NameError or AssertionError in any other kernel
        cells = [nbformat.v4.new_code_cell("import os\nkernel_pid = os.getpid()")]
        cells += [nbformat.v4.new_code_cell(f"assert os.getpid() == kernel_pid  # cell {i}") for i in range(N_CELLS)]
        nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path / f"nb_{name}.ipynb")
    (tmp_path / "test_units.py").write_text("import pytest\n\n@pytest.mark.parametrize('i', range(6))\n"
                                            "def test_unit(i):\n    assert i >= 0\n")
    return tmp_path


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "COV_"))}  # not this run's worker
    return subprocess.run([sys.executable, "-m", "pytest", "-n", "2", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=300)


def test_every_notebook_runs_in_one_kernel_under_the_suites_settings(tmp_path):
    run = _pytest(_scratch_project(tmp_path))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert f"{3 * (N_CELLS + 1) + 6} passed" in run.stdout


def test_the_check_fails_a_run_that_spreads_a_notebook_over_two_kernels(tmp_path):
    run = _pytest(_scratch_project(tmp_path), "--dist", "load")      # cell by cell over both workers
    assert run.returncode != 0
    assert "ran in 2 kernels; each notebook must run in one" in run.stdout, run.stdout[-3000:]
