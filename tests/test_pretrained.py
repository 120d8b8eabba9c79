"""The full profile on a pretrained pipeline (issue 29), exercised offline on a zoo model exported in diffusers'
format: loaded back, sampled in a study's paper settings, scored with intervals beside the papers' numbers, written,
cached; and said plainly when no pipeline is given or it is not here."""
import json
from pathlib import Path

import pytest

from fastdiff import papers
from fastdiff.diffusers_io import export_pipeline
from fastdiff.measure.intervals import Estimate
from fastdiff.runner import _pretrained_parameter
from fastdiff.studies import pretrained

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    return export_pipeline("skipping/baseline-plain", None, tmp_path_factory.mktemp("pipe") / "digits-ddpm")


def test_an_exported_zoo_model_runs_a_studys_paper_settings_with_intervals(pipeline, tmp_path, capsys):
    """Study 5's rows (DDIM 100 on the ladder's rungs, compile left out) on the exported digits model: FD (LeNet)
    with intervals, paired ratios to fp32, the DDIM paper's number beside fp32's (not compared: another metric, n
    and step spacing); a second run reads the cache."""
    section = pretrained.run(str(pipeline), "05", profile="smoke", device="cpu", out=tmp_path, n=4,
                             cache=tmp_path / "cache")
    assert "only for orientation" in capsys.readouterr().out
    written = json.loads((tmp_path / "05_performance_pretrained.json").read_text())
    assert written["settings"].keys() == section["settings"].keys()
    assert len(section["settings"]) == 3 and section["metric"] == "FD (LeNet-MNIST), not FID"
    assert section["source"] == str(pipeline) and section["n"] == 4 and "CPU" in section["device"]
    assert section["floor"]["n"] == 500 and section["floor"]["label"] == "the 500 held-out digits"
    for key, r in section["settings"].items():
        assert r["n"] == 4 and r["NFE"] == 100 and r["ms_per_image"] > 0
        assert r["fd"]["low"] <= r["fd"]["value"] <= r["fd"]["high"]
    fp32 = section["settings"]["ddim-100--fp32"]
    assert fp32["paper"]["value"] == papers.value("00_diffusion_basics", "DDIM 100, eta 0", "FID")
    assert "quadratically" in fp32["paper"]["caveat"]
    ref = section["reference_setting"]
    assert {p["b"] for p in section["pairs"].values()} == {ref} and len(section["pairs"]) == 2
    t = pretrained.table(section)
    assert list(t["ours vs paper"]) == ["not comparable", "", ""]     # FD (LeNet) at n = 4 is not the papers' FID
    assert "FD (LeNet-MNIST)" in t.columns and "FID" not in t.columns
    assert t.loc[0, "FD (LeNet-MNIST)"] == pytest.approx(fp32["fd"]["uncorrected"], abs=1e-3)   # plug-in, as papers
    assert pretrained.headline(section).startswith(("fastest within", "no setting"))
    again = pretrained.measure(str(pipeline), "05", n=4, device="cpu", batch=8, n_boot=20, compile_rungs=False,
                               progress=False, cache=tmp_path / "cache")
    assert {k: r["fd"]["uncorrected"] for k, r in again["settings"].items()} == \
        {k: r["fd"]["uncorrected"] for k, r in section["settings"].items()}        # the same x_T, the same images


def test_no_pipeline_or_an_absent_one_is_said_plainly(tmp_path, capsys):
    for none in (None, "None", "", "false"):
        assert pretrained.run(none, "00", profile="quick", device="cpu") is None
        assert "No pretrained pipeline given" in capsys.readouterr().out
    assert pretrained.run(str(tmp_path / "missing"), "07", profile="smoke", device="cpu") is None
    assert "is not here, so this section measures nothing" in capsys.readouterr().out


def test_bad_parameters_get_clear_errors(pipeline, tmp_path):
    (tmp_path / "not-a-pipeline").mkdir()
    with pytest.raises(ValueError, match="not a diffusers pipeline folder"):
        pretrained.run(str(tmp_path / "not-a-pipeline"), "00", profile="smoke", device="cpu")
    with pytest.raises(ValueError, match="studies"):
        pretrained.run(str(pipeline), "03", profile="smoke", device="cpu")
    for bad in ("many", True, 1, -5):
        with pytest.raises(ValueError, match="pretrained_n"):
            pretrained.run(str(pipeline), "00", profile="smoke", device="cpu", n=bad)
    with pytest.raises(ValueError, match="hub id or a pipeline folder"):
        pretrained.run(3.5, "00", profile="smoke", device="cpu")


def test_every_studys_points_carry_the_papers_own_numbers():
    for study in pretrained.STUDIES:
        pts = pretrained.points(study)
        assert len({p.label for p, _ in pts}) == len(pts)
        assert pretrained.REFERENCE[study] in {p.label for p, _ in pts}
        for _, ref in pts:
            if ref is not None:
                assert papers.value(*ref, "FID") > 0
    labels = {p.label: ref for p, ref in pretrained.points("00")}
    assert papers.value(*labels["DDPM 1000"], "FID") == 3.17
    assert papers.value(*labels["DDIM 10, eta 1"], "FID") == 41.07
    skip = {p.label: (p, ref) for p, ref in pretrained.points("02")}      # Table 1's DDPM row: 1000 ancestral steps
    p, ref = skip["plain model, skipping c=0, DDPM 1000"]
    assert p.steps == 1000 and p.sampler.name == "ddpm" and papers.value(*ref, "FID") == 3.17
    assert dict(pretrained.points("07"))[next(p for p, _ in pretrained.points("07") if p.label == "UniPC 10")] is None
    assert not any("compile" in p.rung for p, _ in pretrained.points("05", compile_rungs=False))


def test_ours_against_the_papers_reads_the_interval():
    e = lambda lo, hi: Estimate((lo + hi) / 2, lo, hi, 50_000, "basic")     # noqa: E731
    assert pretrained._agreement(e(3.0, 3.4), 3.17, True).startswith("agrees")
    assert pretrained._agreement(e(4.0, 4.5), 3.17, True).startswith("differs")
    assert pretrained._agreement(e(3.3, 3.6), 3.17, True) == "inconclusive"      # straddles 1.1 x 3.17
    assert pretrained._agreement(e(3.0, 3.4), 3.17, False) == "not comparable"
    assert pretrained._agreement(e(3.0, 3.4), None, True) == ""
    assert pretrained._agreement(e(3.0, 3.4), 3.17, True, "spaced otherwise").startswith("not comparable")
    fid = {"metric": "FID (Inception-v3, torch-fidelity)"}
    assert pretrained.comparable({**fid, "n": 50_000}) and not pretrained.comparable({**fid, "n": 1000})
    assert not pretrained.comparable({"metric": "FD (LeNet-MNIST), not FID", "n": 50_000})


def test_rgb_pipelines_need_the_inception_weights_and_say_where_they_go():
    from fastdiff.weights import is_available
    if is_available("inception-v3-compat"):
        pytest.skip("Inception-v3 weights are on this machine")
    with pytest.raises(FileNotFoundError, match="weights-inception"):
        pretrained.scorer((3, 32, 32), device="cpu")


def test_reproduce_hands_the_pipeline_only_to_the_notebooks_that_take_it(tmp_path):
    for nb in ("00_diffusion_basics", "02_adaptive_layer_skipping", "05_performance", "07_report"):
        assert _pretrained_parameter(NOTEBOOKS / f"{nb}.ipynb", "google/ddpm-cifar10-32") == \
            {"pretrained": "google/ddpm-cifar10-32"}
    for nb in ("01_vgg_conditioned_sr", "03_continuous_unet", "04_swindiffuser", "06_fool_rate_game"):
        assert _pretrained_parameter(NOTEBOOKS / f"{nb}.ipynb", "google/ddpm-cifar10-32") == {}
    assert _pretrained_parameter(NOTEBOOKS / "00_diffusion_basics.ipynb", None) == {}
    assert _pretrained_parameter(NOTEBOOKS / "07_report.ipynb", str(tmp_path)) == {"pretrained": str(tmp_path)}


def test_an_rgb_pipeline_gets_fid_through_torch_fidelitys_inception(tmp_path, monkeypatch):
    """The RGB path end to end on stand-ins (offline: no Inception weights, no CIFAR-10): a tiny random RGB U-Net
    exported as a pipeline, torch-fidelity's Inception-v3 with random weights, 24 random "CIFAR-10" images. The
    numbers mean nothing; what is tested is that the features are Inception's 2048, FID is named FID, the paper
    column is filled and the like-for-like test reads the metric and n."""
    import torch
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    import fastdiff.data
    import fastdiff.weights
    from fastdiff.unet import build_unet
    torch.manual_seed(0)
    folder = export_pipeline(build_unet("tiny", in_channels=3, image_size=16, attention_resolutions=(8,)), "linear", tmp_path / "rgb")
    blank = tmp_path / "inception.pth"
    torch.save({}, blank)
    monkeypatch.setattr(fastdiff.weights, "require", lambda key: blank)
    monkeypatch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
    real = fastdiff.data.load_dataset
    fake = {"train": torch.rand(24, 3, 16, 16) * 2 - 1, "val": torch.rand(12, 3, 16, 16) * 2 - 1}
    monkeypatch.setattr(fastdiff.data, "load_dataset",
                        lambda name, **kw: fake[kw["split"]] if name == "cifar10" else real(name, **kw))
    section = pretrained.measure(str(folder), "05", n=4, device="cpu", batch=4, n_boot=10, compile_rungs=False,
                                 progress=False, cache=tmp_path / "cache")
    assert section["metric"] == "FID (Inception-v3, torch-fidelity)" and "24 CIFAR-10" in section["reference"]
    assert section["floor"]["n"] == 12
    assert not pretrained.comparable(section)                          # n = 4, not the papers' 50,000
    t = pretrained.table(section)
    assert "FID" in t.columns and t.loc[0, "paper FID"] == 4.16
    assert list(t["ours vs paper"]) == ["not comparable", "", ""]
    assert pretrained.comparable({**section, "n": pretrained.PAPER_N})
