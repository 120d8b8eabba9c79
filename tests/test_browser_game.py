"""Notebook 06 in a real browser: JupyterLab in headless Chromium (Debian's `chromium`, driven by Playwright),
runs the notebook, plays three trials by clicking, and checks the answers file.

Needs /usr/bin/chromium (apt-get install chromium) and the `playwright` Python package (its own browser download
is not used). Skipped when either is missing, except where FASTDIFF_REQUIRE_BROWSER=1 (CI), where that is a
failure. FASTDIFF_SCREENSHOT=<path> also saves the screenshot of the game there."""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from fastdiff.measure.answers import read_answers

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_fool_rate_game.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]


def _require_browser():
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "the playwright package (pip install playwright)"
    else:
        missing = None if CHROMIUM else "Chromium (apt-get install chromium)"
    if missing:
        if os.environ.get("FASTDIFF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"FASTDIFF_REQUIRE_BROWSER=1 but {missing} is not installed")
        pytest.skip(f"browser test needs {missing}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyter_lab(tmp_path):
    """A JupyterLab server on localhost serving tmp_path, with a copy of notebook 06 parameterised for the test."""
    import nbformat
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:  # run the notebook as it is committed, from a clean state
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    params = {"output_dir": str(tmp_path / "out"), "player": "browser-test", "session": "browser",
              "show_seconds": 2.0, "trials_per_model": 2}
    where = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in params.items())))
    nbformat.write(nb, tmp_path / "game.ipynb")
    port, token = _free_port(), "fastdiff-test"
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"), "PYTHONPATH": str(NOTEBOOK.parents[1])}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyter.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("JupyterLab exited:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not answer within 60 s")
        yield f"{url}/lab/tree/game.ipynb?token={token}", tmp_path
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


def _play_three_trials(page, root: Path) -> None:
    page.locator(".jp-Notebook").wait_for(timeout=60_000)
    # run only once the kernel is up: JupyterLab drops the execution requests of a kernel still starting
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    start = page.locator("button.fastdiff-next")
    start.wait_for(timeout=120_000)
    start.scroll_into_view_if_needed()
    game = page.locator(".fastdiff-fool-rate-game")
    for i, side in enumerate(["left", "right", "left"]):
        page.locator("button.fastdiff-next:not([disabled])").click()
        page.get_by_text("Look closely").wait_for(timeout=10_000)
        if i == 0:
            shot = root / "06_fool_rate_game-chromium.png"
            game.screenshot(path=str(shot))
            if os.environ.get("FASTDIFF_SCREENSHOT"):
                shutil.copy(shot, os.environ["FASTDIFF_SCREENSHOT"])
        # the choice buttons open only once the candidates are hidden (2 s here)
        button = page.locator(f"button.fastdiff-{side}:not([disabled])")
        button.wait_for(timeout=10_000)
        button.click()
        page.get_by_text(f"Answer {i + 1} recorded").wait_for(timeout=10_000)


def test_notebook_06_plays_three_trials_in_chromium(jupyter_lab):
    _require_browser()
    from playwright.sync_api import sync_playwright
    url, root = jupyter_lab
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            page.goto(url)
            _play_three_trials(page, root)
        except Exception:
            page.screenshot(path=str(root / "failure.png"))
            print(f"page at the failure: {root / 'failure.png'}; server log: {root / 'jupyter.log'}")
            raise
        finally:
            browser.close()
    records = read_answers(root / "out" / "06_fool_rate_answers.jsonl")
    assert [r["choice"] for r in records] == ["left", "right", "left"]
    assert [r["trial"] for r in records] == [0, 1, 2]
    assert {r["session"] for r in records} == {"browser"} and {r["player"] for r in records} == {"browser-test"}
    assert all(r["response_s"] >= 2.0 for r in records)  # answers came after the 2 s display
    assert (root / "06_fool_rate_game-chromium.png").stat().st_size > 10_000
