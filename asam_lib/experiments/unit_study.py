"""Notebook 01's measurement of the base model on knowledge units: does it know each slice of a unit?

:func:`slice_accuracy` scores every member of each request's unit on its *true* answer (exact match), one row per
(request, slice): the anchor (the edit input), other phrasings on its image (``text``), its entity in other
held-out images (``image``) and both changed (``both``). These are the units an edit must then move together.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from asam_lib.common.progress import tqdm
from asam_lib.data.records import EditRecord
from asam_lib.data.units import KINDS, member_items, unit_from_world
from asam_lib.data.world import World
from asam_lib.mllm.prompting import PromptEncoder, score_items


def slice_accuracy(model, encoder: PromptEncoder, world: World, records: Sequence[EditRecord]) -> pd.DataFrame:
    """Columns ``request``, ``slice`` (a kind of :data:`asam_lib.data.units.KINDS`) and ``exact``: the share of
    that slice of the request's unit the base model answers with the true answer."""
    rows = []
    for record in tqdm(records, desc="units", leave=False):
        unit = unit_from_world(world, record)
        scores = score_items(model, encoder, member_items(unit.members, unit.old_answer))
        for member, score in zip(unit.members, scores):
            rows.append({"request": record.index, "slice": member.kind, "exact": score["exact"]})
    return pd.DataFrame(rows).groupby(["request", "slice"], as_index=False)["exact"].mean()


def slice_summary(per_unit: pd.DataFrame) -> pd.DataFrame:
    """Mean and count over requests per slice, in the order of :data:`asam_lib.data.units.KINDS`."""
    return per_unit.groupby("slice")["exact"].agg(["mean", "count"]).reindex(KINDS)
