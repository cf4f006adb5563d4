import pytest
import torch

from asam_lib.mllm.hooks import counted_calls, module_input


def test_module_input_returns_what_the_module_received():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(module_input(layer, lambda: layer(x)), x)


def test_the_forward_pass_stops_at_the_module():
    first, second = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)
    calls = []
    second.register_forward_hook(lambda *args: calls.append("second"))
    module_input(second, lambda: second(first(torch.randn(1, 3))) and calls.append("after"))
    first_calls = []
    first.register_forward_hook(lambda *args: first_calls.append("first"))
    module_input(first, lambda: second(first(torch.randn(1, 3))))
    assert calls == [] and first_calls == []


def test_the_hook_is_removed_when_the_forward_pass_raises():
    layer = torch.nn.Linear(3, 2)

    def broken():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        module_input(layer, broken)
    assert not layer._forward_pre_hooks


def test_a_module_that_is_never_called_is_an_error():
    layer = torch.nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="Linear was not called"):
        module_input(layer, lambda: None)
    assert not layer._forward_pre_hooks


def test_counted_calls_count_completed_passes_only_and_the_hook_goes_away():
    first, second = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)
    x = torch.randn(5, 3)
    with counted_calls(second) as count:
        second(first(x))  # a batch of 5: one call
        second(first(x[:1]))
        module_input(second, lambda: second(first(x)))  # stopped before the module runs: not counted
    assert count.calls == 2 and not second._forward_hooks
    with pytest.raises(RuntimeError), counted_calls(second) as count:
        second(x)
        raise RuntimeError("boom")
    assert count.calls == 1 and not second._forward_hooks
