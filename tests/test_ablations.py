"""Each ablation of notebook 04 changes the term of ASAM's loss it names, and nothing else.

The catalogue is ``asam_lib.study.ablation_editors()``; every editor edits the same request with the same
seed on the tiny model, so at the first step (same installed patch, same variants) the loss terms of an
ablation and of ASAM can be compared one by one.
"""

import pytest

from asam_lib.editing import EditConfig
from asam_lib.study import ablation_editors
from conftest import make_request

STEPS = 3  # Adam's first step is the sign of the gradient: a changed gradient shows from the third step on
TERMS = ["edit", "adversarial", "rank", "locality", "activation", "memory"]  # ASAM's loss terms, and Patch's own


@pytest.fixture(scope="module")
def terms(small_world, tiny_parts, tiny_encoder) -> dict[str, list[dict[str, float]]]:
    """Ablation name -> its loss terms at each of STEPS steps of the same edit."""
    model, _ = tiny_parts
    losses = {}
    for name, editor in ablation_editors().items():
        editor.config = EditConfig(layer=1, steps=STEPS, lr=0.05, stop_loss=0.0)  # the tiny model has two language layers
        handle = editor.edit(model, tiny_encoder, make_request(small_world), seed=0)
        losses[name] = handle.losses
        handle.restore()
    return losses


def _differs_only_in(terms, name, changed):
    """Assert that ablation ``name``'s first-step terms equal ASAM's except those in ``changed``."""
    asam, ablation = terms["ASAM"][0], terms[name][0]
    for term in TERMS:
        if term not in changed and term in asam:
            assert ablation.get(term) == asam[term], f"{name!r} changed ASAM's {term} term ({ablation.get(term)} vs {asam[term]})"


def test_the_catalogue_is_the_one_notebook_04_and_the_readme_describe(terms):
    assert list(terms) == ["ASAM", "without LAR", "without RCSL", "without asymmetry", "RCSL tail_sum", "RCSL nuclear",
                                 "ASAM on FT-L", "RCSL alone", "RCSL alone, lambda_rank=100"]
    assert {"edit", "adversarial", "rank", "locality", "memory"} <= set(terms["ASAM"][0])


def test_without_lar_the_variants_are_random_and_break_the_edit_less(terms):
    asam, ablation = terms["ASAM"][0], terms["without LAR"][0]
    assert ablation["adversarial"] < asam["adversarial"], "random variants of the same norm should have a lower CE than LAR's"
    _differs_only_in(terms, "without LAR", {"adversarial", "rank"})


def test_without_rcsl_drops_the_rank_term_only(terms):
    assert "rank" not in terms["without RCSL"][0]
    _differs_only_in(terms, "without RCSL", {"rank"})


def test_without_asymmetry_keeps_the_rank_value_but_changes_its_gradient(terms):
    _differs_only_in(terms, "without asymmetry", set())  # the stop-gradient does not change the value...
    assert terms["without asymmetry"][2] != terms["ASAM"][2], "...but the anchor's gradient changes the edit"


@pytest.mark.parametrize("name", ["RCSL tail_sum", "RCSL nuclear"])
def test_another_rcsl_objective_changes_the_rank_term_only(terms, name):
    assert terms[name][0]["rank"] != terms["ASAM"][0]["rank"]
    _differs_only_in(terms, name, {"rank"})


def test_asam_on_ftl_trains_ftl_instead_of_patchs_neurons(terms):
    assert "memory" not in terms["ASAM on FT-L"][0] and "activation" not in terms["ASAM on FT-L"][0], "Patch's own terms remain"
    assert {"edit", "adversarial", "rank", "locality"} <= set(terms["ASAM on FT-L"][0])


def test_rcsl_alone_drops_the_variants_cross_entropy_and_lambda_100_scales_the_rank_term(terms):
    alone, strong = terms["RCSL alone"][0], terms["RCSL alone, lambda_rank=100"][0]
    assert alone["adversarial"] == 0 and strong["adversarial"] == 0
    _differs_only_in(terms, "RCSL alone", {"adversarial"})
    assert strong["rank"] == pytest.approx(100 * alone["rank"], rel=1e-6)
