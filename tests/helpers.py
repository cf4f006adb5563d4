"""Helpers shared by the tests: an edit request on the small world, and bit-exact comparisons of weights."""

from __future__ import annotations

from pathlib import Path

import nbformat
import torch

from asam_lib.editing import EditRequest


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
