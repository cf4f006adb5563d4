"""Hyper-parameter files in EasyEdit's layout and the dotted overrides behind them (``methods.build``, ``--set``):
every shipped file loads, the embedded model's files are exactly the editors' defaults, and a bad key, path or
value stops with one line naming the file, the path and the value."""

from dataclasses import replace

import pytest

from asam_lib.common import paths
from asam_lib.editors import methods
from asam_lib.editors.asam import ASAMSettings
from asam_lib.editors.editing import FTL
from asam_lib.editors.hparams import (
    HParamsError,
    configured_editor,
    hparams_from_dict,
    load_hparams,
    method_overrides,
    parse_assignment,
)
from asam_lib.editors.lar import LARConfig
from asam_lib.editors.overrides import setting, with_overrides
from asam_lib.evaluation.harness import editor_config

FILES = sorted((paths.REPO_ROOT / "hparams").glob("*/*.yaml"))


def test_there_is_a_file_per_method_for_the_embedded_model_and_two_real_checkpoints():
    names = {(p.parent.name, p.stem) for p in FILES}
    for method in methods.names():
        assert {(method, "embedded"), (method, "llava-1.5-7b"), (method, "qwen2-vl-7b")} <= names


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_file_builds_its_method_s_editor_at_its_edit_layer(path):
    hp = load_hparams(path)
    editor = configured_editor(hp)
    assert hp.alg_name == path.parent.name and editor.name == methods.method(hp.alg_name).editor().name
    assert editor.config.layer == load_hparams(path).raw["layers"][0]


@pytest.mark.parametrize("method", methods.names())
def test_the_embedded_model_s_file_is_the_editor_s_defaults(method):
    """The files for the embedded model hold the defaults that reproduce the committed figures: the editor they
    build has the same config hash as the registry's."""
    editor = configured_editor(load_hparams(paths.REPO_ROOT / "hparams" / method / "embedded.yaml"))
    assert editor_config(editor) == editor_config(methods.method(method).editor())


def test_asam_s_own_keys_reach_lar_rcsl_settings_and_its_patch():
    hp = hparams_from_dict(
        {
            "alg_name": "ASAM",
            "layers": [1],
            "lr": "5e-2",  # YAML 1.1 reads this as text, as EasyEdit's files often write it
            "num_steps": 7,
            "lar_eps": 0.2,
            "lar_k": 3,
            "pgd_steps": 2,
            "lambda_adv": 0.5,
            "lambda_rank": 0.0,
            "n_neurons": 2,
            "rcsl.rank": 2,
        }
    )
    editor = configured_editor(hp)
    assert (editor.config.layer, editor.config.lr, editor.config.steps) == (1, 0.05, 7)
    assert editor.base.config == editor.config  # the config reaches the patch ASAM trains
    assert (editor.lar.eps, editor.lar.k, editor.lar.steps) == (0.2, 3, 2)
    assert (editor.settings.lambda_adv, editor.settings.lambda_rank) == (0.5, 0.0)
    assert editor.base.settings.n_neurons == 2 and editor.rcsl.rank == 2
    default = methods.method("ASAM").editor()
    assert default.lar.k == 4 and default.config.layer == 2  # the registry's editor is left as it was


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({"alg_name": "ROME"}, "alg_name 'ROME' is not a method here"),
        ({"layers": [1]}, "key 'alg_name' is missing"),
        ({"alg_name": "ASAM", "lar_epsilon": 0.1}, "unknown key 'lar_epsilon' for ASAM"),
        ({"alg_name": "ASAM", "layers": [1, 2]}, "key 'layers' = [1, 2]"),
        ({"alg_name": "FT-L", "batch_size": 4}, "batch_size 4"),
        ({"alg_name": "ASAM", "lar_k": 2.5}, "setting lar.k = 2.5: expected an integer"),
        ({"alg_name": "ASAM", "lar_k": 0}, "LARConfig needs k >= 1"),
        ({"alg_name": "FT-L", "lr": "fast"}, "setting config.lr = 'fast': expected a number"),
        ({"alg_name": "FT-L", "lar.eps": 0.1}, "unknown setting lar"),
        ({"alg_name": "ASAM", "layers": [2], "lar.block": 3}, "must be below the edit layer"),
    ],
)
def test_a_bad_file_names_itself_and_the_key(raw, expected):
    with pytest.raises(HParamsError) as err:
        configured_editor(hparams_from_dict(raw, "my.yaml"))
    message = str(err.value)
    assert message.startswith("my.yaml: ") and expected in message and "\n" not in message


def test_a_missing_or_broken_file_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no hyper-parameter file"):
        load_hparams(tmp_path / "nothing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("alg_name: [ASAM\n")
    with pytest.raises(HParamsError, match=r"broken.yaml: not valid YAML"):
        load_hparams(broken)


def test_with_overrides_on_a_frozen_config_checks_its_fields():
    assert with_overrides(LARConfig(), {"eps": 0.1, "k": 2}) == LARConfig(eps=0.1, k=2)
    with pytest.raises(HParamsError, match="unknown setting radius: LARConfig has k, eps"):
        with_overrides(LARConfig(), {"radius": 0.1})


def test_build_changes_only_the_named_settings_and_leaves_the_registry_s_editor_alone():
    editor = methods.build("ASAM", {"lar.eps": 0.1, "settings.lambda_rank": 10})
    default = methods.build("ASAM")
    assert (editor.lar.eps, editor.settings.lambda_rank) == (0.1, 10.0)
    assert editor.lar == replace(default.lar, eps=0.1) and editor.rcsl == default.rcsl
    assert editor.settings == replace(default.settings, lambda_rank=10.0) and editor.config == default.config
    assert editor_config(methods.build("Patch", {})) == editor_config(methods.method("Patch").editor())
    assert setting(methods.build("ASAM"), "lar.eps") == LARConfig.eps  # the registry's editor is left as it was


def test_build_puts_asam_on_another_base_with_that_base_s_settings_and_config():
    editor = methods.build("ASAM", {"base": "FT-L", "base.modules": ["up_proj", "down_proj"], "lar.k": 2})
    assert isinstance(editor.base, FTL) and editor.base.modules == ("up_proj", "down_proj")
    assert editor.config == FTL().config and editor.lar.k == 2  # ASAM(FTL(...)) takes the base's config
    with pytest.raises(HParamsError, match="unknown setting base = 'FT-L': Patch does not train a base editor"):
        methods.build("Patch", {"base": "FT-L"})
    with pytest.raises(HParamsError, match="setting base = 'ROME': choose one of FT-L"):
        methods.build("ASAM", {"base": "ROME"})


@pytest.mark.parametrize(
    "name, overrides, expected",
    [
        ("ASAM", {"lar.epz": 0.1}, "unknown setting lar.epz: LARConfig has k, eps"),
        ("ASAM", {"settings.lambda_rank": -1}, "settings.lambda_rank = -1.0: ASAMSettings.lambda_rank = -1.0; choose"),
        ("ASAM", {"settings.lambda_adv": -0.5}, "settings.lambda_adv = -0.5: ASAMSettings.lambda_adv = -0.5"),
        ("ASAM", {"lar.k": 0}, "lar.k = 0: LARConfig needs k >= 1"),
        ("ASAM", {"settings.variants": "none"}, "settings.variants = 'none': ASAMSettings.variants = 'none'"),
        ("ASAM", {"config.layer": 1, "lar.block": 1}, "lar.block = 1: LARConfig.block = 1 must be below"),
        ("FT-L", {"lar.eps": 0.1}, "unknown setting lar: FTL has no 'lar'"),
    ],
)
def test_an_unknown_or_refused_setting_is_one_line_naming_the_path_and_the_value(name, overrides, expected):
    """``lambda_rank >= 0`` is checked by ASAMSettings itself, so ``lambda_rank=-1`` in code is refused as it is
    from the playground's slider, not silently run as "no RCSL"."""
    with pytest.raises(HParamsError) as err:
        methods.build(name, overrides)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ValueError, match="lambda_rank = -1"):
        ASAMSettings(lambda_rank=-1)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("lar.eps=0.1", ("lar.eps", 0.1)),
        ("config.lr=5e-3", ("config.lr", 0.005)),  # YAML 1.1 reads 5e-3 as text; it is recorded as a number
        ("settings.variants=noise", ("settings.variants", "noise")),
        ("rcsl.asymmetric=false", ("rcsl.asymmetric", False)),
        ("base.modules=[up_proj, down_proj]", ("base.modules", ["up_proj", "down_proj"])),
    ],
)
def test_a_set_option_is_a_dotted_path_and_a_yaml_value(text, expected):
    assert parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["lar.eps", "=0.1", "lar..eps=1", "lar.eps=[0.1"])
def test_a_malformed_set_option_is_one_line_naming_it(text):
    with pytest.raises(HParamsError, match=r"^--set "):
        parse_assignment(text)


def test_set_options_reach_every_method_that_has_the_setting_after_the_file():
    hp = hparams_from_dict({"alg_name": "ASAM", "lar_eps": 0.2, "lr": 0.02}, "my.yaml")
    chosen = ["FT-L", "Patch", "ASAM"]
    overrides = method_overrides(chosen, hp, ["lar.eps=0.1", "settings.lambda_rank=10", "config.steps=5"])
    assert overrides == {
        "ASAM": {"config.lr": 0.02, "lar.eps": 0.1, "settings.lambda_rank": 10, "config.steps": 5},
        "FT-L": {"config.steps": 5},
        "Patch": {"config.steps": 5},
    }
    assert method_overrides(chosen) == {}


@pytest.mark.parametrize(
    "assignments, expected",
    [
        (["lar.eps=0.1"], "--set lar.eps=0.1: unknown setting lar.eps: none of FT-L, Patch has it"),
        (["lar.epz=0.1"], "--set lar.epz=0.1: ASAM: unknown setting lar.epz: LARConfig has k, eps, steps"),
        (["settings.lambda_rank=-1"], "--set: ASAM: settings.lambda_rank = -1.0"),
        (["lar.eps=wide"], "--set: ASAM: setting lar.eps = 'wide': expected a number"),
    ],
)
def test_a_set_option_no_method_has_or_one_refuses_is_one_line(assignments, expected):
    chosen = ["FT-L", "Patch"] if assignments == ["lar.eps=0.1"] else ["FT-L", "ASAM"]
    with pytest.raises(HParamsError) as err:
        method_overrides(chosen, None, assignments)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value), str(err.value)
