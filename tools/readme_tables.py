"""Write the README's result tables from the tables in ``results/`` and the base model's accuracy table from
``checkpoints/base/asam_meta.json`` (``make figures`` runs this last).

The README marks each generated block with ``<!-- results:NAME -->`` ... ``<!-- /results:NAME -->``; this
module replaces what is between the markers and leaves everything else alone, so no number in those
blocks is typed by hand. The numbers its prose quotes are marked ``<!-- value:KEY -->`` and looked up by
``tools.readme_values``. A table that does not exist yet is reported, not invented.
"""

from __future__ import annotations

import json
import re
import sys
from functools import partial
from pathlib import Path
from typing import Callable

import pandas as pd

from asam_lib.common import paths
from asam_lib.editors import methods
from asam_lib.experiments.ablations import PATCH_AT_FULL_BUDGET, ablation_editors, ablation_pairs
from tools import readme_values, sequential_causes

METRICS = list(methods.METRICS)
BASE_MODEL = paths.CHECKPOINTS / "base"
SLICES = {  # asam_lib.data.pretrain.knowledge_report's slices, in the README's words
    "image_heldout": "held-out images, training phrasings",
    "paraphrase_heldout": "pretraining images, held-out phrasings",
    "both_heldout": "held-out images and held-out phrasings",
    "text": "text-only facts",
    "text_paraphrase": "text-only facts, held-out phrasings",
    "caption_image_heldout": "captions on held-out images",
    "caption_paraphrase_heldout": "captions on pretraining images, held-out phrasings",
}


def markdown(table: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``table`` (index dropped; cells as strings)."""
    header = "| " + " | ".join(map(str, table.columns)) + " |"
    rule = "|" + "---|" * len(table.columns)
    rows = ["| " + " | ".join(map(str, row)) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *rows])


def in_table_order(present, role: str | None = None) -> list[str]:
    """The registered methods (of ``role`` if given) among ``present``, in table order: a method registered
    after the results were written has no row yet (``make figures`` adds it)."""
    return [m for m in methods.names(role) if m in set(present)]


def with_controls(order: list[str], present) -> list[str]:
    """``order`` with the same-budget control of Patch right after Patch, where the results have it."""
    if PATCH_AT_FULL_BUDGET not in set(present) or "Patch" not in order:
        return order
    at = order.index("Patch") + 1
    return [*order[:at], PATCH_AT_FULL_BUDGET, *order[at:]]


def _cell(row) -> str:
    return f"{row['mean']:.3f} [{row.ci_low:.3f}, {row.ci_high:.3f}]"


TIER_VIEW = {  # (tier, metric) -> column of the README's binary-vs-unit table, in reading order
    ("binary", "T-Gen"): "T-Gen binary",
    ("standard", "T-Gen"): "T-Gen unit",
    ("binary", "I-Gen"): "I-Gen binary",
    ("standard", "I-Gen"): "I-Gen unit",
    ("hard", "I-Gen"): "I-Gen hard",
    ("standard", "Unit"): "Unit",
    ("hard", "Unit"): "Unit hard",
}
PAIRED_VIEW = {  # (tier, metric) -> column of the README's paired ablation table
    ("standard", "I-Gen"): "I-Gen",
    ("standard", "TI-Gen"): "TI-Gen",
    ("hard", "Unit"): "Unit hard (known)",
    ("standard", "T-Loc"): "T-Loc",
    ("standard", "I-Loc"): "I-Loc",
}


def main_table(results: Path) -> str:
    summary = pd.read_csv(results / "04_main_summary.csv")
    summary["cell"] = summary.apply(_cell, axis=1)
    blocks = []
    for task, group in summary[summary.tier == "standard"].groupby("task", sort=False):
        pivot = (
            group.pivot(index="method", columns="metric", values="cell")
            .reindex(with_controls(in_table_order(group.method), group.method))[METRICS]
            .reset_index()
        )
        n, edits = int(group.n_seeds.max()), int(group.n_edits.max())
        title = (
            f"**{task.upper()}**, standard tier (mean [95% CI] over {n} seeds and {edits} edits, bootstrap over both)"
        )
        blocks.append(title + "\n\n" + markdown(pivot))
    return "\n\n".join(blocks)


def tiers_table(results: Path) -> str:
    summary = pd.read_csv(results / "04_main_summary.csv")
    summary["column"] = [TIER_VIEW.get((t, m)) for t, m in zip(summary.tier, summary.metric)]
    summary = summary.dropna(subset=["column"])
    blocks = []
    for task, group in summary.groupby("task", sort=False):
        order = with_controls(methods.names(), group.method)
        pivot = group.pivot(index="method", columns="column", values="mean").reindex(order)
        pivot = pivot[list(TIER_VIEW.values())].map("{:.3f}".format).reset_index()
        blocks.append(f"**{task.upper()}** (means; intervals in `results/04_main_summary.csv`)\n\n" + markdown(pivot))
    return "\n\n".join(blocks)


def _paired_cell(row) -> str:
    return f"{row.mean_diff:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"


def paired_table(results: Path, name: str = "04_ablations_paired") -> str:
    paired = pd.read_csv(results / f"{name}.csv")
    paired["column"] = [PAIRED_VIEW.get((t, m)) for t, m in zip(paired.tier, paired.metric)]
    paired = paired.dropna(subset=["column"]).assign(cell=lambda t: t.apply(_paired_cell, axis=1))
    order = [f"{a} - {b}" for a, b in ablation_pairs()]  # the notebook's reading order
    pivot = paired.pivot(index="comparison", columns="column", values="cell")
    pivot = pivot.reindex([c for c in order if c in pivot.index] + [c for c in pivot.index if c not in order])
    edits, seeds = int(paired.n_edits.max()), int(paired.n_seeds.max())
    note = f"(mean paired difference [95% CI], {edits} edits over {seeds} seeds)\n\n"
    return note + markdown(pivot[[c for c in PAIRED_VIEW.values() if c in pivot]].reset_index())


def design_table(results: Path) -> str:
    paired = pd.read_csv(results / "03_rcsl_design.csv")
    paired["column"] = [PAIRED_VIEW.get((t, m)) for t, m in zip(paired.tier, paired.metric)]
    paired = paired.dropna(subset=["column"]).assign(cell=lambda t: t.apply(_paired_cell, axis=1))
    pivot = paired.pivot(index="comparison", columns="column", values="cell")
    pivot = pivot.reindex(list(dict.fromkeys(paired.comparison)))
    edits = int(paired.n_edits.max())
    note = f"(development edits only: {edits}; mean paired difference to the same editor without RCSL [95% CI])\n\n"
    return note + markdown(pivot[[c for c in PAIRED_VIEW.values() if c in pivot]].reset_index())


def targets_table(results: Path, name: str = "04_targets") -> str:
    """A thresholds table (``task, target, measured, met``): ``04_targets`` or ``04_sequential_targets``."""
    checks = pd.read_csv(results / f"{name}.csv")
    checks["met"] = checks.met.map({True: "yes", False: "**no**"})
    return markdown(checks[["task", "target", "measured", "met"]])


def ablation_table(results: Path) -> str:
    table = pd.read_csv(results / "04_ablations.csv")
    # the notebook's reading order (the CSV is sorted by name); names it does not know go last
    order = {m: i for i, m in enumerate(["Patch", *ablation_editors()])}
    table = table.sort_values("method", key=lambda names: names.map(order).fillna(len(order)), kind="stable")
    columns = [*METRICS, *[c for c in ["Unit (hard)"] if c in table]]
    table[columns] = table[columns].map("{:.3f}".format)
    return markdown(table[["method", *columns]])


SEQUENTIAL_T = (10, 50, 100)  # the README's sequential table: after this many accumulated edits
SEQUENTIAL_VIEW = ("Rel", "TI-Gen", "Unit", "T-Loc", "I-Loc")


def sequential_table(results: Path) -> str:
    table = pd.read_csv(results / "04_sequential_summary.csv")
    shown = [t for t in SEQUENTIAL_T if t in set(table["T"])] or [table["T"].max()]
    table = table[table["T"].isin(shown) & table.metric.isin(SEQUENTIAL_VIEW)].assign(
        cell=lambda t: t.apply(_cell, axis=1)
    )
    options = [m for m in dict.fromkeys(table.method) if m not in methods.names()]  # e.g. "ASAM calibrated": an option
    order = in_table_order(table.method) + sorted(options)
    pivot = table.pivot_table(index=["method", "T"], columns="metric", values="cell", aggfunc="first")
    seeds = table.groupby(["method", "T"]).n_seeds.max().rename("seeds")
    pivot = pivot.join(seeds).reset_index()
    pivot["method"] = pd.Categorical(pivot.method, order, ordered=True)
    pivot = pivot.sort_values(["method", "T"])
    pivot["T"] = pivot["T"].astype(int)
    return markdown(pivot[["method", "T", "seeds", *[m for m in SEQUENTIAL_VIEW if m in pivot]]])


def causes_table(results: Path) -> str:
    """``results/sequential_causes_paired.csv`` (``make sequential-causes``): each setting's paired difference to
    ASAM after the largest T every seed reaches, in :func:`tools.sequential_causes.cause_editors`' order."""
    paired = pd.read_csv(results / "sequential_causes_paired.csv")
    every_seed = paired[paired.n_seeds == paired.n_seeds.max()]
    at = every_seed[every_seed["T"] == every_seed["T"].max()]
    at = at[at.metric.isin(SEQUENTIAL_VIEW)].assign(cell=lambda t: t.apply(_paired_cell, axis=1))
    order = [f"{name} - {sequential_causes.STUDIES['report'].reference}" for name in sequential_causes.cause_editors()]
    pivot = at.pivot(index="comparison", columns="metric", values="cell")
    pivot = pivot.reindex([c for c in order if c in pivot.index] + [c for c in pivot.index if c not in order])
    T, edits, seeds = int(at["T"].max()), int(at.n_edits.max()), int(at.n_seeds.max())
    note = f"(after T = {T} edits: mean paired difference to ASAM [95% CI], {edits} edits over {seeds} seeds)\n\n"
    return note + markdown(pivot[[m for m in SEQUENTIAL_VIEW if m in pivot]].reset_index())


def predictive_table(results: Path) -> str:
    table = pd.read_csv(results / "02_predictive_summary.csv")
    auc = "AUC (variant loss -> misses a member) [95% CI]"
    fmt = lambda v: "n/a" if pd.isna(v) else f"{v:.3f}"  # noqa: E731
    table[auc] = [
        "n/a"
        if pd.isna(r.auc_loss_for_miss)
        else f"{r.auc_loss_for_miss:.3f} [{fmt(r.auc_ci_low)}, {fmt(r.auc_ci_high)}]"
        for r in table.itertuples()
    ]
    table["spearman_loss_vs_unit"] = table["spearman_loss_vs_unit"].map(fmt)
    paired_path = results / "02_predictive_paired.csv"
    if paired_path.exists():
        paired = pd.read_csv(paired_path).set_index("method")
        diff = paired.apply(_paired_cell, axis=1)
        table["AUC LAR - random (paired) [95% CI]"] = table.method.map(diff).where(table.variants == "lar", "")
    table = table.drop(columns=["auc_loss_for_miss", "auc_ci_low", "auc_ci_high"])
    table = table.rename(
        columns={
            "spearman_loss_vs_unit": "Spearman (variant loss, unit consistency)",
            "n_missing": "edits missing a member",
        }
    )
    return markdown(table)


def baseline_table(results: Path) -> str:
    summary = pd.read_csv(results / "01_baselines.csv")
    summary = summary[summary.tier.eq("standard") | (summary.tier.eq("hard") & summary.metric.eq("Unit"))]
    summary = summary.assign(
        cell=summary.apply(_cell, axis=1), column=summary.metric.where(summary.tier.eq("standard"), "Unit (hard)")
    )
    columns = [*METRICS, "Unit (hard)"]
    pivot = summary.pivot(index="method", columns="column", values="cell")
    pivot = pivot.reindex(in_table_order(summary.method, "baseline"))[[c for c in columns if c in pivot]]
    return markdown(pivot.reset_index())


def accuracy_table(checkpoint: Path) -> str:
    """The base model's accuracy per slice and its targets, from ``checkpoint/asam_meta.json``."""
    meta = json.loads((checkpoint / "asam_meta.json").read_text())
    rows = [
        {
            "slice": label,
            "accuracy": f"{meta['accuracy'][key]:.1%}",
            "target": f"≥ {meta['targets'][key]:.0%}" if key in meta["targets"] else "",
        }
        for key, label in SLICES.items()
    ]
    return markdown(pd.DataFrame(rows))


def kernel_drift_table(results: Path) -> str:
    """``results/cross_cpu/kernel_drift.csv`` (``make kernel-drift``): per kernel set and sequential table, the rows
    that move at three decimals against the committed table, the largest move and where, and whether the claims
    hold."""
    drift = pd.read_csv(results / "cross_cpu" / "kernel_drift.csv")
    meta = json.loads((results / "cross_cpu" / "kernel_drift.json").read_text())
    view = pd.DataFrame(
        {
            "kernel set": drift.kernel_set,
            "table": "`" + drift.table + "`",
            "rows moved / compared": [
                "not compared" if pd.isna(m) else f"{int(m):,} / {int(n):,}"
                for m, n in zip(drift.rows_moved, drift.rows)
            ],
            "largest move": drift.largest_move.map(lambda v: "" if pd.isna(v) else f"{v:.3f}"),
            "where": drift["where"].fillna("").str.replace("not compared: ", ""),
            "verdicts changed": drift.verdicts_changed,
            "claims hold": drift.claims_hold.map({True: "yes", False: "**no**"}),
        }
    )
    return f"On {meta['cpu']}, commit `{meta['commit'][:10]}`, {meta['date']}\n\n" + markdown(view)


BLOCKS: dict[str, Callable[[Path], str]] = {  # rendered from results/
    "baselines": baseline_table,
    "predictive": predictive_table,
    "main": main_table,
    "tiers": tiers_table,
    "targets": targets_table,
    "ablations": ablation_table,
    "ablations_paired": paired_table,
    "rcsl_design": design_table,
    "sequential": sequential_table,
    "sequential_targets": partial(targets_table, name="04_sequential_targets"),
    "sequential_causes": causes_table,
    "kernel_drift": kernel_drift_table,
}


def update(readme: Path, results: Path, checkpoint: Path = BASE_MODEL) -> list[str]:
    """Rewrite every marked block of ``readme`` whose table exists, and every quoted value
    (:func:`tools.readme_values.fill`); return the names of the blocks written.

    ``results``: the folder of result tables; ``checkpoint``: the base model's folder (its ``asam_meta.json``).
    """
    text = readme.read_text()
    written = []
    renders = {
        **{name: partial(render, results) for name, render in BLOCKS.items()},
        "accuracy": partial(accuracy_table, checkpoint),
    }
    for name, render in renders.items():
        pattern = re.compile(rf"(<!-- results:{name} -->\n)(?:.*?\n)?(<!-- /results:{name} -->)", re.S)
        if not pattern.search(text):
            continue
        try:
            block = render()
        except FileNotFoundError as err:
            print(f"README block {name!r} left as it is: {err.filename} does not exist yet", file=sys.stderr)
            continue
        text = pattern.sub(lambda m: m.group(1) + block + "\n" + m.group(2), text)
        written.append(name)
    text, missing = readme_values.fill(text, results)
    for line in missing:
        print(line, file=sys.stderr)
    readme.write_text(text)
    return written


if __name__ == "__main__":
    names = update(paths.REPO_ROOT / "README.md", paths.RESULTS)
    print(
        f"README tables written from {paths.RESULTS.name}/ and {BASE_MODEL.name}/asam_meta.json: "
        f"{', '.join(names) or 'none'}"
    )
