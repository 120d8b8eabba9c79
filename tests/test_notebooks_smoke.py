"""The from-scratch path of every study notebook (weights="train"), at the smoke profile: seconds of training,
then every cell runs and the results file is written through the schema, with a verdict row per claim. The
committed notebooks themselves (zoo weights, quick profile) run under nbval."""
import json
from pathlib import Path

import pytest

import fastdiff.results
from fastdiff.studies import report_claims as claims

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["00_diffusion_basics", "01_vgg_conditioned_sr", "02_adaptive_layer_skipping",
                                  "03_continuous_unet", "04_swindiffuser", "05_performance"])
def test_the_notebook_trains_from_scratch_and_writes_its_results(name, tmp_path):
    import papermill as pm
    pm.execute_notebook(str(NOTEBOOKS / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"), cwd=str(NOTEBOOKS),
                        parameters={"profile": "smoke", "weights": "train", "output_dir": str(tmp_path)},
                        progress_bar=False, log_output=False)
    results = json.loads((tmp_path / f"{name}.json").read_text())
    assert results["schema"] == fastdiff.results.SCHEMA and results["context"]["profile"] == "smoke"
    assert results["rows"] and results["verdicts"]
    assert all(r["weights"] for r in results["rows"])
    assert any("trained in this run" in r["weights"] or "trained" in r["weights"] for r in results["rows"])
    assert str(tmp_path) not in json.dumps(results["rows"])           # no absolute paths of this machine


def test_the_report_notebook_measures_a_small_map_and_writes_its_results(tmp_path):
    """Notebook 07 trains nothing: at the smoke profile it measures a few points on the zoo models, reads the SR map
    and every study's verdicts from the committed results, and writes its own results file. Given a pretrained
    pipeline (here the plain digits U-Net exported in diffusers' format), it also runs the map's anchors on it."""
    import papermill as pm

    from fastdiff.diffusers_io import export_pipeline
    pipe = export_pipeline("skipping/baseline-plain", None, tmp_path / "pipeline")
    pm.execute_notebook(str(NOTEBOOKS / "07_report.ipynb"), str(tmp_path / "07_report.ipynb"), cwd=str(NOTEBOOKS),
                        parameters={"profile": "smoke", "output_dir": str(tmp_path), "pretrained": str(pipe),
                                    "pretrained_n": 4}, progress_bar=False, log_output=False)
    on_pipeline = json.loads((tmp_path / "07_report_pretrained.json").read_text())
    assert on_pipeline["source"].endswith("pipeline") and on_pipeline["n"] == 4
    assert {"DDPM 1000", "DeepCache N=5, DDIM 100"} <= {r["label"] for r in on_pipeline["settings"].values()}
    results = json.loads((tmp_path / "07_report.json").read_text())
    assert results["schema"] == fastdiff.results.SCHEMA and results["context"]["profile"] == "smoke"
    assert len(results["verdicts"]) == len(claims.CLAIMS) == 9
    assert {r["method"] for r in results["rows"]} >= {"speed/quality map", "SR map: digits", "SR map: photos"}
    assert "zoo:skipping/baseline-plain" in results["context"]["weights"]
    gathered = results["details"]["gathered"]
    assert {r["study"] for r in gathered} >= {"00_diffusion_basics", "05_performance"}
    assert "07_report" not in {r["study"] for r in gathered}
    assert (tmp_path / "07_map.png").stat().st_size > 0
