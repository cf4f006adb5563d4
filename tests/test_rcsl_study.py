"""Notebook 03's experiments (asam_lib.experiments.rcsl_study) and figures (asam_lib.figures.rcsl_plots), and the
notebooks' one setup call (asam_lib.figures.notebook)."""

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import torch

from asam_lib.common import paths, provenance
from asam_lib.common.parameters import ParameterError, parameter_defaults
from asam_lib.data.pretrain import base_model
from asam_lib.data.world import World
from asam_lib.editors import rcsl
from asam_lib.editors.patch import Patch
from asam_lib.editors.rcsl import RCSLConfig
from asam_lib.evaluation.harness import HarnessConfig, build_cases
from asam_lib.experiments import rcsl_study
from asam_lib.figures import notebook, plots, rcsl_plots
from asam_lib.mllm.prompting import PromptEncoder

from helpers import weights


def _random(n=5, d=7, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _cloud():
    return 0.6 * _random(6, 2, seed=3) + torch.tensor([1.2, 0.6], dtype=torch.float64)


@pytest.mark.parametrize("objective", rcsl.OBJECTIVES)
def test_closed_form_gradients_match_autograd(objective):
    H = _random().requires_grad_(True)
    (auto,) = torch.autograd.grad(rcsl.rank_loss(H, objective, eps=0), H)
    closed = rcsl_study.closed_form_gradients(H.detach())[objective]
    assert closed.shape == H.shape
    assert torch.allclose(closed, auto, atol=1e-12)  # float64: both are exact up to rounding (~1e-16)


def test_a_wrong_closed_form_would_be_caught_by_the_gradient_checks(monkeypatch):
    H = _random()
    checks = rcsl_study.gradient_checks(H)
    assert list(checks.index) == list(rcsl.OBJECTIVES)
    assert (checks["closed form vs autograd"] < 1e-12).all()
    assert (checks["autograd vs finite diff."] < 1e-8).all()  # central differences, h = 1e-6: error ~1e-10
    assert (checks["<dL/dH, H>"].abs() < 1e-12).all()  # scale invariance
    assert checks.loc["tail_energy", "L(H)"] == pytest.approx(rcsl.rank_loss(H, eps=0).item(), rel=1e-12)
    wrong = {**rcsl_study.closed_form_gradients(H), "nuclear": torch.zeros_like(H)}
    monkeypatch.setattr(rcsl_study, "closed_form_gradients", lambda _: wrong)
    assert rcsl_study.gradient_checks(H).loc["nuclear", "closed form vs autograd"] > 1e-3


def test_finite_differences_approximate_the_gradient():
    H = _random(4, 3, seed=1)
    X = H.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(rcsl.rank_loss(X, "tail_sum", eps=0), X)
    fd = rcsl_study.finite_difference_gradient(H, "tail_sum", h=1e-6)
    assert torch.allclose(fd, auto, atol=1e-7)  # truncation ~h^2, rounding ~1e-16 / h = 1e-10: far below 1e-7
    assert not torch.allclose(rcsl_study.finite_difference_gradient(H, "nuclear"), auto, atol=1e-3)


def test_at_the_rank_one_target_only_the_tail_energy_gradient_vanishes():
    g = torch.Generator().manual_seed(0)
    H1 = torch.outer(torch.randn(5, generator=g, dtype=torch.float64), torch.randn(7, generator=g, dtype=torch.float64))
    direction = torch.randn(5, 7, generator=g, dtype=torch.float64)
    direction = direction / direction.norm() * H1.norm()
    near = rcsl_study.rank_one_gradients(H1, direction, [1e-2, 1e-6])
    assert list(near.columns) == ["objective", "delta", "L", "|dL/dH|_F * |H|_F"]
    assert len(near) == 2 * len(rcsl.OBJECTIVES)
    at = near.set_index(["objective", "delta"])["|dL/dH|_F * |H|_F"]
    # linear in delta for the smooth objective (~1e-6 here), order one for the kinked ones: margins of 100x
    assert at["tail_energy", 1e-6] < 1e-4 and at["tail_sum", 1e-6] > 0.1 and at["nuclear", 1e-6] > 0.1
    assert at["tail_energy", 1e-2] > 100 * at["tail_energy", 1e-6]


def test_descent_keeps_the_detached_anchor_bit_for_bit_and_collapses_the_tail():
    cloud = _cloud()
    symmetric = rcsl_study.descend(cloud, RCSLConfig(asymmetric=False), n_steps=40, learning_rate=1.0)
    asymmetric = rcsl_study.descend(cloud, RCSLConfig(asymmetric=True), n_steps=40, learning_rate=1.0)
    assert symmetric.shape == (41, 6, 2)
    assert torch.equal(symmetric[0], cloud) and torch.equal(asymmetric[0], cloud)
    assert torch.equal(asymmetric[:, 0], cloud[0].expand(41, 2))
    assert (symmetric[-1, 0] - cloud[0]).norm() > 0.1  # the free anchor moves (by ~0.5 on this cloud)
    for P in (symmetric, asymmetric):
        assert rcsl.spectrum(P[-1])[1] < 0.1 * rcsl.spectrum(P[0])[1]


def test_descent_summary_describes_each_run():
    descent = rcsl_study.point_cloud_descent(_cloud(), n_steps=30, learning_rate=1.0)
    assert set(descent) == {(o, a) for o in rcsl.OBJECTIVES for a in (False, True)}
    summary = rcsl_study.descent_summary(descent)
    assert len(summary) == 6 and set(summary.flow) == {"symmetric", "asymmetric"}
    P = descent["nuclear", False]
    row = summary[(summary.objective == "nuclear") & (summary.flow == "symmetric")].iloc[0]
    assert row["tail share end"] == rcsl.spectrum(P[-1])[1].item()
    assert row["tail reduction"] == pytest.approx(1 - row["tail share end"] / row["tail share start"])
    assert (summary[summary.flow == "asymmetric"]["anchor moved by"] == 0).all()
    # with every row free the gradient is orthogonal to H, so no step shortens it (|H - g|^2 = |H|^2 + |g|^2);
    # 1e-12 allows for rounding only
    assert (summary[summary.flow == "symmetric"]["|H|_F end / start"] >= 1 - 1e-12).all()


def test_design_controls_pair_each_form_with_its_own_base():
    names = ["without RCSL", "block output, lambda=1", "FT-L3 without RCSL", "FT-L3, FFN hidden, lambda=100"]
    assert rcsl_study.design_controls(names) == [
        ("block output, lambda=1", "without RCSL"),
        ("FT-L3, FFN hidden, lambda=100", "FT-L3 without RCSL"),
    ]


def _design_tables():
    means = pd.DataFrame(
        {
            ("standard", "Rel"): [1.0, 1.0, 0.9],
            ("standard", "T-Loc"): [1.0, 0.96, 1.0],
            ("standard", "I-Loc"): [1.0, 1.0, 1.0],
        },
        index=["a", "b", "c"],
    )
    paired = pd.DataFrame(
        {
            "comparison": ["a - none", "b - none", "c - none", "a - none"],
            "tier": ["hard", "hard", "hard", "standard"],
            "metric": ["Unit", "Unit", "Unit", "Unit"],
            "mean_diff": [0.01, 0.2, 0.3, 0.5],
            "ci_low": [-0.01, 0.1, 0.2, 0.4],
            "ci_high": [0.03, 0.3, 0.4, 0.6],
        }
    )
    return means, paired


def test_the_selection_rule_keeps_only_forms_that_keep_reliability_and_locality():
    means, paired = _design_tables()
    gain = rcsl_study.selection_gains(means, paired)
    assert list(gain.index) == ["a - none"]  # b costs T-Loc, c costs Rel; the standard tier's row is not a candidate
    loose = rcsl_study.selection_gains(means, paired, min_rel=0.0, min_loc=0.0)
    assert list(loose.index) == ["c - none", "b - none", "a - none"]  # best first


def test_design_study_holds_its_rows_pairs_and_means():
    rows = pd.DataFrame(
        {
            "method": ["x", "x", "y", "y"],
            "tier": "standard",
            "metric": "Rel",
            "seed": 0,
            "case": ["e1", "e2", "e1", "e2"],
            "value": [1.0, 0.0, 1.0, 1.0],
        }
    )
    study = rcsl_study.DesignStudy({"x": None, "y": None}, rows, [("y", "x")], pd.DataFrame())
    assert study.n_edits == 2
    assert study.means.loc["x", ("standard", "Rel")] == 0.5 and study.means.loc["y", ("standard", "Rel")] == 1.0


@pytest.fixture(scope="module")
def real_case():
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    config = HarnessConfig(
        n_edits=1, n_support=2, n_locality=2, unit_text=2, unit_image=2, unit_both=2, hard_strength=0
    )
    return model, encoder, build_cases(model, encoder, World(), config, seed=0)


def test_spectrum_study_on_a_real_edit_restores_the_model(real_case):
    model, encoder, cases = real_case
    before = weights(model)
    editors = {"unedited": None, "Patch": Patch()}
    tails, spectra = rcsl_study.spectrum_study(model, encoder, cases, editors, Patch().config.layer, k=2, seed=0)
    assert all(torch.equal(before[name], value) for name, value in weights(model).items())
    assert len(tails) == len(cases) * len(editors) * len(rcsl_study.SPECTRUM_ROWS)
    assert set(tails.rows) == set(rcsl_study.SPECTRUM_ROWS)
    assert (tails[tails.rows == "LAR variants"]["K + 1"] == 3).all()  # the anchor and k = 2 variants
    assert tails["tail energy"].between(0, 1).all() and tails["tail energy, centred"].between(0, 1).all()
    for s in spectra.values():
        assert s.sum().item() == pytest.approx(1.0, abs=1e-5)  # shares of the energy, stored in float32
    wide = tails.pivot_table(index="rows", columns="condition", values="tail energy")
    # the Patch edit moves H on its own edit input's variants (by far more than float noise, ~1e-3 here)
    assert abs(wide.loc["LAR variants", "Patch"] - wide.loc["LAR variants", "unedited"]) > 1e-6


def test_the_figures_draw_from_the_study_outputs():
    plots.set_style()
    descent = rcsl_study.point_cloud_descent(_cloud(), n_steps=5, learning_rate=1.0)
    figures = [rcsl_plots.point_clouds(descent, 5, 1.0)]
    values = pd.DataFrame({"edit": [2.0, 1.0, 0.5], "rank": [0.1, 0.05, 0.01]}, index=pd.Index([0, 1, 2], name="step"))
    shares = pd.DataFrame({"edit": [0.9, 0.8, 0.0], "rank": [0.1, 0.2, 1.0]}, index=values.index)
    figures.append(rcsl_plots.edit_walkthrough(values, shares, [0, 2], stop_loss=0.7))
    traces = pd.DataFrame({"term": ["rank", "rank", "edit"], "grad_share": [0.01, 0.2, 0.8], "config": ["a", "b", "a"]})
    figures.append(rcsl_plots.gradient_shares(traces, ["a", "b"]))
    try:
        for fig in figures:
            plots.check_layout(fig)
        assert len(figures[0].axes) == 9 and figures[1].axes[0].get_yscale() == "log"
        assert [t.get_text() for t in figures[2].axes[0].get_yticklabels()] == ["a", "b"]
    finally:
        for fig in figures:
            plt.close(fig)


def test_the_spectrum_and_design_figures_draw_from_tidy_tables():
    plots.set_style()
    conditions, rows = ["unedited", "Patch", "ASAM without RCSL", "ASAM"], list(rcsl_study.SPECTRUM_ROWS)
    spectra = {(case, c, r): torch.tensor([0.9, 0.08, 0.02]) for case in ("e1", "e2") for c in conditions for r in rows}
    tails = pd.DataFrame(
        [
            {"case": case, "condition": c, "rows": r, "tail energy": 0.01 * (i + 1) + 0.001 * j}
            for j, case in enumerate(("e1", "e2"))
            for i, c in enumerate(conditions)
            for r in rows
        ]
    )
    paired = pd.DataFrame(
        [
            {
                "comparison": "f - without RCSL",
                "tier": t,
                "metric": m,
                "mean_diff": d,
                "ci_low": d - 0.01,
                "ci_high": d + 0.01,
            }
            for (t, m, _), d in zip(rcsl_plots.DESIGN_PANELS, (0.02, -0.5, 0.0, 0.01))
        ]
    )
    figures = [
        rcsl_plots.spectrum(spectra, tails, "e1", conditions, rows),
        rcsl_plots.design_forest(paired, [("f", "without RCSL")], n_edits=2),
    ]
    try:
        for fig in figures:
            plots.check_layout(fig)
        assert "e1, LAR variants: spectrum of H (3 rows)" == figures[0].axes[0].get_title()
        assert "mean over 2 edits" in figures[0].axes[2].get_title()
        assert (
            len(figures[1].axes) == len(rcsl_plots.DESIGN_PANELS)
            and "(2 development edits)" in figures[1]._suptitle.get_text()
        )
    finally:
        for fig in figures:
            plt.close(fig)


@pytest.fixture
def undeclared(monkeypatch):
    """Each test starts and ends with no notebook declared (provenance is process-wide)."""
    monkeypatch.setattr(provenance, "_declared", None)


def test_setup_seeds_checks_declares_and_writes_only_when_asked(undeclared, tmp_path):
    namespace = parameter_defaults("05_playground")
    nb = notebook.setup("05_playground", namespace, seed=3, results_folder=tmp_path)
    drawn = torch.rand(3)
    torch.manual_seed(3)
    assert torch.equal(drawn, torch.rand(3))
    assert provenance.declared()["notebook"] == "notebooks/05_playground.ipynb"
    assert (nb.figures, nb.results, nb.save) == (tmp_path / "figures", tmp_path, False)
    table = pd.DataFrame({"a": [1, 2]})
    assert nb.save_table(table, "t") is None and not any(tmp_path.iterdir())
    saving = notebook.setup("05_playground", {**namespace, "save_figures": True}, save=True, results_folder=tmp_path)
    assert saving.save_table(table, "t") == tmp_path / "t.csv" and (tmp_path / "t.json").exists()
    fig, ax = plt.subplots(figsize=(2, 1.5))
    try:
        ax.set(xlabel="x (units)")
        fig.tight_layout()
        saving.show(fig, "f")
    finally:
        plt.close(fig)
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {"f.png", "f.pdf", "f.json"}


def test_setup_names_a_parameter_of_the_wrong_type(undeclared):
    namespace = {**parameter_defaults("05_playground"), "seed": "four"}
    with pytest.raises(ParameterError, match="parameter seed = 'four'"):
        notebook.setup("05_playground", namespace)


def test_default_output_folders_are_the_repository_s():
    assert notebook.output_folders() == (paths.FIGURES, paths.RESULTS)
    assert notebook.output_folders("/data/run") == (paths.Path("/data/run/figures"), paths.Path("/data/run"))
