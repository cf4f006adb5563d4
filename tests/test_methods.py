"""The method registry: one entry per method, read by the study, the command line, the playground, the plots
and the README's tables; a new editor is its module plus one entry."""

import pytest

from asam_lib.data.pretrain import base_model
from asam_lib.data.world import World
from asam_lib.editors import methods
from asam_lib.editors.editing import EditConfig, Editor, Installed, snapshot
from asam_lib.editors.methods import Method, UnknownMethod
from asam_lib.evaluation.harness import (
    HarnessConfig,
    build_cases,
    run_single,
    save_table,
)
from asam_lib.evaluation.summaries import primary_rows, summary_over_edits
from asam_lib.mllm.architectures import edit_layer_mlp
from asam_lib.mllm.prompting import PromptEncoder
from tools.readme_tables import main_table


class UpProjection(Editor):
    """A toy editor, written as a new contributor would: fine-tune the FFN's up projection."""

    name = "Toy"

    def install(self, model, context):
        weight = edit_layer_mlp(model, self.config.layer).up_proj.weight
        undo, originals = snapshot(model, [weight])
        weight.requires_grad_(True)
        return Installed([weight], undo, originals)


TOY = Method("Toy", UpProjection, "#000000")


def test_the_registry_lists_the_methods_in_table_order_with_their_roles_and_colours():
    assert methods.names() == ["FT-L", "LoRA", "Patch", "GRACE", "ASAM"]
    assert methods.names("baseline") == ["FT-L", "LoRA", "Patch"] and methods.names("method") == ["ASAM"]
    assert methods.names("lifelong") == ["GRACE"]  # notebooks 01 and 02 study the intrinsic baselines only
    colours = methods.colours()
    assert set(colours) == {"base", *methods.names()} and len(set(colours.values())) == len(colours)
    assert [type(e).name for e in methods.editors().values()] == methods.names()


def test_an_entry_builds_its_editor_with_a_given_config():
    config = EditConfig(layer=1, steps=3)
    for name in methods.names():
        editor = methods.method(name).editor(config)
        assert editor.config == config and type(editor).name == name


def test_unknown_and_duplicate_methods_are_refused_with_the_choices():
    with pytest.raises(UnknownMethod, match="unknown method 'ROME'; choose one of FT-L, LoRA, Patch, GRACE, ASAM"):
        methods.method("ROME")
    with pytest.raises(ValueError, match="already registered"):
        methods.register(Method("Patch", UpProjection, "#000000"))
    with pytest.raises(ValueError, match="role 'oracle'"):
        Method("Toy", UpProjection, "#000000", role="oracle")


def test_a_registered_toy_editor_runs_through_the_harness_and_the_table_writer(tmp_path):
    model, processor = base_model()
    encoder = PromptEncoder(processor)
    small = HarnessConfig(n_edits=2, n_support=2, n_locality=2, unit_text=2, unit_image=2, unit_both=2)
    cases = build_cases(model, encoder, World(), small, seed=0)
    with methods.registered(TOY):
        assert methods.names()[-1] == "Toy" and methods.colours()["Toy"] == "#000000"
        rows = run_single(model, encoder, {"Toy": methods.method("Toy").editor()}, cases, seed=0)
        assert set(rows.method) == {"Toy"} and rows[rows.metric == "Rel"].value.mean() == 1.0
        summary = summary_over_edits(primary_rows(rows), by=("task", "tier", "method", "metric"))
        save_table(summary, "04_main_summary", tmp_path)
        table = main_table(tmp_path)
    assert "| Toy | 1.000 [1.000, 1.000] |" in table
    assert "Toy" not in methods.names(), "registered() removes the entry again"
