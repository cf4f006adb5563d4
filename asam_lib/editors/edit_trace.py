"""One edit, step by step: each loss term's value and the share of the gradient it contributes.

:func:`trace_edit` runs an editor once with :meth:`asam_lib.editors.editing.Editor.edit`'s ``trace_gradients`` and
returns a tidy table, one row per (step, term): the term's value (as it enters the loss, weights included),
the norm of its own gradient on the trained parameters, and its share of the sum of those norms. For ASAM it
also marks the steps at which LAR refreshed the variants, and the step at which the loop stopped. Notebook 03
reads it to show what RCSL's term weighs against the cross-entropy terms (the design study) and to walk through
one edit.
"""

from __future__ import annotations

import pandas as pd

from asam_lib.editors.editing import Editor, EditRequest
from asam_lib.mllm.prompting import PromptEncoder


def trace_edit(model, encoder: PromptEncoder, editor: Editor, request: EditRequest, seed: int = 0) -> pd.DataFrame:
    """The edit of ``request`` by ``editor`` (rolled back afterwards), per step and term: columns ``step``,
    ``term``, ``value``, ``grad_norm``, ``grad_share`` (of the summed norms of that step), ``refreshed`` (LAR
    recomputed the variants before this step; ASAM only) and ``last`` (the step the loop stopped after)."""
    handle = editor.edit(model, encoder, request, seed=seed, trace_gradients=True)
    handle.restore()
    refresh = getattr(getattr(editor, "lar", None), "refresh", None)
    rows = []
    for step, record in enumerate(handle.losses):
        terms = [k for k in record if not k.startswith("grad ")]
        total = sum(record[f"grad {k}"] for k in terms)
        for term in terms:
            rows.append(
                {
                    "step": step,
                    "term": term,
                    "value": record[term],
                    "grad_norm": record[f"grad {term}"],
                    "grad_share": record[f"grad {term}"] / total if total > 0 else float("nan"),
                    "refreshed": refresh is not None and step % refresh == 0,
                    "last": step == len(handle.losses) - 1,
                }
            )
    return pd.DataFrame(rows)
