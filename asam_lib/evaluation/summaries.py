"""Summaries of the study's tidy rows: means with intervals over seeds *and* edits, paired differences of
two methods on the same edits, the paper's claim as targets, the ablation table, the share of a generality
gap a method closes, and consistency against distance. Pure functions of tables, so notebook 04 and its tests
compute them the same way.

The project's two bootstraps are here, both 95% percentile intervals with a fixed bootstrap seed: :func:`ci95`
resamples values alone; :func:`crossed_bootstrap`, which every interval of the study uses, resamples the seeds and,
independently, the edits (by case name, so one fact edited under several seeds is resampled as one), and averages
the per-edit values each replicate selected, each with its multiplicity.

**[reconstruction]** The thresholds of :data:`TARGETS` are this companion's reading of the paper's claim
(ASAM closes its base editor's generality gap at little cost in reliability, locality and time); the paper
states no numbers we can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from asam_lib.editors.methods import GENERALITY_METRICS, METRICS

EXACT_PROTOCOLS = ("exact", "answer_span")  # the protocol of every metric in the main table
# The primary protocol of each tier: exact match; on the hard tier over the members the unedited model knows.
PRIMARY_PROTOCOL = {"standard": "exact", "hard": "exact_known", "binary": "exact"}
LOCALITY_METRICS = ("T-Loc", "I-Loc")
PAIRED_COLUMNS = ("mean_diff", "ci_low", "ci_high", "n_edits", "n_seeds")


def primary_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of each tier's primary protocol (:data:`PRIMARY_PROTOCOL`; ``answer_span`` for locality),
    the metrics of :data:`METRICS` only, NaN values (no known member) dropped."""
    tier = rows["tier"] if "tier" in rows else pd.Series("standard", index=rows.index)
    wanted = tier.map(PRIMARY_PROTOCOL).where(~rows.metric.isin(LOCALITY_METRICS), "answer_span")
    chosen = rows[(rows.protocol == wanted) & rows.metric.isin(METRICS)]
    return chosen.dropna(subset=["value"])


def ci95(values: Sequence[float], seed: int = 0, n_boot: int = 2000) -> tuple[float, float, float]:
    """Mean of ``values`` (NaN left out) and a 95% bootstrap interval of it, resampling the values alone (a fixed
    bootstrap seed): for rows of one seed, or where seeds and edits are not told apart (``harness.summarize``, the
    study on a real checkpoint). Where rows carry both, :func:`crossed_bootstrap` resamples each."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = rng.choice(v, size=(n_boot, len(v)), replace=True).mean(1)
    return float(v.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def crossed_weights(n_seeds: int, n_cases: int, n_boot: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The crossed bootstrap's replicates (module docstring) as multiplicities: ``(n_boot, n_seeds)`` for the seeds
    and, drawn independently, ``(n_boot, n_cases)`` for the edits; a row's weight in replicate b is the product of
    its seed's and its edit's. A fixed bootstrap seed. Means (:func:`crossed_bootstrap`) and rank statistics
    (:func:`asam_lib.experiments.lar_study.auc_intervals`) draw their replicates here."""
    rng = np.random.default_rng(seed)
    seed_weights = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot).astype(float)
    case_weights = rng.multinomial(n_cases, np.full(n_cases, 1 / n_cases), size=n_boot).astype(float)
    return seed_weights, case_weights


def crossed_bootstrap(values: pd.Series, n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-edit ``values`` (indexed by ``seed`` and ``case``) and its 95% interval from a bootstrap
    that resamples seeds and edits independently (module docstring); a fixed bootstrap seed."""
    matrix = values.groupby(level=["seed", "case"]).mean().unstack("case")
    present = matrix.notna().to_numpy(float)
    filled = matrix.fillna(0.0).to_numpy(float)
    if present.sum() == 0:
        return float("nan"), float("nan"), float("nan")
    seed_weights, case_weights = crossed_weights(*filled.shape, n_boot=n_boot, seed=seed)
    total = np.einsum("bs,sc,bc->b", seed_weights, filled, case_weights)
    count = np.einsum("bs,sc,bc->b", seed_weights, present, case_weights)
    means = total[count > 0] / count[count > 0]
    return float(filled.sum() / present.sum()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def summary_over_edits(rows: pd.DataFrame, by: Sequence[str] = ("task", "tier", "method", "metric")) -> pd.DataFrame:
    """Per ``by`` group of per-edit rows (primary protocol, see :func:`primary_rows`): ``mean``, ``ci_low``,
    ``ci_high`` (crossed bootstrap over seeds and edits), ``n_edits`` (seed-edit pairs) and ``n_seeds``."""
    out = []
    for keys, group in rows.groupby(list(by), sort=False):
        mean, low, high = crossed_bootstrap(group.set_index(["seed", "case"])["value"])
        n_edits, n_seeds = len(group.groupby(["seed", "case"])), group.seed.nunique()
        protocol = group.protocol.iloc[0]
        row = {**dict(zip(by, keys)), "protocol": protocol, "mean": mean, "ci_low": low, "ci_high": high}
        out.append({**row, "n_edits": n_edits, "n_seeds": n_seeds})
    return pd.DataFrame(out)


def paired_differences(
    rows: pd.DataFrame, pairs: Sequence[tuple[str, str]], by: Sequence[str] = ("task", "tier", "metric")
) -> pd.DataFrame:
    """``a - b`` for each ``(a, b)`` of ``pairs``, per edit (same seed, same case) and ``by`` group of per-edit
    rows (primary protocol, see :func:`primary_rows`): ``comparison`` ("a - b"), ``mean_diff``, ``ci_low``,
    ``ci_high`` (crossed bootstrap over seeds and edits), ``n_edits`` (paired seed-edit pairs), ``n_seeds``.
    Edits that only one of the two methods has are left out."""
    keys = [*by, "seed", "case"]
    values = rows.groupby([*keys, "method"]).value.mean().unstack("method")
    out = []
    for a, b in pairs:
        if a not in values or b not in values:
            raise ValueError(f"paired_differences: no rows of {a if a not in values else b!r}")
        diff = (values[a] - values[b]).dropna()
        for group_keys, group in diff.groupby(level=list(by), sort=False):
            mean, low, high = crossed_bootstrap(group.droplevel(list(by)))
            seeds = group.index.get_level_values("seed")
            row = {**dict(zip(by, group_keys)), "comparison": f"{a} - {b}", "mean_diff": mean}
            out.append({**row, "ci_low": low, "ci_high": high, "n_edits": len(group), "n_seeds": seeds.nunique()})
    groups = [c for c in by if c != "metric"]
    columns = [*groups, "comparison", *(["metric"] if "metric" in by else []), *PAIRED_COLUMNS]
    return pd.DataFrame(out, columns=columns)


@dataclass(frozen=True)
class Targets:
    """What ASAM must reach against its base editor, per task."""

    gap_share: float = 0.5  # share of the base editor's gap 1 - Gen it closes, on each generality metric
    min_rel: float = 0.99
    min_loc: float = 0.97  # on T-Loc and I-Loc each
    max_time_ratio: float = 3.0  # wall time per edit against the base editor's
    rcsl_gain: float = 0.03  # what RCSL must add to hard-tier unit consistency (known members), paired, CI above 0


TARGETS = Targets()


def gap_closure(summary: pd.DataFrame, method: str, base: str, by: tuple[str, ...] = ("task",)) -> pd.DataFrame:
    """Share of ``base``'s generality gap (1 - Gen) that ``method`` closes, per generality metric (NaN when
    the base has no gap). ``summary``: rows (``by``..., method, metric, mean) of the exact protocol."""
    pivot = summary.pivot_table(index=[*by, "metric"], columns="method", values="mean")
    pivot = pivot[pivot.index.get_level_values("metric").isin(GENERALITY_METRICS)]
    gap = 1 - pivot[base]
    closed = (pivot[method] - pivot[base]) / gap.where(gap > 0)
    return pd.DataFrame({f"{base} gap": gap, f"{method} gap": 1 - pivot[method], "share closed": closed}).reset_index()


def target_checks(
    summary: pd.DataFrame,
    tasks: Sequence[str],
    steps: pd.DataFrame,
    seconds: pd.DataFrame | None = None,
    method: str = "ASAM",
    base: str | Sequence[str] = "Patch",
    targets: Targets = TARGETS,
) -> pd.DataFrame:
    """One row per target and task: ``task, target, measured, met``. ``summary``: the main table (task,
    method, metric, protocol, mean); ``steps`` / ``seconds``: mean optimiser steps and wall seconds per edit,
    tasks x methods. The time target is checked only for tasks with wall times. A gap of zero (the base
    already generalises fully) counts as met. Several ``base`` editors (e.g. Patch and Patch at ASAM's full
    budget): each generality target is judged against the stronger of them on that metric (the smaller gap),
    which the measured column names; the time target against the first."""
    bases = [base] if isinstance(base, str) else list(base)
    exact = summary[summary.protocol.isin(EXACT_PROTOCOLS)]
    closure = pd.concat(
        [gap_closure(exact, method, b).rename(columns={f"{b} gap": "base gap"}).assign(base=b) for b in bases]
    )
    closure = closure.sort_values("base gap", kind="stable").groupby(["task", "metric"], sort=False).head(1)
    closure = closure.sort_values(["task", "metric"], kind="stable")
    against = f"{bases[0]}'s" if len(bases) == 1 else f"the stronger of {' / '.join(bases)}'s"
    checks = []
    for task in tasks:
        ours = exact[(exact.task == task) & (exact.method == method)].set_index("metric")["mean"]
        for _, row in closure[closure.task == task].iterrows():
            share = row["share closed"]
            which = "" if len(bases) == 1 else f" against {row.base}"
            checks.append(
                {
                    "task": task,
                    "target": f"closes >= 1/2 of {against} {row.metric} gap",
                    "measured": f"{share:.2f}{which} (gap {row['base gap']:.3f} -> {row[f'{method} gap']:.3f})",
                    "met": pd.isna(share) or share >= targets.gap_share,
                }
            )
        checks.append(
            {
                "task": task,
                "target": f"Rel >= {targets.min_rel}",
                "measured": f"{ours['Rel']:.3f}",
                "met": ours["Rel"] >= targets.min_rel,
            }
        )
        for loc in ["T-Loc", "I-Loc"]:
            checks.append(
                {
                    "task": task,
                    "target": f"{loc} >= {targets.min_loc}",
                    "measured": f"{ours[loc]:.3f}",
                    "met": ours[loc] >= targets.min_loc,
                }
            )
        base = bases[0]
        if seconds is not None and task in seconds.index:
            ratio = seconds.loc[task, method] / seconds.loc[task, base]
            checks.append(
                {
                    "task": task,
                    "target": f"time per edit <= {targets.max_time_ratio:g}x {base}",
                    "measured": f"{ratio:.2f}x (steps {steps.loc[task, method]:.1f} vs {steps.loc[task, base]:.1f})",
                    "met": ratio <= targets.max_time_ratio,
                }
            )
    return pd.DataFrame(checks)


def rcsl_target_check(
    paired: pd.DataFrame,
    table: pd.DataFrame,
    with_rcsl: str = "RCSL selected",
    without: str = "without RCSL",
    task: str = "vqa",
    targets: Targets = TARGETS,
) -> dict:
    """The RCSL threshold as a row like :func:`target_checks`'s: ``with_rcsl`` must add at least
    ``targets.rcsl_gain`` hard-tier unit consistency over ``without`` (paired, 95% interval above zero), at
    Rel >= ``min_rel`` and T-Loc / I-Loc >= ``min_loc``. ``paired``: :func:`paired_differences`' table;
    ``table``: :func:`ablation_table`'s (means per method)."""
    row = paired[
        (paired.comparison == f"{with_rcsl} - {without}") & (paired.tier == "hard") & (paired.metric == "Unit")
    ]
    if row.empty:
        raise ValueError(f"rcsl_target_check: no hard-tier Unit row of '{with_rcsl} - {without}'")
    gain, means = row.iloc[0], table.loc[with_rcsl]
    kept = means["Rel"] >= targets.min_rel and min(means["T-Loc"], means["I-Loc"]) >= targets.min_loc
    return {
        "task": task,
        "target": f"RCSL adds >= +{targets.rcsl_gain} hard-tier Unit (known), CI > 0, keeping Rel and Loc",
        "measured": f"{gain.mean_diff:+.3f} [{gain.ci_low:+.3f}, {gain.ci_high:+.3f}]; Rel {means['Rel']:.3f}, "
        f"T-Loc {means['T-Loc']:.3f}, I-Loc {means['I-Loc']:.3f}",
        "met": bool(gain.mean_diff >= targets.rcsl_gain and gain.ci_low > 0 and kept),
    }


@dataclass(frozen=True)
class SequentialTargets:
    """What the sequential-editing option of ASAM (this companion's, beyond the paper) must reach, after
    ``at_T`` accumulated edits against the base editor, and on single edits against paper-faithful ASAM."""

    at_T: int = 50
    min_rel: float = 0.95
    max_loc_below_base: float = 0.02  # T-Loc and I-Loc each at most this far below the base editor's
    min_gen_above_base: float = 0.05  # TI-Gen at least this far above the base editor's
    max_single_cost: float = 0.01  # on single edits, no metric more than this below paper-faithful ASAM


SEQUENTIAL_TARGETS = SequentialTargets()


def sequential_target_checks(
    sequential: pd.DataFrame,
    single_paired: pd.DataFrame,
    method: str,
    base: str = "Patch",
    paper: str = "ASAM",
    task: str = "vqa",
    targets: SequentialTargets = SEQUENTIAL_TARGETS,
) -> pd.DataFrame:
    """The sequential thresholds as rows like :func:`target_checks`'s (``task, target, measured, met``).
    ``sequential``: :func:`summary_over_edits` of the sequential rows by (method, T, metric); ``single_paired``:
    :func:`paired_differences` with the comparison ``f"{paper} - {method}"`` (single edits, rolled back),
    whose every (tier, metric) counts."""
    at = sequential[sequential["T"] == targets.at_T].set_index(["method", "metric"])
    if at.empty:
        raise ValueError(f"sequential_target_checks: no rows at T = {targets.at_T}")
    ours, theirs = at.loc[method, "mean"], at.loc[base, "mean"]
    seeds = int(at.loc[method, "n_seeds"].min())
    where = f"T = {targets.at_T}, {seeds} seed(s)"
    checks = [
        {
            "target": f"Rel >= {targets.min_rel} ({where})",
            "measured": f"{ours['Rel']:.3f}",
            "met": ours["Rel"] >= targets.min_rel,
        }
    ]
    for loc in LOCALITY_METRICS:
        gap = ours[loc] - theirs[loc]
        checks.append(
            {
                "target": f"{loc} >= {base}'s - {targets.max_loc_below_base} ({where})",
                "measured": f"{ours[loc]:.3f} vs {theirs[loc]:.3f} ({gap:+.3f})",
                "met": gap >= -targets.max_loc_below_base,
            }
        )
    gain = ours["TI-Gen"] - theirs["TI-Gen"]
    checks.append(
        {
            "target": f"TI-Gen >= {base}'s + {targets.min_gen_above_base} ({where})",
            "measured": f"{ours['TI-Gen']:.3f} vs {theirs['TI-Gen']:.3f} ({gain:+.3f})",
            "met": gain >= targets.min_gen_above_base,
        }
    )
    cost = single_paired[single_paired.comparison == f"{paper} - {method}"]
    if cost.empty:
        raise ValueError(f"sequential_target_checks: no single-edit rows of '{paper} - {method}'")
    worst = cost.loc[cost.mean_diff.idxmax()]
    checks.append(
        {
            "target": f"single edits: no metric more than {targets.max_single_cost} below {paper}'s",
            "measured": f"largest drop {worst.mean_diff:+.3f} ({worst.tier} {worst.metric}, "
            f"{int(worst.n_edits)} edits)",
            "met": worst.mean_diff <= targets.max_single_cost,
        }
    )
    return pd.DataFrame([{"task": task, **c} for c in checks])


def ablation_rows(
    single: pd.DataFrame, ablations: Sequence[str], task: str, base: str = "Patch", seeds: Sequence[int] | None = None
) -> pd.DataFrame:
    """The per-edit rows (each tier's primary protocol, :func:`primary_rows`) of the ablation study: every
    ablation's edits, and the main run's rows of ``base`` and of ablations that the main run already has (ASAM
    itself) on those same edits (same seed and case); ``seeds``: only these (None: all)."""
    rows = primary_rows(single[single.group.isin(["ablation", "main"]) & (single.task == task)])
    if seeds is not None:
        rows = rows[rows.seed.isin(seeds)]
    rows = rows[rows.method.isin(ablations) | (rows.method == base)]
    edits = rows[rows.group == "ablation"][["seed", "case"]].drop_duplicates()
    return rows.merge(edits, on=["seed", "case"])


def ablation_table(rows: pd.DataFrame, ablations: Sequence[str], base: str = "Patch") -> pd.DataFrame:
    """Mean of each metric over the ablation edits, one row per method (``base`` first, then ``ablations``
    in their order), columns :data:`METRICS` (standard tier) and, where ``rows`` have a hard tier, its unit
    consistency over known members as ``"Unit (hard)"``."""
    standard = rows[rows.tier == "standard"] if "tier" in rows else rows
    table = standard.groupby(["method", "metric"]).value.mean().unstack().reindex([base, *ablations])[list(METRICS)]
    if "tier" in rows and (rows.tier == "hard").any():
        hard = rows[(rows.tier == "hard") & (rows.metric == "Unit")].groupby("method").value.mean()
        table["Unit (hard)"] = hard.reindex(table.index)
    return table


def share_of_gap_closed(table: pd.DataFrame, metric: str = "I-Gen", base: str = "Patch") -> pd.Series:
    """Per row of ``table`` (methods x metrics), the share of ``base``'s gap 1 - ``metric`` it closes (NaN
    when the base has no gap)."""
    gap = 1 - table[metric]
    return 1 - gap / gap[base] if gap[base] > 0 else gap * float("nan")


def distance_bins(values: pd.Series, edges: Sequence[float] | None = None, n_bins: int = 5) -> pd.DataFrame:
    """The bin of each distance in ``values`` and the bin's centre (the mean of its values), indexed like
    ``values``: columns ``bin`` and ``centre``. Fixed ``edges`` (bins labelled ``"lo-hi"``; values outside them
    count in the outer bins), or without edges ``n_bins`` quantile bins of equal count (ties merge bins). The one
    binning of distances in every figure (notebook 01's quantile bins, notebook 04's fixed ones)."""
    if edges is None:
        bins = pd.qcut(values, n_bins, duplicates="drop")
    else:
        labels = [f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:])]
        clipped = values.clip(edges[0], edges[-1])  # the outer edges may be rounded inwards
        bins = pd.cut(clipped, list(edges), labels=labels, include_lowest=True)
    return pd.DataFrame({"bin": bins, "centre": values.groupby(bins, observed=True).transform("mean")})


def distance_curve(members: pd.DataFrame, column: str, edges: list[float]) -> pd.DataFrame:
    """Share of evaluated members on the new answer per distance bin of ``column`` (fixed ``edges``, see
    :func:`distance_bins`), per method and seed: columns method, seed, bin, exact, n, and ``distance``: the mean
    distance of the bin's members over every method and seed (where to plot the bin on a numeric axis). Where
    ``members`` name their edit (a ``case`` column), also ``n_edits``: how many edits have a member in the bin."""
    evaluated = members[members.kind != "anchor"]
    binned = distance_bins(evaluated[column], edges)
    evaluated = evaluated.assign(bin=binned["bin"])
    grouped = evaluated.groupby(["method", "seed", "bin"], observed=True)
    out = grouped.exact.agg(["mean", "size"]).reset_index()
    if "case" in evaluated:
        out["n_edits"] = grouped.case.nunique().to_numpy()
    centres = binned.groupby("bin", observed=True).centre.first().rename("distance")
    return out.rename(columns={"mean": "exact", "size": "n"}).merge(centres, left_on="bin", right_index=True)
