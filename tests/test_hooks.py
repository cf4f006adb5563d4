import pytest
import torch

from asam_lib.hooks import module_input


def test_module_input_returns_what_the_module_received():
    layer = torch.nn.Linear(3, 2)
    x = torch.randn(4, 3)
    assert torch.equal(module_input(layer, lambda: layer(x)), x)


def test_the_hook_is_removed_when_the_forward_pass_raises():
    layer = torch.nn.Linear(3, 2)

    def broken():
        layer(torch.randn(1, 3))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        module_input(layer, broken)
    assert not layer._forward_pre_hooks
