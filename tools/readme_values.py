"""The numbers the README quotes in its prose, each looked up in a table of ``results/`` by name.

The README marks a quoted number as ``<!-- value:KEY -->0.059<!-- /value -->``; :func:`fill` replaces what is
between the markers with ``VALUES[KEY]`` looked up in today's tables (``tools.readme_tables`` calls it, so
``make figures`` rewrites every quoted number with the tables). A key that is not registered is an error naming
it; a table or row that does not exist yet is reported and the number left as it is.

A registered value is a :class:`Lookup` (one cell of one table, at the README's rounding) or a function of
lookups (a difference, a list).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pandas as pd

from asam_lib.editors.lar import LARConfig
from tools.sequential_causes import STUDIES

MARKER = re.compile(r"<!-- value:(?P<key>[\w.-]+) -->(?P<value>.*?)<!-- /value -->", re.S)


class MissingValue(LookupError):
    """The table or row a registered value reads does not exist (yet)."""


@lru_cache(maxsize=32)
def _table(path: Path, mtime_ns: int) -> pd.DataFrame:
    return pd.read_csv(path)


def read(results: Path, table: str) -> pd.DataFrame:
    """``results/<table>.csv`` (read once per change of the file)."""
    path = results / f"{table}.csv"
    if not path.exists():
        raise MissingValue(f"{path} does not exist yet")
    return _table(path, path.stat().st_mtime_ns)


@dataclass(frozen=True)
class Lookup:
    """One cell of ``results/<table>.csv``: the row where every column of ``where`` has its value, ``column`` of
    it, formatted with ``fmt`` (the README's rounding)."""

    table: str
    where: dict = field(hash=False)
    column: str = "mean"
    fmt: str = "{:.3f}"

    def number(self, results: Path) -> float:
        """The cell as a float; :class:`MissingValue` unless exactly one row matches."""
        rows = read(results, self.table)
        for name, value in self.where.items():
            rows = rows[rows[name] == value]
        if len(rows) != 1:
            raise MissingValue(f"{self.table}.csv has {len(rows)} rows where {self.where} (expected one)")
        return float(rows[self.column].iloc[0])

    def __call__(self, results: Path) -> str:
        return self.fmt.format(self.number(results))


def interval(
    lookup: Lookup, signed: bool = False, bounds: tuple[str, str] = ("ci_low", "ci_high")
) -> Callable[[Path], str]:
    """``mean [ci_low, ci_high]`` of ``lookup``'s row (a paired table's ``mean_diff`` with signs if ``signed``;
    ``bounds``: the interval's columns where a table names them after their statistic)."""
    fmt = "{:+.3f}" if signed else "{:.3f}"

    def value(results: Path) -> str:
        cells = [Lookup(lookup.table, lookup.where, c, fmt)(results) for c in (lookup.column, *bounds)]
        return f"{cells[0]} [{cells[1]}, {cells[2]}]"

    return value


def difference(a: Lookup, b: Lookup, fmt: str = "{:.3f}") -> Callable[[Path], str]:
    """``a - b``, formatted with ``fmt``."""
    return lambda results: fmt.format(a.number(results) - b.number(results))


def average(
    table: str, where: dict, column: str, fmt: str = "{:.3f}", how: str = "mean", scale: float = 1.0
) -> Callable[[Path], str]:
    """``how`` (``mean``, ``min``, ...) of ``column`` times ``scale`` over the rows of ``results/<table>.csv`` where
    every column of ``where`` has its value (e.g. over the cases of a sweep); :class:`MissingValue` if none does."""

    def value(results: Path) -> str:
        rows = read(results, table)
        for name, wanted in where.items():
            rows = rows[rows[name] == wanted]
        if rows.empty:
            raise MissingValue(f"{table}.csv has no rows where {where}")
        return fmt.format(scale * rows[column].agg(how))

    return value


def distinct(table: str, column: str, fmt: str = "{:g}") -> Callable[[Path], str]:
    """The distinct values of ``column`` in order, as ``1, 10, 25``."""
    return lambda results: ", ".join(fmt.format(v) for v in sorted(read(results, table)[column].unique()))


def main_cell(task: str, tier: str, method: str, metric: str, column: str = "mean") -> Lookup:
    """A cell of ``04_main_summary.csv``."""
    where = {"task": task, "tier": tier, "method": method, "metric": metric}
    return Lookup("04_main_summary", where, column)


def paired(comparison: str, metric: str, tier: str = "standard", table: str = "04_ablations_paired") -> Lookup:
    """A paired difference of ``04_ablations_paired.csv`` (or another table of the same columns)."""
    return Lookup(table, {"task": "vqa", "tier": tier, "comparison": comparison, "metric": metric}, "mean_diff")


def design(form: str, metric: str, tier: str = "standard") -> Lookup:
    """A paired difference of ``03_rcsl_design.csv``: ``form`` against the same editor without RCSL, signed."""
    lookup = paired(f"{form} - without RCSL", metric, tier, "03_rcsl_design")
    return Lookup(lookup.table, lookup.where, lookup.column, "{:+.3f}")


def sequential(method: str, T: int, metric: str) -> Lookup:
    """A mean of ``04_sequential_summary.csv`` after ``T`` accumulated edits."""
    return Lookup("04_sequential_summary", {"method": method, "T": T, "metric": metric})


def firing(method: str, metric: str, fmt: str, how: str = "mean", scale: float = 1.0) -> Callable[[Path], str]:
    """Patch firing after 50 accumulated edits (``04_sequential.csv``): ``misfire rate`` (the share of the 50
    patches that fire on an unrelated input; ``scale=50`` counts them) or ``own patch fires`` (on its unit)."""
    where = {"method": method, "T": 50, "metric": metric}
    return average("04_sequential", where, "value", fmt, how, scale)


def sequential_paired(table: str, comparison: str, T: int, metric: str) -> Callable[[Path], str]:
    """A signed paired difference with its interval, after ``T`` edits, of a table ``make sequential-causes`` writes
    (``sequential_causes_paired``, ``sequential_calibration_dev_paired``)."""
    return interval(Lookup(table, {"comparison": comparison, "T": T, "metric": metric}, "mean_diff"), signed=True)


CAUSES_T = min(STUDIES["report"].edits)  # the cause study's largest T that every seed reaches (50)
DEV_T = max(STUDIES["dev"].checkpoints)  # the development study's last checkpoint: every development edit (48)


def causes(setting: str, metric: str) -> Callable[[Path], str]:
    """``setting - ASAM`` after :data:`CAUSES_T` edits in ``sequential_causes_paired.csv``."""
    return sequential_paired("sequential_causes_paired", f"{setting} - ASAM", CAUSES_T, metric)


def calibration_dev(metric: str) -> Callable[[Path], str]:
    """``ASAM calibrated - Patch`` after :data:`DEV_T` edits in ``sequential_calibration_dev_paired.csv``."""
    return sequential_paired("sequential_calibration_dev_paired", "ASAM calibrated - Patch", DEV_T, metric)


def baseline(method: str, metric: str) -> Lookup:
    """A standard-tier mean of ``01_baselines.csv``."""
    return Lookup("01_baselines", {"tier": "standard", "method": method, "metric": metric})


AUC_BOUNDS = ("auc_ci_low", "auc_ci_high")  # 02_predictive_summary.csv's interval of the AUC


def predictive_auc(method: str, variants: str) -> Lookup:
    """An AUC of ``02_predictive_summary.csv`` (``method``: an editor or "pooled"; ``variants``: lar / noise)."""
    return Lookup("02_predictive_summary", {"method": method, "variants": variants}, "auc_loss_for_miss")


def edit_cost(task: str, method: str, column: str, fmt: str) -> Lookup:
    """A cell of ``bench/edit_cost.csv`` (``make bench-edits``)."""
    return Lookup("bench/edit_cost", {"task": task, "method": method}, column, fmt)


def _binary_over_hard(task: str, method: str) -> Callable[[Path], str]:
    return difference(main_cell(task, "binary", method, "I-Gen"), main_cell(task, "hard", method, "I-Gen"))


DEFAULT_EPS = LARConfig().eps  # the sweep's row at LAR's default radius
HARD_UNIT = "Unit"  # the hard tier's unit consistency over the members the unedited model knows
VALUES: dict[str, Callable[[Path], str]] = {
    # the main table (notebook 04)
    "main.vqa.asam.unit": interval(main_cell("vqa", "standard", "ASAM", "Unit")),
    "main.vqa.patch.unit": interval(main_cell("vqa", "standard", "Patch", "Unit")),
    "main.caption.asam.unit": interval(main_cell("caption", "standard", "ASAM", "Unit")),
    "main.caption.patch.unit": interval(main_cell("caption", "standard", "Patch", "Unit")),
    "main.vqa.asam.unit_hard": main_cell("vqa", "hard", "ASAM", HARD_UNIT),
    "main.caption.asam.unit_hard": main_cell("caption", "hard", "ASAM", HARD_UNIT),
    "main.vqa.patch.unit_hard": main_cell("vqa", "hard", "Patch", HARD_UNIT),
    "main.caption.patch.unit_hard": main_cell("caption", "hard", "Patch", HARD_UNIT),
    "main.vqa.patch.igen_binary_over_hard": _binary_over_hard("vqa", "Patch"),
    "main.caption.patch.igen_binary_over_hard": _binary_over_hard("caption", "Patch"),
    "main.vqa.asam.igen_binary_over_hard": _binary_over_hard("vqa", "ASAM"),
    "main.caption.asam.igen_binary_over_hard": _binary_over_hard("caption", "ASAM"),
    "main.vqa.asam.tloc": main_cell("vqa", "standard", "ASAM", "T-Loc"),
    "main.vqa.asam.iloc": main_cell("vqa", "standard", "ASAM", "I-Loc"),
    # the paired ablations (notebook 04)
    "paired.asam_patch.unit_hard": interval(paired("ASAM - Patch", "Unit", "hard"), signed=True),
    "paired.asam_without_lar.unit_hard": interval(paired("ASAM - without LAR", "Unit", "hard"), signed=True),
    "paired.asam_without_lar.unit_hard.mean": paired("ASAM - without LAR", "Unit", "hard"),
    "paired.rcsl_selected.unit_hard": interval(paired("RCSL selected - without RCSL", "Unit", "hard"), signed=True),
    # the same-budget controls and RCSL where it has room (notebook 04, issue 31's rows)
    "paired.asam_patch_full_budget.unit_hard": interval(
        paired("ASAM - Patch, all 30 steps", "Unit", "hard"), signed=True
    ),
    "paired.asam_without_lar_full_budget.unit_hard": interval(
        paired("ASAM - without LAR, all 30 steps", "Unit", "hard"), signed=True
    ),
    "paired.rcsl_alone_full_budget.unit_hard": interval(
        paired("RCSL alone, all 30 steps - Patch, all 30 steps", "Unit", "hard"), signed=True
    ),
    "paired.rcsl_alone_patch.unit_hard": interval(
        paired("RCSL alone, lambda_rank=100 - Patch", "Unit", "hard"), signed=True
    ),
    "main.vqa.patch_full_budget.unit": interval(main_cell("vqa", "standard", "Patch, all 30 steps", "Unit")),
    "main.caption.patch_full_budget.unit": interval(main_cell("caption", "standard", "Patch, all 30 steps", "Unit")),
    "headroom.lar.unit_hard": Lookup("04_rcsl_headroom_dev", {"method": "without RCSL"}, "Unit (hard)"),
    "headroom.random.unit_hard": Lookup(
        "04_rcsl_headroom_dev", {"method": "random variants, without RCSL"}, "Unit (hard)"
    ),
    "paired.random_variants_rcsl.unit_hard": interval(
        paired("random variants, RCSL selected - random variants, without RCSL", "Unit", "hard"), signed=True
    ),
    # the RCSL design study (notebook 03, development edits)
    "design.block100.unit_hard": design("block output, lambda=100", "Unit", "hard"),
    "design.block1000.unit_hard": design("block output, lambda=1000", "Unit", "hard"),
    "design.block1000.iloc": design("block output, lambda=1000", "I-Loc"),
    "design.centred100.rel": design("block output centred, lambda=100", "Rel"),
    **{
        f"design.{objective}.{key}": design(f"block output row-normalised, {objective}, lambda=100", metric, tier)
        for objective in ("tail_sum", "nuclear")
        for key, metric, tier in (("unit_hard", "Unit", "hard"), ("iloc", "I-Loc", "standard"))
    },
    # LAR's predictive value (notebook 02)
    "predictive.pooled.lar.auc": predictive_auc("pooled", "lar"),
    "predictive.pooled.noise.auc": predictive_auc("pooled", "noise"),
    "predictive.pooled.lar.auc.interval": interval(predictive_auc("pooled", "lar"), bounds=AUC_BOUNDS),
    "predictive.pooled.noise.auc.interval": interval(predictive_auc("pooled", "noise"), bounds=AUC_BOUNDS),
    "predictive.pooled.lar_random.diff": interval(
        Lookup("02_predictive_paired", {"method": "pooled"}, "mean_diff"), signed=True
    ),
    # the cost of an edit (make bench-edits: results/bench/edit_cost.csv; its sidecar names the machine)
    "cost.vqa.asam_vs_patch": edit_cost("vqa", "ASAM", "seconds_vs_patch", "{:.2f}"),
    "cost.caption.asam_vs_patch": edit_cost("caption", "ASAM", "seconds_vs_patch", "{:.2f}"),
    "cost.vqa.asam.seconds": edit_cost("vqa", "ASAM", "seconds_per_edit", "{:.2f}"),
    "cost.vqa.patch.seconds": edit_cost("vqa", "Patch", "seconds_per_edit", "{:.2f}"),
    "cost.vqa.asam.steps": edit_cost("vqa", "ASAM", "steps_per_edit", "{:.1f}"),
    "cost.vqa.patch.steps": edit_cost("vqa", "Patch", "steps_per_edit", "{:.1f}"),
    "cost.vqa.asam.forwards": edit_cost("vqa", "ASAM", "forward_passes_per_edit", "{:.0f}"),
    "cost.vqa.patch.forwards": edit_cost("vqa", "Patch", "forward_passes_per_edit", "{:.0f}"),
    # LAR's variants at the default radius (notebook 02's sweep, mean over its edits)
    "eps_sweep.lar.coherence": average("02_eps_sweep", {"eps": DEFAULT_EPS, "variants": "LAR"}, "coherence"),
    "eps_sweep.lar.failure": average("02_eps_sweep", {"eps": DEFAULT_EPS, "variants": "LAR"}, "edit failure"),
    "eps_sweep.noise.failure": average("02_eps_sweep", {"eps": DEFAULT_EPS, "variants": "noise"}, "edit failure"),
    # the baselines' generality gap (notebook 01)
    "baselines.patch.igen": interval(baseline("Patch", "I-Gen")),
    "baselines.patch.igen.mean": baseline("Patch", "I-Gen"),
    "baselines.ftl.igen.mean": baseline("FT-L", "I-Gen"),
    "baselines.lora.tloc": baseline("LoRA", "T-Loc"),
    "baselines.lora.iloc": baseline("LoRA", "I-Loc"),
    "baselines.patch.rel": baseline("Patch", "Rel"),
    # sequential editing (notebook 04)
    "sequential.T": distinct("04_sequential_summary", "T"),
    "sequential.asam.50.iloc": sequential("ASAM", 50, "I-Loc"),
    "sequential.patch.50.iloc": sequential("Patch", 50, "I-Loc"),
    "sequential.asam.50.iloc.interval": interval(sequential("ASAM", 50, "I-Loc")),
    "sequential.patch.50.iloc.interval": interval(sequential("Patch", 50, "I-Loc")),
    "sequential.calibrated.50.iloc": sequential("ASAM calibrated", 50, "I-Loc"),
    "sequential.calibrated.50.tigen": sequential("ASAM calibrated", 50, "TI-Gen"),
    "sequential.patch.50.tigen": sequential("Patch", 50, "TI-Gen"),
    "sequential.asam.100.iloc": sequential("ASAM", 100, "I-Loc"),
    "firing.patch.50": firing("Patch", "misfire rate", "{:.1f}", scale=50),
    "firing.asam.50": firing("ASAM", "misfire rate", "{:.1f}", scale=50),
    "firing.calibrated.50": firing("ASAM calibrated", "misfire rate", "{:.2f}", scale=50),
    "firing.calibrated.50.own.mean": firing("ASAM calibrated", "own patch fires", "{:.0%}"),
    "firing.calibrated.50.own.min": firing("ASAM calibrated", "own patch fires", "{:.0%}", how="min"),
    "sequential.calibrated.100.iloc": sequential("ASAM calibrated", 100, "I-Loc"),
    **{
        f"sequential.{key}.{T}.iloc": sequential(method, T, "I-Loc")
        for key, method in (("calibrated", "ASAM calibrated"), ("patch", "Patch"))
        for T in (10, 25)
    },
    "sequential.patch.100.iloc": sequential("Patch", 100, "I-Loc"),
    # make sequential-causes: the ingredients of ASAM's leak, and the calibrated option on the development edits
    "causes.keys_frozen.tloc": causes("keys frozen", "T-Loc"),
    "causes.keys_frozen.iloc": causes("keys frozen", "I-Loc"),
    "causes.keys_frozen.tigen": causes("keys frozen", "TI-Gen"),
    **{
        f"causes.{key}.{name}": causes(setting, metric)
        for key, setting in (("without_lar", "without LAR"), ("without_rcsl", "without RCSL"))
        for name, metric in (("tloc", "T-Loc"), ("iloc", "I-Loc"))
    },
    "dev.calibrated_patch.tloc": calibration_dev("T-Loc"),
    "dev.calibrated_patch.iloc": calibration_dev("I-Loc"),
    "dev.calibrated_patch.tigen": calibration_dev("TI-Gen"),
}


def fill(text: str, results: Path) -> tuple[str, list[str]]:
    """``text`` with every ``<!-- value:KEY -->`` marker's number looked up in ``results``; and one line per
    value left as it was because its table or row does not exist yet. An unregistered KEY raises ``KeyError``
    naming it."""
    missing = []

    def replace(match: re.Match) -> str:
        key = match["key"]
        if key not in VALUES:
            raise KeyError(f"README value {key!r} is not registered in tools/readme_values.py VALUES")
        try:
            value = VALUES[key](results)
        except MissingValue as err:
            missing.append(f"README value {key!r} left as it is: {err}")
            return match[0]
        return f"<!-- value:{key} -->{value}<!-- /value -->"

    return MARKER.sub(replace, text), missing
