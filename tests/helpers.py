"""Helpers shared by the tests: an edit request on the small world, bit-exact comparisons of weights, and the
comparison of a batch's rows with the logits of the items they copy."""

from __future__ import annotations

from pathlib import Path

import nbformat
import torch

from asam_lib.editors.editing import EditRequest


def notebook_file(path: Path, *cells: str | nbformat.NotebookNode) -> Path:
    """Write a notebook with kernel ``python3`` to ``path`` (for the notebook runner's tests): each cell a code
    cell's source or a ready cell."""
    made = [nbformat.v4.new_code_cell(c) if isinstance(c, str) else c for c in cells]
    notebook = nbformat.v4.new_notebook(cells=made)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path.write_text(nbformat.writes(notebook))
    return path


def weights(model) -> dict[str, torch.Tensor]:
    """A copy of every tensor of ``model``'s state."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed_weights(model, before: dict[str, torch.Tensor]) -> list[str]:
    """Names of the tensors of ``model`` that are not bit-identical to ``before`` (or not in both)."""
    now = model.state_dict()
    return sorted(
        k for k in now.keys() | before.keys() if k not in now or k not in before or not torch.equal(now[k], before[k])
    )


# Rows of one batch and a batch of one item go through matrices of other shapes, whose float32 rounding may differ
# by about 1e-6 of the logits' scale. Other positions (Qwen2-VL variants run with 1-D positions instead of their
# anchor's M-RoPE ones, the bug the row tests guard against) moved the tiny Qwen2-VL's logits by 3.5e-3 of their scale.
ROW_TOLERANCE = 1e-4


def rows_match(logits: torch.Tensor, reference: torch.Tensor) -> bool:
    """Every row of ``logits`` (K, L, V) is ``reference`` (1 or K, L, V), up to :data:`ROW_TOLERANCE` of its scale."""
    return logits.shape[1:] == reference.shape[1:] and bool(
        (logits - reference).abs().max() < ROW_TOLERANCE * reference.abs().max()
    )


def make_request(world, target=None, image="default", name="test-request"):
    """An edit request on the small world: entity 0's home moves to another answer."""
    entity, text_entity = world.entities[0], world.text_entities[0]
    question = world.phrasings("home", heldout=False)[0].render()
    new = (
        target if target is not None else next(a for a in world.candidate_answers("home") if a != entity.facts["home"])
    )
    support = [
        (
            world.phrasings("food", heldout=False, text=True)[0].render(f"the {text_entity.name}"),
            text_entity.facts["food"],
            None,
        ),
        (question, world.entities[1].facts["home"], world.image(1, "support", 0)),
    ]
    img = world.image(0, "eval", 0) if image == "default" else image
    return EditRequest(question, new, img, support, name=name)


class ModelState:
    """Everything of a model that a test could leave changed, kept to compare and to put back: its module tree
    (which child, parameter and buffer objects each module holds, so a wrapper such as GRACE's ``Codebook``
    left installed shows), each tensor's values, dtype and ``requires_grad``, training flags and hooks."""

    def __init__(self, model: torch.nn.Module):
        self.modules = {name: (m, dict(m._modules), dict(m._parameters), dict(m._buffers)) for name, m in _tree(model)}
        self.flags = {name: (m.training, _hooks(m)) for name, m in _tree(model)}
        self.tensors = {
            (name, key): (t, t.detach().clone(), t.requires_grad)
            for name, (m, _, params, buffers) in self.modules.items()
            for key, t in [*params.items(), *buffers.items()]
            if t is not None
        }

    def differences(self, model: torch.nn.Module) -> list[str]:
        """What differs from this state now (empty when the model is as it was)."""
        now = dict(_tree(model))
        found = [
            f"module {name or '<root>'} replaced or removed"
            for name, (m, *_) in self.modules.items()
            if now.get(name) is not m
        ]
        found += [f"module {name} added" for name in now.keys() - self.modules.keys()]
        for name, (m, children, params, buffers) in self.modules.items():
            if (dict(m._modules), dict(m._parameters), dict(m._buffers)) != (children, params, buffers):
                found.append(f"children, parameters or buffers of {name or '<root>'} swapped")
            if (m.training, _hook_keys(m)) != (self.flags[name][0], _hook_keys_of(self.flags[name][1])):
                found.append(f"training flag or hooks of {name or '<root>'} changed")
        for (name, key), (t, saved, grad) in self.tensors.items():
            if t.dtype != saved.dtype or not torch.equal(t.detach(), saved) or t.requires_grad != grad:
                found.append(f"tensor {name}.{key} changed (values, dtype or requires_grad)")
        return found

    def restore(self) -> None:
        """Put the model back as it was when this state was taken, bit for bit."""
        for name, (m, children, params, buffers) in self.modules.items():
            m._modules.clear(), m._modules.update(children)
            m._parameters.clear(), m._parameters.update(params)
            m._buffers.clear(), m._buffers.update(buffers)
            m.training, hooks = self.flags[name]
            for kind, saved in hooks.items():
                found = getattr(m, kind)
                for key in [k for k, h in found.items() if k not in saved and not _from_transformers(h)]:
                    del found[key]
                found.update(saved)
        for t, saved, grad in self.tensors.values():
            t.data = saved.clone()
            t.requires_grad_(grad)


def _tree(model: torch.nn.Module):
    return model.named_modules(remove_duplicate=False)


_HOOKS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _hooks(module: torch.nn.Module) -> dict[str, dict]:
    """The module's hooks, less transformers' own output-capturing hooks, which it installs once, on a model's
    first forward pass, and keeps (they are not a test's doing)."""
    return {
        kind: {k: h for k, h in getattr(module, kind).items() if not _from_transformers(h)}
        for kind in _HOOKS
        if hasattr(module, kind)
    }


def _from_transformers(hook) -> bool:
    return (getattr(hook, "__module__", None) or "").startswith("transformers.")


def _hook_keys(module: torch.nn.Module) -> dict[str, list]:
    return _hook_keys_of(_hooks(module))


def _hook_keys_of(hooks: dict[str, dict]) -> dict[str, list]:
    return {kind: list(found) for kind, found in hooks.items()}


def models_in(value, depth: int = 3) -> list[torch.nn.Module]:
    """The ``torch.nn.Module`` objects reachable from a fixture's value: the value itself, its items (tuples, lists,
    dicts), its attributes, and what a getter function keeps in its closure, ``depth`` levels down."""
    if isinstance(value, torch.nn.Module):
        return [value]
    if depth == 0 or isinstance(value, (str, bytes, int, float, torch.Tensor)) or value is None:
        return []
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
    elif callable(value) and getattr(value, "__closure__", None):
        items = [cell.cell_contents for cell in value.__closure__]
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        items = list(vars(value).values())
    else:
        items = []
    return [m for item in items for m in models_in(item, depth - 1)]
