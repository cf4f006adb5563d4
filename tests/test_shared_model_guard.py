"""The guard in conftest.py: a test that leaves a shared model changed fails by name, and the model is put back
so that the tests after it see it as it was."""

from pathlib import Path

pytest_plugins = ["pytester"]

HERE = Path(__file__).parent

SUITE = """
import pytest
import torch


@pytest.fixture(scope="module")
def shared():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())


def test_a_changes_the_weights_then_fails(shared):
    with torch.no_grad():
        shared[0].weight.add_(1.0)
    assert False, "failed on purpose after changing the model"


def test_b_wraps_a_module_and_passes(shared):
    shared[1] = torch.nn.Sequential(shared[1])


def test_c_sees_the_model_as_it_was(shared):
    torch.manual_seed(0)
    fresh = torch.nn.Linear(4, 4)
    assert torch.equal(shared[0].weight, fresh.weight) and isinstance(shared[1], torch.nn.ReLU)


def test_d_changes_and_puts_back(shared):
    saved = shared[0].weight.detach().clone()
    try:
        with torch.no_grad():
            shared[0].weight.mul_(2.0)
    finally:
        with torch.no_grad():
            shared[0].weight.copy_(saved)
"""


def test_a_test_that_leaves_a_shared_model_changed_fails_alone_and_the_model_is_restored(pytester):
    for name in ("conftest.py", "helpers.py", "tiny_models.py"):
        pytester.makepyfile(**{Path(name).stem: (HERE / name).read_text()})
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 3 and outcomes.get("failed") == 1 and outcomes.get("errors") == 2
    out = result.stdout.str()
    assert (
        "test_a_changes_the_weights_then_fails left a shared model changed (now restored): shared: tensor 0.weight"
        in out
    )
    assert "test_b_wraps_a_module_and_passes left a shared model changed (now restored): shared: module 1" in out
    assert "ERROR test_suite.py::test_c" not in out and "FAILED test_suite.py::test_c" not in out
    assert "test_d_changes_and_puts_back left" not in out
