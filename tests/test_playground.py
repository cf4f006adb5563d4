"""The playground behind notebook 05: choices, checked requests, one edit measured and rolled back, figures,
and the widgets calling the same function (on the shipped base model, with small units)."""

from dataclasses import replace

import matplotlib.pyplot as plt
import pytest
import torch

from asam_lib.data.benchmark import exported_benchmark
from asam_lib.data.pretrain import base_model
from asam_lib.data.records import load_records
from asam_lib.data.world import RELATIONS, World
from asam_lib.editors import methods
from asam_lib.editors.asam import ASAM
from asam_lib.editors.patch import Patch
from asam_lib.evaluation.harness import HarnessConfig
from asam_lib.figures import playground
from asam_lib.figures.playground import Choice, Playground, PlaygroundError, Session
from asam_lib.mllm.prompting import PromptEncoder

SMALL = HarnessConfig(n_support=2, n_locality=2, n_memory=8, unit_text=2, unit_image=2, unit_both=2)
FAST = dict(entity=2, relation="home", new_answer="forest", k=2)


@pytest.fixture(scope="module")
def session() -> Session:
    model, processor = base_model()
    world = World()
    return Session(world, model, PromptEncoder(processor), load_records(exported_benchmark(world, "vqa")), SMALL)


def test_the_choices_list_entities_relations_and_every_other_answer(session):
    world = session.world
    entities = playground.entity_choices(world)
    assert [i for _, i in entities] == list(range(len(world.entities)))
    assert entities[2][0] == f"2: {world.entities[2].caption}"
    assert playground.relation_choices() == list(RELATIONS)
    answers = playground.answer_choices(world, 2, "home")
    assert world.entities[2].facts["home"] not in answers
    assert set(answers) | {world.entities[2].facts["home"]} == set(world.candidate_answers("home"))


def test_a_choice_gets_its_default_answer_and_bad_input_is_named(session):
    world = session.world
    old = world.entities[2].facts["home"]
    assert playground.resolve(world, Choice(entity=2)).new_answer == playground.answer_choices(world, 2, "home")[0]
    bad = {
        "entity 99 is not an image entity of this world (choose 0-47)": Choice(entity=99),
        "entity -1 is not": Choice(entity=-1),
        "relation 'colour' is unknown; choose one of home, food, maker, friend": Choice(relation="colour"),
        f"new answer '{old}' is what entity 2 already has for home": Choice(entity=2, new_answer=old),
        "new answer 'apples' is not an answer of relation 'home'": Choice(entity=2, new_answer="apples"),
        "method 'ROME' is unknown; choose one of FT-L, LoRA, Patch, GRACE, ASAM": Choice(method="ROME"),
        "settings.lambda_rank = -1.0: ASAMSettings.lambda_rank = -1.0; choose a weight >= 0": Choice(lambda_rank=-1.0),
        "lar.k = 0: LARConfig needs k >= 1": Choice(k=0),
        "lar.eps = -0.1, lar.k = 4: LARConfig needs": Choice(
            method="Patch", eps=-0.1
        ),  # the spectrum's variants use it
    }
    for message, choice in bad.items():
        with pytest.raises(PlaygroundError) as err:
            playground.resolve(world, choice)
        assert message in str(err.value)


def test_the_edit_case_is_the_chosen_fact_with_the_new_answer(session):
    case = playground.edit_case(session, 2, "home", "forest")
    record = case.record
    assert (record.extra["entity"], record.extra["relation"], record.alt) == (2, "home", "forest")
    assert case.request.target == "forest" and case.request.question == record.src == case.unit.anchor.question
    assert case.unit.old_answer == session.world.entities[2].facts["home"] == record.pred
    assert [len(case.unit.select(k)) for k in ("anchor", "text", "image", "both")] == [1, 2, 2, 2]
    assert len(case.request.locality_support) == len(case.locality) == 4 and len(case.request.memory) == 16


def test_the_knobs_are_asam_s_dotted_settings_with_its_defaults():
    default = methods.build("ASAM")
    assert playground.knobs({}) == {"eps": default.lar.eps, "k": default.lar.k, "lambda_rank": 1.0}
    assert Choice(**playground.knobs({})) == Choice()  # the widget's defaults are ASAM's
    assert playground.knobs({"lar.eps": 0.1, "settings.lambda_rank": 10}) == {"eps": 0.1, "k": 4, "lambda_rank": 10.0}
    assert playground.knob_overrides(Choice(eps=0.2)) == {"lar.eps": 0.2, "lar.k": 4, "settings.lambda_rank": 1.0}
    with pytest.raises(PlaygroundError, match="setting lar.mu is not a knob of the playground; give lar.eps"):
        playground.knobs({"lar.mu": 2.0})
    with pytest.raises(PlaygroundError, match="settings.lambda_rank = -1.0"):
        playground.knobs({"settings.lambda_rank": -1})


def test_the_editor_takes_the_knobs():
    asam = playground.make_editor("ASAM", eps=0.5, k=6, lambda_rank=10.0)
    assert isinstance(asam, ASAM) and (asam.lar.eps, asam.lar.k, asam.settings.lambda_rank) == (0.5, 6, 10.0)
    assert isinstance(playground.make_editor("Patch"), Patch)
    assert [type(playground.make_editor(m)).name for m in methods.names()] == list(methods.names())


@pytest.mark.parametrize("method", methods.names())
def test_an_edit_is_measured_and_the_model_is_restored_bit_exactly(session, method):
    before = {name: p.detach().clone() for name, p in session.model.named_parameters()}
    result = playground.run_edit(session, Choice(**FAST, method=method))
    after = dict(session.model.named_parameters())
    assert set(after) == set(before) and all(torch.equal(after[n], before[n]) for n in before)
    assert result.restored and result.steps >= 1
    assert list(result.metrics.metric) == list(playground.METRICS)
    assert result.metrics[["before", "after"]].stack().between(0, 1).all()
    assert result.metrics.set_index("metric").loc["Rel", "after"] == 1.0
    hard = result.hard_metrics.set_index("metric")
    assert list(hard.index) == list(playground.HARD_METRICS)
    assert (hard.before.dropna() == 0).all() and hard.after.dropna().between(0, 1).all()  # known members: old answer
    assert len(result.members) == 7 and result.members.right_after.iloc[0]
    totals = result.spectra.groupby(["rows", "state"]).share.sum()
    assert len(totals) == 4 and ((totals - 1).abs() < 1e-5).all()
    assert result.spectra.query("rows == 'LAR variants'").i.max() == FAST["k"] + 1
    assert result.tail_energy.stack().between(0, 1).all()
    text = repr(result)
    assert f"{method} edit of" in text and "'meadow' -> 'forest'" in text and "restored bit-exactly: True" in text
    assert "hard tier (" in text


def test_without_a_hard_tier_the_playground_shows_the_standard_one(session):
    plain = Session(session.world, session.model, session.encoder, session.records, replace(SMALL, hard_strength=0.0))
    result = playground.run_edit(plain, Choice(**FAST, method="Patch"))
    assert result.hard_metrics is None and "hard tier" not in repr(result)
    fig = playground.metrics_figure(result)
    assert len(fig.axes) == 1
    plt.close(fig)


def test_the_figures_show_the_edit(session):
    result = playground.run_edit(session, Choice(**FAST, method="Patch"))
    open_before = plt.get_fignums()
    figures = result.figures()
    assert tuple(figures) == playground.FIGURES
    assert plt.get_fignums() == open_before  # outside pyplot: no pyplot hook in another thread can draw them
    shown = playground.shown_members(result)
    assert shown == list(range(7))  # the anchor and the (two) members of each kind
    assert len(figures["members"].axes) == 2 * len(shown)
    assert len(figures["spectrum"].axes) == len(playground.ROWS)
    assert [t.get_text() for t in figures["metrics"].axes[0].get_xticklabels()] == list(playground.METRICS)
    assert [t.get_text() for t in figures["metrics"].axes[1].get_xticklabels()] == list(playground.HARD_METRICS)


def test_the_widgets_call_the_same_function(session, capsys):
    widgets = Playground(session, Choice(**FAST, method="Patch"))
    assert widgets.choice() == Choice(**FAST, method="Patch")
    greyed = lambda: {name for name, slider in widgets.sliders.items() if slider.disabled}  # noqa: E731
    assert greyed() == {"lambda_rank"} and set(playground.active_sliders("Patch")) == {"eps", "K"}
    widgets.method.value = "ASAM"
    assert greyed() == set() and playground.active_sliders("ASAM") == playground.SLIDERS
    widgets.relation.value = "food"
    assert widgets.new_answer.options == tuple(playground.answer_choices(session.world, 2, "food"))
    widgets.relation.value, widgets.new_answer.value, widgets.method.value = "home", "forest", "Patch"
    widgets.button.click()
    assert widgets.result is not None and widgets.result.choice == widgets.choice()
    direct = playground.run_edit(session, widgets.choice())
    assert widgets.result.metrics.equals(direct.metrics) and widgets.result.members.equals(direct.members)
    widgets.choice = lambda: Choice(entity=99)
    widgets.button.click()
    assert "cannot edit: entity 99 is not an image entity" in capsys.readouterr().out
    assert not widgets.button.disabled and widgets.button.description == "Edit"
    plt.close("all")
