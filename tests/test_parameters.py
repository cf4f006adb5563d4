"""Notebook parameters: values of the right type pass, a papermill string where a list belongs is named."""

import pytest

from asam_lib.common.parameters import ParameterError, check_types, matches

EXPECTED = {
    "quick": bool,
    "seeds": list[int],
    "n_edits": int,
    "eps": float,
    "data": dict[str, str],
    "model_path": str,
    "pair": tuple[int, ...],
    "layer": int | None,
}
GOOD = {
    "quick": True,
    "seeds": [0, 1],
    "n_edits": 4,
    "eps": 1,
    "data": {"vqa": "a.json"},
    "model_path": "",
    "pair": (1, 2),
    "layer": None,
}


def test_values_of_the_expected_types_pass():
    check_types(GOOD, EXPECTED)
    check_types({**GOOD, "eps": 0.5, "layer": 3, "seeds": []}, EXPECTED)


@pytest.mark.parametrize(
    "name, value, message",
    [
        (
            "seeds",
            "[7]",
            r"parameter seeds = '\[7\]' \(str\) should be list\[int\] \(papermill's -p passes text; .* -y 'seeds: "
            r"\[7\]'\)",
        ),
        ("seeds", [0, "1"], r"parameter seeds = \[0, '1'\] \(list\) should be list\[int\]"),
        ("n_edits", True, "parameter n_edits = True \\(bool\\) should be int"),
        ("quick", "False", "parameter quick = 'False' \\(str\\) should be bool"),
        ("data", {"vqa": 3}, "parameter data = .* \\(dict\\) should be dict\\[str, str\\]"),
        ("layer", 1.5, "parameter layer = 1.5 \\(float\\) should be int \\| None"),
    ],
)
def test_a_value_of_another_type_names_the_parameter_and_the_fix(name, value, message):
    with pytest.raises(ParameterError, match=message):
        check_types({**GOOD, name: value}, EXPECTED)


def test_a_missing_parameter_is_named():
    with pytest.raises(ParameterError, match="parameter seeds is not set"):
        check_types({k: v for k, v in GOOD.items() if k != "seeds"}, EXPECTED)


def test_tuples_of_fixed_length_are_checked_element_by_element():
    assert (
        matches((1, "a"), tuple[int, str])
        and not matches((1, 2), tuple[int, str])
        and not matches([1, "a"], tuple[int, str])
    )


def test_each_notebook_checks_its_parameters_against_the_types_of_their_defaults():
    from asam_lib.common import paths
    from asam_lib.common.parameters import check_parameters, declared_type, parameter_defaults

    assert (
        declared_type([0]) == list[int]
        and declared_type({}) is dict
        and declared_type({"vqa": "x.json"}) == dict[str, str]
    )
    for notebook in sorted(p.stem for p in paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        defaults = parameter_defaults(notebook)
        check_parameters(notebook, defaults)
        if "seeds" in defaults:  # papermill's -p seeds "[7]" arrives as a string
            with pytest.raises(
                ParameterError, match=r"parameter seeds = '\[7\]' \(str\) should be list\[int\] .*-y 'seeds: \[7\]'"
            ):
                check_parameters(notebook, {**defaults, "seeds": "[7]"})
