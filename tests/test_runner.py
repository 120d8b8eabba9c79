import json

import nbformat
import pytest

from fastdiff.cli import main
from fastdiff.runner import find_notebooks, reproduce


def write_notebook(path, *cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('profile = "quick"\ndevice = "auto"\noutput_dir = "."',
                                          metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@pytest.fixture
def notebooks(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    write_notebook(d / "00_ok.ipynb", "import json, pathlib\n"
                   "pathlib.Path(output_dir, '00_ok.json').write_text(json.dumps({'profile': profile}))")
    write_notebook(d / "01_broken.ipynb", "x = 1", "raise ValueError('boom')", "y = 2")
    write_notebook(d / "02_ok.ipynb", "z = 3")
    (d / "scratch.ipynb").write_text("{}")  # unnumbered: not a study notebook
    return d


def test_runner_carries_on_and_reports_the_failing_cell(notebooks, tmp_path, capsys):
    out = tmp_path / "run"
    code, records = reproduce(profile="full", device="cpu", notebooks_dir=notebooks, out=out, progress=False)
    assert code == 1
    assert [r["status"] for r in records] == ["ok", "failed", "ok"]
    failed = records[1]
    assert failed["cell_index"] == 3  # in the executed copy, after papermill's injected-parameters cell
    assert failed["source"] == "raise ValueError('boom')" and "ValueError: boom" in failed["error"]
    assert json.loads((out / "00_ok.json").read_text()) == {"profile": "full"}  # parameters reached the notebook
    assert (out / "02_ok.ipynb").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["parameters"]["device"] == "cpu" and len(summary["notebooks"]) == 3
    printed = capsys.readouterr().out
    assert "failing cell 3 of" in printed and "raise ValueError('boom')" in printed and "ValueError: boom" in printed


def test_only_selects_and_unknown_is_an_error(notebooks, tmp_path, capsys):
    assert [p.name for p in find_notebooks(notebooks, "02,00")] == ["02_ok.ipynb", "00_ok.ipynb"]
    assert [p.name for p in find_notebooks(notebooks, "01_broken")] == ["01_broken.ipynb"]
    with pytest.raises(ValueError, match="matches no notebook"):
        find_notebooks(notebooks, "07")
    assert main(["reproduce", "--only", "07", "--notebooks", str(notebooks)]) == 2
    assert "matches no notebook" in capsys.readouterr().err
    assert main(["reproduce", "--only", "02", "--notebooks", str(notebooks), "--out", str(tmp_path / "o")]) == 0
    with pytest.raises(SystemExit):
        main(["reproduce", "--profile", "huge"])


def test_a_second_reproduce_into_the_same_folder_stops_with_the_first_ones_pid(notebooks, tmp_path, capsys):
    import subprocess
    import sys
    out = tmp_path / "run"
    hold = ("import sys, time; from fastdiff.files import file_lock\n"
            "with file_lock(sys.argv[1], what='x'):\n    print('held', flush=True); time.sleep(60)\n")
    first = subprocess.Popen([sys.executable, "-c", hold, str(out / "summary.json")], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert first.stdout.readline().strip() == "held"
        code = main(["reproduce", "--notebooks", str(notebooks), "--out", str(out), "--only", "02"])
    finally:
        first.kill()
        first.wait()
    assert code == 2
    assert f"the run folder {out} is in use by process {first.pid}" in capsys.readouterr().err
    assert not (out / "02_ok.ipynb").exists()
