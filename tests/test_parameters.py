"""Notebook parameters: values of the right type pass, a papermill string where a list belongs is named."""

import pytest

from asam_lib.parameters import ParameterError, check_types, matches

EXPECTED = {"quick": bool, "seeds": list[int], "n_edits": int, "eps": float, "data": dict[str, str], "model_path": str,
            "pair": tuple[int, ...], "layer": int | None}
GOOD = {"quick": True, "seeds": [0, 1], "n_edits": 4, "eps": 1, "data": {"vqa": "a.json"}, "model_path": "", "pair": (1, 2), "layer": None}


def test_values_of_the_expected_types_pass():
    check_types(GOOD, EXPECTED)
    check_types({**GOOD, "eps": 0.5, "layer": 3, "seeds": []}, EXPECTED)


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("seeds", "[7]", r"parameter seeds = '\[7\]' \(str\) should be list\[int\] \(papermill's -p passes text; .* -y 'seeds: \[7\]'\)"),
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
    assert matches((1, "a"), tuple[int, str]) and not matches((1, 2), tuple[int, str]) and not matches([1, "a"], tuple[int, str])
