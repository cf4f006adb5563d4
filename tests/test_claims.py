"""The research claims of the README and the notebooks, checked on the committed full-run tables.

``make figures`` writes the full run's tables to ``results/`` (and ``make model`` the base model's
accuracies to ``checkpoints/base/asam_meta.json``); the README and the notebooks' Markdown state what they
show. Each test here asserts one such finding on the committed files, and its message states the claim and
where it is made, so an edit of ``results/`` that reverses a finding fails ``make test`` with the claim
named. ``test_committed_results.py`` checks that these tables are the ones today's code writes.

Thresholds come from the claim's wording: "X above Y" with seeds is "their 95% intervals do not overlap";
a number the text gives ("below 0.7", "within 0.01") is that number; any other choice says why beside it.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest

from asam_lib.common import paths
from asam_lib.data.pretrain import TARGETS
from asam_lib.editors.lar import LARConfig
from asam_lib.evaluation.summaries import TARGETS as CLAIM
from asam_lib.experiments.ablations import PATCH_AT_FULL_BUDGET

RESULTS = paths.RESULTS  # ASAM_RESULTS: the claims checked on another run's tables (tools/kernel_sets.py)
EDITORS = ["FT-L", "LoRA", "Patch"]
TASKS = ["vqa", "caption"]


def _table(name: str) -> pd.DataFrame:
    return pd.read_csv(RESULTS / f"{name}.csv")


def _summary(name: str, index: list[str]) -> pd.DataFrame:
    """A summary table (mean, ci_low, ci_high per method and metric) indexed by ``index``."""
    table = _table(name)
    return table[table.protocol.isin(["exact", "answer_span"])].set_index(index)


def _closed(gap: float, baseline_gap: float) -> float:
    """Share of the baseline's gap ``1 - Gen`` that a method closes (notebook 04's gap closure)."""
    return 1 - gap / baseline_gap


# --- the base model (README, notebook 01 section 4) -------------------------------------------------


def test_the_base_model_meets_its_accuracy_targets():
    meta = json.loads((paths.CHECKPOINTS / "base" / "asam_meta.json").read_text())
    for name, target in TARGETS.items():
        assert meta["accuracy"][name] >= target, (
            f"README / notebook 01: the shipped base model reaches >= {target:.0%} on {name}; asam_meta.json says "
            f"{meta['accuracy'][name]:.1%}"
        )


# --- the intrinsic baselines' generality gap (README, notebook 01 section 5: results/01_baselines.csv) ---


@pytest.fixture(scope="module")
def baselines_by_tier() -> pd.DataFrame:
    return _table("01_baselines").set_index(["tier", "method", "metric"])


@pytest.fixture(scope="module")
def baselines(baselines_by_tier) -> pd.DataFrame:
    return baselines_by_tier.loc["standard"]


def test_patch_s_gap_is_wider_under_the_hard_tier_s_shift(baselines_by_tier):
    hard, standard = (
        baselines_by_tier.loc[("hard", "Patch", "Unit")],
        baselines_by_tier.loc[("standard", "Patch", "Unit")],
    )
    assert hard["mean"] < standard["mean"], (
        "notebook 01: Patch's unit consistency is lower on the hard tier's known members than on the standard unit"
    )


def test_patch_is_reliable_and_local_but_its_edit_misses_images_of_the_entity(baselines):
    patch = baselines.loc["Patch"]
    assert patch.loc["Rel", "mean"] >= 0.95, "notebook 01 / README: Patch is reliable (Rel >= 0.95)"
    for metric in ["T-Loc", "I-Loc"]:
        assert patch.loc[metric, "mean"] >= 0.95, f"notebook 01 / README: Patch keeps locality ({metric} >= 0.95)"
    for metric in ["I-Gen", "TI-Gen"]:
        assert patch.loc[metric, "ci_high"] < patch.loc["T-Gen", "ci_low"], (
            f"README: Patch keeps text generality but holds on far fewer of the unit's images ({metric}'s 95% CI "
            "below T-Gen's)"
        )
        assert patch.loc[metric, "mean"] <= patch.loc["Rel", "mean"] - 0.05, (
            f"notebook 01: Patch's generality gap is real ({metric} at least 0.05 below Rel)"
        )


def test_ftl_misses_images_of_the_edited_entity(baselines):
    ftl = baselines.loc["FT-L"]
    assert ftl.loc["I-Gen", "ci_high"] < ftl.loc["Rel", "ci_low"], (
        "README: FT-L misses many images of the edited entity (I-Gen's CI below Rel's)"
    )


def test_lora_moves_the_whole_unit_but_changes_unrelated_facts(baselines):
    assert baselines.loc[("LoRA", "Unit"), "mean"] >= 0.94, "README: LoRA moves nearly the whole unit (Unit >= 0.94)"
    for metric in ["T-Loc", "I-Loc"]:
        lora = baselines.loc[("LoRA", metric)]
        assert lora["mean"] < 0.95, f"README: LoRA changes unrelated facts (locality about 94%: {metric} < 0.95)"
        for other in ["FT-L", "Patch"]:
            assert lora["ci_high"] < baselines.loc[(other, metric), "ci_low"], (
                f"README: LoRA's {metric} is below {other}'s (95% CIs apart)"
            )


def test_text_generality_is_nearly_free(baselines):
    for method in EDITORS:
        assert baselines.loc[(method, "T-Gen"), "mean"] >= 0.95, (
            f"README: text generality is nearly free in this world ({method} T-Gen >= 0.95)"
        )


# --- LAR's predictive value (README, notebook 02 section 5: results/02_predictive_summary.csv) ----------


@pytest.fixture(scope="module")
def predictive() -> pd.DataFrame:
    return _table("02_predictive_summary").set_index(["method", "variants"])


@pytest.mark.parametrize("method", ["FT-L", "Patch"])
def test_within_an_editor_the_lar_loss_ranks_misses_better_than_random_variants(predictive, method):
    # LoRA is left out: it misses a member on too few edits to rank (README), which the next tests check
    lar, noise = predictive.loc[(method, "lar")], predictive.loc[(method, "noise")]
    assert lar.auc_loss_for_miss > noise.auc_loss_for_miss, (
        f"README / notebook 02: within {method}, the loss on LAR variants ranks misses on the unit better than "
        "random variants' (AUC)"
    )
    assert lar.spearman_loss_vs_unit < noise.spearman_loss_vs_unit, (
        f"README / notebook 02: within {method}, the LAR loss correlates more negatively with unit consistency than "
        "random variants' loss"
    )


@pytest.mark.parametrize("method", ["FT-L", "Patch", "pooled"])
def test_failing_on_lar_variants_predicts_failing_on_the_unit(predictive, method):
    lar = predictive.loc[(method, "lar")]
    assert lar.auc_loss_for_miss > 0.5 and lar.spearman_loss_vs_unit < 0, (
        f"README / notebook 02: LAR finds where an edit is weak ({method}: AUC > 0.5 and Spearman < 0 for the LAR loss)"
    )


def test_the_predictive_signal_is_moderate_and_lora_misses_too_rarely_to_rank(predictive):
    aucs = predictive.xs("lar", level="variants").loc[EDITORS, "auc_loss_for_miss"]
    assert (aucs < 0.75).all(), (
        f"README: the signal is moderate (per-editor AUCs below 0.75); measured {aucs.round(3).to_dict()}"
    )
    lora = predictive.loc["LoRA"]
    assert lora.loc["lar", "n_missing"] <= 5 and (lora.auc_loss_for_miss <= 0.55).all(), (
        "README: LoRA misses a member on too few edits to rank (at most 5), and neither loss does better than chance"
    )


@pytest.fixture(scope="module")
def predictive_paired() -> pd.DataFrame:
    return _table("02_predictive_paired").set_index("method")


@pytest.mark.parametrize("method", ["FT-L", "Patch", "pooled"])
def test_the_lar_auc_s_interval_lies_above_chance(predictive, method):
    lar = predictive.loc[(method, "lar")]
    assert lar.auc_ci_low > 0.5, (
        f"README / notebook 02 section 5: the LAR AUC's 95% interval lies above chance for {method}; measured "
        f"[{lar.auc_ci_low:.3f}, {lar.auc_ci_high:.3f}]"
    )


def test_no_paired_interval_resolves_lar_s_edge_over_random_variants(predictive_paired):
    for method, row in predictive_paired.iterrows():
        assert row.comparison == "LAR - random" and row.ci_low < 0 < row.ci_high, (
            f"README / notebook 02 section 5: every interval of the paired AUC difference LAR - random includes zero "
            f"({method}: {row.mean_diff:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}])"
        )


def test_loras_auc_intervals_span_most_of_the_range(predictive):
    width = predictive.loc["LoRA", "auc_ci_high"] - predictive.loc["LoRA", "auc_ci_low"]
    assert (width > 0.5).all(), (
        f"notebook 02 section 5: LoRA misses too rarely for its AUC to mean anything (intervals wider than one half); "
        f"measured widths {width.round(3).to_dict()}"
    )


# --- LAR vs random variants over the radius (notebook 02 section 4: results/02_eps_sweep.csv) ------------


@pytest.fixture(scope="module")
def sweep() -> pd.DataFrame:
    return _table("02_eps_sweep").groupby(["variants", "eps"])[["coherence", "edit failure"]].mean()


def test_random_variants_almost_never_break_the_edit_and_lar_variants_do(sweep):
    noise, lar = sweep.loc["noise", "edit failure"], sweep.loc["LAR", "edit failure"]
    assert (noise[noise.index <= 0.5] == 0).all() and (noise <= 0.1).all(), (
        "notebook 02: random perturbations of the same size almost never break the edit (never up to eps 0.5, at "
        f"most 1 in 10 beyond); {noise.to_dict()}"
    )
    assert (lar >= noise).all() and lar[LARConfig().eps] > noise[LARConfig().eps], (
        "notebook 02: only the gradient finds the failure region (LAR failure >= random's at every eps, above it at "
        "the default)"
    )


def test_coherence_falls_with_the_radius_and_the_default_keeps_it_high(sweep):
    coherence = sweep.loc["LAR", "coherence"]
    assert coherence.iloc[-1] < coherence.iloc[0], "notebook 02: the LAR variants' coherence falls as the radius grows"
    assert coherence[LARConfig().eps] >= 0.8, (
        f"notebook 02: the default radius eps = {LARConfig().eps} keeps coherence high (>= 0.8)"
    )


# --- the spectrum of H for real edits (notebook 03 section 4: results/03_spectrum_tail.csv) --------------


@pytest.fixture(scope="module")
def tails() -> dict[str, pd.DataFrame]:
    table = _table("03_spectrum_tail")
    return {
        value: table.pivot_table(index="rows", columns="condition", values=value)
        for value in ["tail energy", "tail energy, centred"]
    }


def test_asam_lowers_the_tail_energy_below_patchs_on_every_set_of_rows(tails):
    table = tails["tail energy"]
    for rows in table.index:
        assert table.loc[rows, "ASAM"] < table.loc[rows, "Patch"], (
            f"notebook 03: ASAM's mean tail energy is below Patch's on the {rows}"
        )


def test_patch_raises_the_tail_energy_of_the_lar_variants_and_the_spectrum_starts_dominated_by_s1(tails):
    table = tails["tail energy"]
    assert table.loc["LAR variants", "Patch"] > table.loc["LAR variants", "unedited"], (
        "notebook 03: on the fixed LAR variants, Patch raises the tail energy above the unedited model's"
    )
    assert (table["unedited"] < 0.1).all(), (
        "notebook 03: before any edit the spectra are dominated by s_1 (tail energy a few per cent, < 0.1)"
    )


@pytest.mark.parametrize("rows", ["random variants", "unit members"])
def test_most_of_asams_drop_on_unseen_rows_is_a_shared_component(tails, rows):
    drop = {value: 1 - table.loc[rows, "ASAM"] / table.loc[rows, "unedited"] for value, table in tails.items()}
    # "a much smaller fraction": less than half the uncentred drop
    assert drop["tail energy, centred"] < drop["tail energy"] / 2, (
        f"notebook 03: on the {rows} the centred tail falls by a much smaller fraction than the uncentred one ({drop})"
    )


# --- RCSL where it could act (README, notebook 03 sections 4 and 6: 03_spectrum_tail.csv, 03_rcsl_design.csv) ---


def test_the_variants_alone_do_most_of_asams_alignment(tails):
    table = tails["tail energy"]
    share = (table["Patch"] - table["ASAM without RCSL"]) / (table["Patch"] - table["ASAM"])
    assert (share > 0.9).all(), (
        "README / notebook 03: ASAM without RCSL gets over 90% of ASAM's drop in tail energy below "
        f"Patch's on every set of rows ({share.round(3).to_dict()})"
    )


@pytest.fixture(scope="module")
def design() -> pd.DataFrame:
    table = _table("03_rcsl_design")
    return table[(table.tier == "hard") & (table.metric == "Unit")].set_index("comparison")


def test_no_rcsl_form_clears_its_threshold_on_the_development_edits(design):
    clears = design[(design.mean_diff >= 0.03) & (design.ci_low > 0)]
    assert clears.empty, (
        "README / notebook 03: no form of RCSL adds +0.03 hard-tier unit consistency with an interval above zero "
        f"on the development edits; these do: {clears.index.tolist()}"
    )


def test_what_the_edit_adds_is_inert_and_centring_fights_the_edit(design):
    assert design.loc["what the edit adds, lambda=100 - without RCSL", "mean_diff"] == 0, (
        "README / notebook 03: RCSL on what the edit adds to the block output changes nothing"
    )
    assert design.loc["block output centred, lambda=100 - without RCSL", "ci_high"] < 0, (
        "README / notebook 03: centred RCSL at lambda_rank = 100 fights the edit (its interval below zero)"
    )


# --- the main table (README, notebook 04 section 2: results/04_main_summary.csv) --------------------


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    return _table("04_main_summary").set_index(["tier", "task", "method", "metric"])


@pytest.fixture(scope="module")
def main(summary) -> pd.DataFrame:
    return summary.xs("standard", level="tier")


@pytest.mark.parametrize("task", TASKS)
def test_asam_keeps_patchs_reliability_and_moves_almost_the_whole_unit(main, task):
    asam = main.loc[(task, "ASAM")]
    # "keeps": at most one edit in a hundred fewer
    assert asam.loc["Rel", "mean"] >= main.loc[(task, "Patch", "Rel"), "mean"] - 0.01, (
        f"README: on {task}, ASAM keeps Patch's reliability"
    )
    assert asam.loc["Unit", "mean"] >= 0.95, (
        f"README: on {task}, ASAM moves almost the whole knowledge unit (Unit >= 0.95)"
    )
    for other in ["Patch", "FT-L"]:
        assert main.loc[(task, other, "I-Gen"), "ci_high"] < asam.loc["I-Gen", "ci_low"], (
            f"README: on {task}, {other} misses many of the entity's other images where ASAM does not (I-Gen CIs apart)"
        )


@pytest.mark.parametrize("task", TASKS)
def test_on_the_hard_tier_asam_keeps_more_of_the_unit_than_patch(summary, task):
    hard = summary.xs("hard", level="tier")
    assert hard.loc[(task, "Patch", "Unit"), "ci_high"] < hard.loc[(task, "ASAM", "Unit"), "ci_low"], (
        f"README / notebook 04: on {task}'s hard tier (known members) ASAM keeps more of the unit than Patch (CIs"
        " apart)"
    )


def test_lora_moves_the_unit_on_vqa_at_a_cost_in_locality(main):
    assert main.loc[("vqa", "LoRA", "Unit"), "mean"] >= 0.95, "README: LoRA moves the unit too (VQA Unit >= 0.95)"
    for metric in ["T-Loc", "I-Loc"]:
        lora = main.loc[("vqa", "LoRA", metric), "mean"]
        assert all(lora < main.loc[("vqa", m, metric), "mean"] for m in ["Patch", "ASAM"]), (
            f"README: LoRA's VQA {metric} is below Patch's and ASAM's (a cost in locality)"
        )


def test_grace_is_reliable_and_local_but_barely_generalises(main):
    for task in TASKS:
        grace = main.loc[(task, "GRACE"), "mean"]
        assert grace["Rel"] >= 0.99 and min(grace["T-Loc"], grace["I-Loc"]) >= 0.99, (
            f"README: on {task}, GRACE is reliable and local (Rel and Loc >= 0.99)"
        )
        assert grace["I-Gen"] < 0.1, f"README: on {task}, GRACE barely reaches other images (I-Gen < 0.1)"


# --- the paper's claim as thresholds (README, notebook 04 sections 3 and 4: results/04_targets.csv) ------


BASELINES = ["Patch", PATCH_AT_FULL_BUDGET]  # each generality target is judged against the stronger of the two


def _targets_from_main(main: pd.DataFrame) -> dict[tuple[str, str], bool]:
    """Notebook 04's thresholds of the paper's claim recomputed from the main table: (task, target) -> met."""
    met = {}
    for task in TASKS:
        asam = main.loc[(task, "ASAM"), "mean"]
        for metric in ["T-Gen", "I-Gen", "TI-Gen"]:
            gap = min(1 - main.loc[(task, base, metric), "mean"] for base in BASELINES)  # the stronger baseline's
            target = f"closes >= 1/2 of the stronger of {' / '.join(BASELINES)}'s {metric} gap"
            met[task, target] = gap == 0 or _closed(1 - asam[metric], gap) >= 0.5
        met[task, "Rel >= 0.99"] = asam["Rel"] >= 0.99
        for metric in ["T-Loc", "I-Loc"]:
            met[task, f"{metric} >= 0.97"] = asam[metric] >= 0.97
    return met


def test_asam_meets_every_threshold_of_the_papers_claim(main):
    stored = _table("04_targets").set_index(["task", "target"]).met.to_dict()
    recomputed = _targets_from_main(main)
    rcsl = {key for key in stored if key[1].startswith("RCSL adds")}
    assert set(stored) - rcsl == set(recomputed), (
        f"results/04_targets.csv lists other thresholds than notebook 04 sets: {(set(stored) - rcsl) ^ set(recomputed)}"
    )
    for (task, target), met in recomputed.items():
        assert stored[task, target] == met, (
            f"results/04_targets.csv says {task} '{target}' met={stored[task, target]}, the main table gives {met}"
        )
        # against the same budget, training longer explains ASAM's image generality on captions
        expected = not (task == "caption" and target.startswith("closes") and ("I-Gen" in target or "TI-Gen" in target))
        assert met == expected, (
            f"README / notebook 04: on {task} the threshold '{target}' is {'met' if expected else 'missed'} "
            f"against the stronger of Patch and Patch at full budget (the main table says met={met})"
        )


@pytest.mark.parametrize("task", TASKS)
def test_against_default_patch_asam_closes_half_of_every_generality_gap(main, task):
    asam, patch = main.loc[(task, "ASAM"), "mean"], main.loc[(task, "Patch"), "mean"]
    for metric in ["T-Gen", "I-Gen", "TI-Gen"]:
        gap = 1 - patch[metric]
        assert gap == 0 or _closed(1 - asam[metric], gap) >= 0.5, (
            f"README / notebook 04: on {task}, ASAM closes half of default Patch's {metric} gap"
        )


def test_on_captions_patch_given_asams_budget_reaches_asams_unit(main):
    full, asam = (
        main.loc[("caption", PATCH_AT_FULL_BUDGET, "Unit"), "mean"],
        main.loc[("caption", "ASAM", "Unit"), "mean"],
    )
    assert full >= asam - 0.01, (
        f"README: on captions Patch given ASAM's budget reaches ASAM's unit (within 0.01; {full:.3f} vs {asam:.3f})"
    )


# --- ablations (README, notebook 04 section 4: results/04_ablations_paired.csv) ---------------------


@pytest.fixture(scope="module")
def paired() -> pd.DataFrame:
    return _table("04_ablations_paired").set_index(["comparison", "tier", "metric"])


def test_the_variants_cross_entropy_carries_asams_gain(paired):
    lar = paired.loc[("ASAM - without LAR", "hard", "Unit")]
    assert lar.ci_low > 0, (
        "README / notebook 04: with random variants (without LAR) the edit keeps less of the hard tier than ASAM's "
        f"(interval above zero; {lar.mean_diff:+.3f} [{lar.ci_low:+.3f}, {lar.ci_high:+.3f}])"
    )


@pytest.mark.parametrize("ablation", ["without RCSL", "without asymmetry"])
def test_removing_rcsl_or_its_asymmetry_changes_nothing_measurable_at_the_defaults(paired, ablation):
    differences = paired.xs(f"ASAM - {ablation}", level="comparison").mean_diff.abs()
    assert differences.max() < 0.01, (
        f"README / notebook 04: '{ablation}' changes nothing measurable at ASAM's defaults (every paired mean within "
        f"0.01; largest {differences.max():.3f})"
    )


@pytest.mark.parametrize(
    "comparison, early_stopping",
    [(f"ASAM - {PATCH_AT_FULL_BUDGET}", "ASAM - Patch"), ("ASAM - without LAR, all 30 steps", "ASAM - without LAR")],
)
def test_at_the_same_budget_asam_still_gains_but_less(paired, comparison, early_stopping):
    same, early = paired.loc[(comparison, "hard", "Unit")], paired.loc[(early_stopping, "hard", "Unit")]
    assert same.ci_low > 0, (
        f"README / notebook 04: '{comparison}' on the hard tier's known members has its interval above zero "
        f"({same.mean_diff:+.3f} [{same.ci_low:+.3f}, {same.ci_high:+.3f}])"
    )
    assert same.mean_diff < early.mean_diff, (
        f"README / notebook 04: '{comparison}' is smaller than '{early_stopping}': part of the gain is training length"
    )


@pytest.mark.parametrize(
    "comparison", ["RCSL alone, lambda_rank=100 - Patch", f"RCSL alone, all 30 steps - {PATCH_AT_FULL_BUDGET}"]
)
def test_rcsl_alone_beats_patch_at_either_budget(paired, comparison):
    row = paired.loc[(comparison, "hard", "Unit")]
    assert row.ci_low > 0, f"README / notebook 04: '{comparison}' on the hard tier has its interval above zero"


def test_where_rcsl_has_room_it_adds_nothing_visible():
    row = _table("04_ablations_paired").set_index(["comparison", "tier", "metric"])
    room = row.loc[("random variants, RCSL selected - random variants, without RCSL", "hard", "Unit")]
    assert room.ci_low < 0 < room.ci_high, (
        "README / notebook 04: with random variants the selected RCSL changes nothing this study can see (interval "
        f"across zero; {room.mean_diff:+.3f} [{room.ci_low:+.3f}, {room.ci_high:+.3f}])"
    )
    dev = _table("04_rcsl_headroom_dev").set_index("method")["Unit (hard)"]
    assert dev["random variants, without RCSL"] < dev["without RCSL"] - 0.05, (
        "README / notebook 04: on development edits random variants leave the hard tier well below LAR's (by > 0.05)"
    )


def test_the_rcsl_threshold_row_is_the_paired_table_s(paired):
    from asam_lib.evaluation.summaries import rcsl_target_check

    table = _table("04_ablations").set_index("method")
    stored = _table("04_targets").set_index("target")
    row = rcsl_target_check(paired.reset_index(), table)
    assert (
        stored.loc[row["target"], "met"] == row["met"] and stored.loc[row["target"], "measured"] == row["measured"]
    ), "results/04_targets.csv's RCSL row is what the paired ablations give"


# --- sequential editing (README, notebook 04 section 6: results/04_sequential_summary.csv) -------------


@pytest.fixture(scope="module")
def at_50() -> pd.DataFrame:
    """Means after T = 50 accumulated edits (every seed), methods x metrics."""
    table = _table("04_sequential_summary")
    assert set(table[table["T"] == 50].n_seeds) == {3}, "README: the sequential study runs three seeds to T = 50"
    return table[table["T"] == 50].pivot(index="method", columns="metric", values="mean")


def test_sequential_asam_pays_in_reliability_and_locality(at_50):
    for metric in ["Rel", "T-Loc", "I-Loc"]:
        assert at_50.loc["ASAM", metric] < at_50.loc["Patch", metric], (
            f"README / notebook 04: after 50 sequential edits paper-faithful ASAM's {metric} is below Patch's"
        )


def test_calibrated_asam_gets_locality_back_and_keeps_earlier_edits(at_50):
    calibrated, asam = at_50.loc["ASAM calibrated"], at_50.loc["ASAM"]
    for metric in ["T-Loc", "I-Loc"]:
        assert calibrated[metric] > asam[metric] + 0.2, (
            f"README / notebook 04: the calibrated option's {metric} is far above paper-faithful ASAM's at T = 50"
        )
    assert calibrated["Rel"] > asam["Rel"], "README / notebook 04: and it keeps earlier edits better (Rel)"


def test_the_calibrated_options_image_locality_is_below_patchs_early_and_crosses_above_by_T_50():
    table = _table("04_sequential_summary")
    iloc = table[table.metric == "I-Loc"].pivot(index="T", columns="method", values="mean")
    for T in (10, 25):
        assert iloc.loc[T, "ASAM calibrated"] < iloc.loc[T, "Patch"], (
            f"README: at T = {T} the calibrated option's image locality is below Patch's"
        )
    assert iloc.loc[50, "ASAM calibrated"] > iloc.loc[50, "Patch"], "README: ... and above it at T = 50"


def test_grace_stays_local_in_sequence_and_generalises_little(at_50):
    grace = at_50.loc["GRACE"]
    assert min(grace["T-Loc"], grace["I-Loc"]) >= 0.95 and grace["TI-Gen"] < 0.5, (
        "README / notebook 04: GRACE stays local over accumulated edits (Loc >= 0.95) and generalises little"
    )


def test_the_sequential_thresholds_are_what_the_tables_give():
    from asam_lib.evaluation.summaries import sequential_target_checks

    stored = _table("04_sequential_targets")
    checks = sequential_target_checks(_table("04_sequential_summary"), _table("04_ablations_paired"), "ASAM calibrated")
    ours, theirs = (t.sort_values("target").reset_index(drop=True) for t in (checks, stored))
    numbers = [t.measured.str.findall(r"[-+]?\d+\.\d+").explode().astype(float).to_numpy() for t in (ours, theirs)]
    # the summary is stored rounded to 6 decimals, so a difference can round the other way in the third
    assert ours[["target", "met"]].equals(theirs[["target", "met"]]) and abs(numbers[0] - numbers[1]).max() <= 0.0015, (
        "results/04_sequential_targets.csv is what the sequential summary and the paired ablations give"
    )


def test_the_sequential_option_leaves_single_edits_as_asams():
    paired = _table("04_ablations_paired")
    calibrated = paired[paired.comparison == "ASAM - ASAM calibrated"]
    assert len(calibrated) and (calibrated.mean_diff == 0).all(), (
        "README / notebook 04: the sequential option leaves every single-edit metric exactly as ASAM's"
    )


# --- sequential editing beyond notebook 04 (README "Sequential editing"; `make sequential-causes` writes both
# results/sequential_calibration_dev_paired.csv and results/sequential_causes_paired.csv) -------------------


def _paired_after(name: str, T: int, seeds: int = 3) -> pd.DataFrame:
    """The paired differences of ``results/<name>.csv`` after ``T`` accumulated edits, by comparison and metric."""
    table = _table(name)
    after = table[table["T"] == T]
    assert set(after.n_seeds) == {seeds}, f"README: {name} runs {seeds} seeds to T = {T}"
    return after.set_index(["comparison", "metric"])


def test_on_the_development_edits_the_calibrated_option_keeps_locality_but_not_generality_against_patch():
    dev = _paired_after("sequential_calibration_dev_paired", 48)
    calibrated = dev.loc["ASAM calibrated - Patch"]
    assert (calibrated.n_edits == 3 * 48).all(), "README: every one of the 48 development edits, on 3 seeds"
    for metric in ["T-Loc", "I-Loc"]:
        assert calibrated.loc[metric, "ci_low"] > 0, (
            f"README: on the development edits the calibrated option keeps {metric} well above Patch's (T = 48)"
        )
    # "on average": the mean paired difference, not its interval (seed 0 alone: -0.053 [-0.137, +0.036])
    assert calibrated.loc["TI-Gen", "mean_diff"] < 0, (
        "README: on the development edits the calibrated option ends below Patch's generality on average (TI-Gen, "
        "T = 48)"
    )
    candidates = {f"{name} - Patch" for name in ["ASAM", "calibrated on its own memory"]}
    assert candidates <= set(dev.index.get_level_values("comparison")), (
        "README: the development table holds paper-faithful ASAM and the calibrations the option was chosen among"
    )


def test_freezing_the_patch_keys_gives_sequential_locality_back_at_a_cost_in_generality():
    causes = _paired_after("sequential_causes_paired", 50)
    frozen = causes.loc["keys frozen - ASAM"]
    for metric in ["T-Loc", "I-Loc"]:
        assert frozen.loc[metric, "ci_low"] > 0, (
            f"README: with the patch keys and biases frozen, {metric} after 50 sequential edits is above ASAM's"
        )
    assert frozen.loc["TI-Gen", "ci_high"] < 0, (
        "README: freezing the keys costs generality after 50 sequential edits (TI-Gen below ASAM's)"
    )
    settings = {"without LAR", "without RCSL", "keys frozen", "eps=0.1", "question tokens only"}
    assert set(causes.index.get_level_values("comparison")) == {f"{s} - ASAM" for s in settings}, (
        "README: the cause study changes each of these ingredients of ASAM, one at a time"
    )


def test_in_sequence_lars_variants_are_part_of_the_leak_and_rcsl_is_not():
    causes = _paired_after("sequential_causes_paired", 50)
    for metric in ["T-Loc", "I-Loc"]:
        assert causes.loc[("without LAR - ASAM", metric), "ci_low"] > 0, (
            f"README: with random variants in place of LAR's, {metric} after 50 sequential edits is above ASAM's"
        )
        rcsl = causes.loc[("without RCSL - ASAM", metric)]
        assert rcsl.ci_low < 0 < rcsl.ci_high, f"README: without RCSL, {metric} after 50 edits does not move"


# --- the cost of an edit (README: the paper's claim as thresholds; make bench-edits: results/bench/edit_cost.csv) --


@pytest.fixture(scope="module")
def edit_cost() -> pd.DataFrame:
    return _table("bench/edit_cost").set_index(["task", "method"])


def test_asams_time_per_edit_is_within_its_3x_budget_of_patchs(edit_cost):
    # a committed table, so the check is deterministic; how close the wall-clock ratio is to the threshold is stated
    # in the README (load on a shared machine moved it between runs: docs/development.md)
    ratio = edit_cost.xs("ASAM", level="method").seconds_vs_patch
    for task in TASKS:
        assert ratio[task] <= CLAIM.max_time_ratio, (
            f"README: ASAM's time per edit is within {CLAIM.max_time_ratio:g}x Patch's on {task}; measured "
            f"{ratio[task]:.2f}x (results/bench/edit_cost.csv, make bench-edits)"
        )


def test_asam_takes_more_steps_and_forward_passes_per_edit_than_patch(edit_cost):
    for task in TASKS:
        asam, patch = edit_cost.loc[(task, "ASAM")], edit_cost.loc[(task, "Patch")]
        assert (
            asam.steps_per_edit > patch.steps_per_edit and asam.forward_passes_per_edit > patch.forward_passes_per_edit
        ), f"README: an ASAM edit ({task}) takes more optimiser steps and forward passes than a Patch edit"
