"""Study 06, the fool-rate game: the VGG-SR paper's human evaluation protocol and its published fool rates.
The game itself lives in `fastdiff.measure.foolrate` (logic), `fastdiff.measure.game_images` (folders) and
`fastdiff.measure.foolrate_widget` (the widget)."""
from __future__ import annotations

from .. import papers
from ..checks import check_bool, check_int, check_number
from ..measure.foolrate import with_paper_rates
from ..results import Results

# VGG-SR paper, Fig. 8 / Sec. 4.5: FFHQ 32x32 -> 128x128, 10 participants, 2000 denoising steps. The paper gives
# neither the number of trials nor intervals.
PAPER_FOOL_RATES = {p.variant: p.value / 100 for p in papers.numbers("01_vgg_conditioned_sr", metric="fool rate")}
PAPER_SHOW_SECONDS = papers.value("01_vgg_conditioned_sr", "human study", "seconds shown")
PAPER_SOURCE = f"VGG-SR paper, Fig. 8: FFHQ 32->128, " \
    f"{papers.value('01_vgg_conditioned_sr', 'human study', 'participants'):g} participants, " \
    f"{PAPER_SHOW_SECONDS:g} s per trial"
# The game runs no model; the profiles differ only in session length and the size of the offline demo.
PROFILES = {"quick": {"trials_per_model": 10, "demo_images": 24}, "full": {"trials_per_model": 30, "demo_images": 64}}


def get_profile(name: str) -> dict:
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {sorted(PROFILES)}")
    return dict(PROFILES[name])


def game_parameters(profile: str, *, trials_per_model=None, show_seconds=PAPER_SHOW_SECONDS,
                    answer_while_showing=False, reveal=False) -> dict:
    """Notebook 06's raw parameters, checked: the profile's settings with ``trials_per_model`` (None: the
    profile's; else an integer >= 1), ``show_seconds`` (None: the paper's 5 s; else a number > 0) and the two
    flags (`fastdiff.checks.check_bool`). No value is replaced by a default because it is falsy (0 trials is an error, not 10)."""
    P = get_profile(profile)
    if trials_per_model is not None:
        P["trials_per_model"] = check_int("trials_per_model", trials_per_model)
    show_seconds = PAPER_SHOW_SECONDS if show_seconds is None else show_seconds
    return {**P, "show_seconds": check_number("show_seconds", show_seconds, positive=True),
            "answer_while_showing": check_bool("answer_while_showing", answer_while_showing),
            "reveal": check_bool("reveal", reveal)}


def beside_paper(table):
    """Our fool-rate table with the VGG-SR paper's rates (and display time) as extra rows, labelled by source."""
    return with_paper_rates(table, PAPER_FOOL_RATES, PAPER_SOURCE, show_s=PAPER_SHOW_SECONDS)


STUDY = "06_fool_rate_game"


def collect_results(table, *, images_from: str, show_seconds: float):
    """Fool rates as `fastdiff.results` rows (device and dtype do not apply: people play, no model runs), each
    with the display time and image set it was measured at (``show_seconds``: this run's setting)."""
    res = Results(STUDY, device="people", dtype="", dataset=images_from, weights="", show_seconds=show_seconds)
    for r in table.itertuples():
        res.add("fool-rate game", r.model, "fool rate", r.fool_rate, n=r.n, ci_low=r.ci_low, ci_high=r.ci_high,
                show_s=r.show_s, image_set=r.image_set)
    for model, rate in PAPER_FOOL_RATES.items():
        res.add("fool-rate game", f"paper: {model}", "fool rate", None, paper_value=rate, paper_source=PAPER_SOURCE)
    return res


def summary(table) -> None:
    """What we found, printed: every model's fool rate with its interval and median response time (``table``:
    `fastdiff.measure.foolrate.fool_rate_table`), then the paper's rates."""
    lines = ["no answers yet: this run only drew the game (papermill/nbval do not play it)"] if table.empty else []
    lines += [f"{r.model} ({r.show_s:g} s, images {r.image_set}): fooled {r.fooled} of {r.n} times, "
              f"fool rate {r.fool_rate:.0%} (95% CI {r.ci_low:.0%}-{r.ci_high:.0%}), "
              f"median response {r.median_response_s:.1f} s" for r in table.itertuples()]
    lines += [f"paper, {m}: {rate:.0%}" for m, rate in PAPER_FOOL_RATES.items()]
    print("\n".join(lines))
