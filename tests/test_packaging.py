"""The README's commands, .ci/run, pyproject.toml and environment.yml agree."""
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_names_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    env = (ROOT / "environment.yml").read_text()
    pip_section = env.split("- pip:", 1)[1]
    listed = re.findall(r"^\s+-\s+(\S+)\s*$", pip_section, re.M)
    as_set = lambda reqs: {(Requirement(r).name.lower(), str(Requirement(r).specifier)) for r in reqs}  # noqa: E731
    assert as_set(declared) == as_set(listed)
    assert "python=3.11" in env and "conda-forge" in env


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    test_cmd = re.search(r"&& (.+?)\s+# the tests", readme).group(1)
    main_cmd = re.search(r"&& (.+?)\s+# the main job", readme).group(1)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_cmd in ci_lines
    assert any("pip install" in line and '-e ".[test]"' in line for line in ci_lines)
    # the main job is the installed console script (its runner is tested in test_runner.py)
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert main_cmd.split()[0] in scripts and main_cmd.split()[1] == "reproduce"


def test_torch_pair_is_matched():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = {Requirement(d).name: Requirement(d).specifier for d in deps}
    # torchvision 0.29 pairs with torch 2.15 (torchvision minor = torch minor + 14)
    assert "2.15.0" in spec["torch"] and "2.16.0" not in spec["torch"]
    assert "0.29.0" in spec["torchvision"] and "0.30.0" not in spec["torchvision"]
