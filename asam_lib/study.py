"""The edit-and-evaluate study of notebook 04, run as independent jobs on worker processes.

A :class:`Job` is one (mode, task, seed, editors, edit count): single edits with rollback, or a sequential
run. Jobs are independent, so :func:`run_jobs` spreads them over processes (one torch thread each: on a
small model, two single-threaded processes finish sooner than one process with two threads). Each worker
loads the base model and builds the edit cases once per (task, seed, count) and returns tidy rows; the
results do not depend on which worker ran a job or in which order.

Wall-clock times are not reproducible, so they are split off into their own table
(:func:`split_timings`), written under ``build/`` rather than ``results/``.
"""

from __future__ import annotations

import multiprocessing
import os
import traceback
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import pandas as pd
import torch

from asam_lib import paths
from asam_lib.editing import Editor
from asam_lib.harness import HarnessConfig, build_cases, run_sequential, run_single
from asam_lib.progress import tqdm

TIMING_METRICS = ("seconds",)


@dataclass(frozen=True)
class Job:
    """One unit of work: the cases ``start`` to ``n_edits`` of (task, seed). ``editors``: method name -> editor;
    ``mode``: "single", "sequential" or "predictive" (notebook 02's variants-vs-unit study with LAR settings
    ``lar``, :func:`asam_lib.lar_study.predictive_study`); ``group``: a label copied into every row (e.g. "main", "ablation",
    "sensitivity"). Splitting a long job into ranges of cases (:func:`split`) spreads it over workers without
    building a case twice."""

    group: str
    task: str
    seed: int
    n_edits: int
    editors: dict[str, Editor] = field(hash=False)
    mode: str = "single"
    checkpoints: tuple[int, ...] = (1, 5, 10, 20, 50)
    start: int = 0
    lar: object = None  # LARConfig of the predictive mode
    model_folder: str | None = None  # a local checkpoint (None: the embedded base model)
    dtype: str = "float32"  # of the checkpoint's weights (see asam_lib.model.load_pretrained)
    device_map: str | None = None  # e.g. "cuda:0" or "auto" (None: the CPU)
    data: str | None = None  # an MMEdit-format file of the job's task (None: the embedded world's benchmark)
    image_root: str | None = None  # what the file's image paths are relative to (None: its folder)

    def __repr__(self) -> str:
        assets = "".join(f", {name} {value}" for name, value in [("model", self.model_folder), ("data", self.data)] if value)
        cases = f"cases {self.start}-{self.n_edits - 1}" if self.start else f"{self.n_edits} edits"
        return f"Job({self.group}, {self.mode}, {self.task}, seed {self.seed}, {cases}, {list(self.editors)}{assets})"


def split(job: Job, parts: int) -> list[Job]:
    """``job`` as ``parts`` jobs on consecutive ranges of its cases (not a sequential run: it depends on
    every earlier edit)."""
    if job.mode == "sequential":
        raise ValueError(f"{job}: a sequential run cannot be split")
    bounds = [job.start + round(i * (job.n_edits - job.start) / parts) for i in range(parts + 1)]
    return [replace(job, start=lo, n_edits=hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


@lru_cache(maxsize=2)
def _model(folder: str | None, dtype: str = "float32", device_map: str | None = None):
    from asam_lib.model import load_model, load_pretrained
    from asam_lib.pretrain import base_model_folder
    from asam_lib.prompting import PromptEncoder

    model, processor = load_pretrained(folder, dtype, device_map) if folder else load_model(base_model_folder())
    return model, PromptEncoder(processor)


@lru_cache(maxsize=2)
def _world():
    from asam_lib.world import World

    return World()


@lru_cache(maxsize=4)
def _known(model_key: tuple, task: str):
    from asam_lib.benchmark import exported_benchmark
    from asam_lib.harness import known_records
    from asam_lib.records import load_records

    model, encoder = _model(*model_key)
    return known_records(model, encoder, load_records(exported_benchmark(_world(), task)))


@lru_cache(maxsize=4)
def _records(data: str, image_root: str | None, task: str):
    from asam_lib.records import load_records

    return load_records(data, image_root, task)


_CASES: dict[tuple, dict[int, object]] = {}


def _cases(job: Job):
    """Cases ``job.start`` to ``job.n_edits`` of its (task, seed), each built once per process (cases are
    prefix-stable and independent, see :func:`asam_lib.harness.build_cases`); from the MMEdit file
    ``job.data`` if given (:func:`asam_lib.mmedit_study.prefix_cases`)."""
    model_key = (job.model_folder, job.dtype, job.device_map)
    model, encoder = _model(*model_key)
    if job.data is not None:
        from asam_lib.mmedit_study import prefix_cases

        return prefix_cases(model, encoder, _records(job.data, job.image_root, job.task), job.n_edits, job.seed)[job.start :]
    built = _CASES.setdefault((model_key, job.task, job.seed), {})
    for i in range(job.start, job.n_edits):
        if i not in built:
            config = HarnessConfig(task=job.task, n_edits=i + 1)
            built.update(enumerate(build_cases(model, encoder, _world(), config, seed=job.seed, start=i, known=_known(model_key, job.task)), start=i))
    return [built[i] for i in range(job.start, job.n_edits) if i in built]


def run_job(job: Job) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run one job in this process: (metric rows, per-member rows), each tagged with ``job.group``."""
    model, encoder = _model(job.model_folder, job.dtype, job.device_map)
    cases = _cases(job)
    members: list[dict] = []
    if job.mode == "single":
        rows = run_single(model, encoder, job.editors, cases, seed=job.seed, task=job.task, members=members)
    elif job.mode == "sequential":
        frames = [run_sequential(model, encoder, name, editor, cases, seed=job.seed, checkpoints=job.checkpoints, task=job.task)
                  for name, editor in job.editors.items()]
        rows = pd.concat(frames, ignore_index=True)
    elif job.mode == "predictive":
        from asam_lib.lar_study import predictive_study

        rows = predictive_study(model, encoder, cases, job.editors, job.lar, seed=job.seed)
    else:
        raise ValueError(f"{job}: unknown mode {job.mode!r} (single, sequential or predictive)")
    return rows.assign(group=job.group), pd.DataFrame(members).assign(group=job.group)


class JobError(RuntimeError):
    """A job that failed: names the job and carries the traceback of the process that ran it."""

    def __init__(self, job: str, detail: str):
        self.job, self.detail = job, detail
        super().__init__(f"{job} failed:\n{detail}")

    def __reduce__(self):  # raised in a worker, re-raised in the notebook
        return type(self), (self.job, self.detail)


def _init_worker() -> None:
    torch.set_num_threads(1)
    os.environ["TQDM_DISABLE"] = "1"


def _run_job_in_worker(job: Job) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`run_job`, with any exception turned into a :class:`JobError` that carries this worker's
    traceback as text (an exception object need not survive pickling; its text does)."""
    try:
        return run_job(job)
    except Exception:
        raise JobError(repr(job), traceback.format_exc()) from None


def _result(job: Job, future) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The output of ``job``'s future, or one :class:`JobError` naming the job whatever went wrong."""
    try:
        return future.result()
    except JobError as err:
        raise JobError(err.job, err.detail) from None
    except BrokenProcessPool as err:
        raise JobError(repr(job), f"the worker process running it (or a job beside it) died without a Python error: "
                       f"killed, out of memory or a crash in native code ({err})") from None
    except Exception as err:  # e.g. the job or its output could not be pickled
        raise JobError(repr(job), "".join(traceback.format_exception(err))) from None


def run_jobs(jobs: list[Job], workers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``jobs`` on ``workers`` processes (1: in this process); concatenated rows in job order. A job that
    fails raises :class:`JobError` naming it, with the traceback of the process that ran it."""
    if workers <= 1:
        outputs = []
        for job in tqdm(jobs, desc="jobs"):
            try:
                outputs.append(run_job(job))
            except Exception as err:
                err.add_note(f"while running {job!r}")
                raise
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
            futures = [pool.submit(_run_job_in_worker, job) for job in jobs]
            try:
                outputs = [_result(job, future) for job, future in tqdm(list(zip(jobs, futures)), desc="jobs")]
            except JobError:
                pool.shutdown(cancel_futures=True)  # the jobs not yet started are not run
                raise
    rows = pd.concat([o[0] for o in outputs], ignore_index=True)
    members = pd.concat([o[1] for o in outputs], ignore_index=True)
    return rows, members


def split_timings(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(reproducible rows, wall-clock rows)."""
    timing = rows.metric.isin(TIMING_METRICS)
    return rows[~timing].reset_index(drop=True), rows[timing].reset_index(drop=True)


def save_timings(table: pd.DataFrame, name: str) -> Path:
    """Write wall-clock rows to ``build/timings/name.csv`` (not compared between runs, not committed)."""
    path = paths.ensure(paths.BUILD / "timings") / f"{name}.csv"
    table.to_csv(path, index=False)
    return path


# --- the study's editors ---------------------------------------------------------------------------

def baseline_editors() -> dict[str, Editor]:
    """The three intrinsic baselines and ASAM (on Patch) with their default settings."""
    from asam_lib.asam import ASAM
    from asam_lib.editing import FTL
    from asam_lib.lora import LoRA
    from asam_lib.patch import Patch

    return {"FT-L": FTL(), "LoRA": LoRA(), "Patch": Patch(), "ASAM": ASAM()}


def ablation_editors() -> dict[str, Editor]:
    """ASAM and its ablations (design section 7): no LAR (random variants of the same norm), no RCSL, no
    asymmetry, each alternative RCSL objective, ASAM on FT-L instead of Patch, and RCSL alone (the
    variants enter only through H, not through their CE: lambda_adv = 0) at the default and at a large
    lambda_rank, which asks whether the rank term can carry the edit to the unit by itself."""
    from asam_lib.asam import ASAM, ASAMSettings
    from asam_lib.editing import FTL
    from asam_lib.rcsl import RCSLConfig

    return {
        "ASAM": ASAM(),
        "without LAR": ASAM(settings=ASAMSettings(variants="noise")),
        "without RCSL": ASAM(settings=ASAMSettings(lambda_rank=0.0)),
        "without asymmetry": ASAM(rcsl=RCSLConfig(asymmetric=False)),
        "RCSL tail_sum": ASAM(rcsl=RCSLConfig(objective="tail_sum")),
        "RCSL nuclear": ASAM(rcsl=RCSLConfig(objective="nuclear")),
        "ASAM on FT-L": ASAM(FTL()),
        "RCSL alone": ASAM(settings=ASAMSettings(lambda_adv=0.0)),
        "RCSL alone, lambda_rank=100": ASAM(settings=ASAMSettings(lambda_adv=0.0, lambda_rank=100.0)),
    }


def sensitivity_settings(eps=(0.1, 0.3, 0.5), k=(2, 4, 8), lambda_rank=(1.0, 10.0, 100.0), steps=(2, 4, 8), layers=(1, 2, 3)) -> dict[str, tuple]:
    """The sensitivity grid: knob -> the values it takes (one knob at a time around ASAM's defaults)."""
    return {"eps": eps, "K": k, "lambda_rank": lambda_rank, "T": steps, "layer": layers}


def sensitivity_defaults() -> dict[str, str]:
    """Knob -> ASAM's default value, formatted as in the editors' names ("eps" -> "0.3")."""
    from asam_lib.asam import ASAM

    asam = ASAM()
    return {"eps": str(asam.lar.eps), "K": str(asam.lar.k), "lambda_rank": str(asam.settings.lambda_rank), "T": str(asam.lar.steps),
            "layer": str(asam.config.layer)}


def sensitivity_editors(grid: dict[str, tuple] | None = None, include_defaults: bool = False) -> dict[str, Editor]:
    """ASAM with one knob of ``grid`` (default :func:`sensitivity_settings`) changed at a time (name
    "knob=value"), and Patch at each edit layer ("Patch layer=l") as the reference for the layer sweep.
    Settings equal to the defaults are the main table's ASAM and Patch, so they are left out unless
    ``include_defaults`` (see :func:`with_default_settings`)."""
    from dataclasses import replace

    from asam_lib.asam import ASAM, ASAMSettings
    from asam_lib.editing import EditConfig
    from asam_lib.lar import LARConfig
    from asam_lib.patch import Patch

    grid = grid or sensitivity_settings()
    defaults = sensitivity_defaults()
    lar, patch_config = LARConfig(), Patch().config
    make = {
        "eps": lambda v: ASAM(lar=replace(lar, eps=v)),
        "K": lambda v: ASAM(lar=replace(lar, k=v)),
        "lambda_rank": lambda v: ASAM(settings=ASAMSettings(lambda_rank=v)),
        "T": lambda v: ASAM(lar=replace(lar, steps=v)),
        "layer": lambda v: ASAM(Patch(EditConfig(**{**patch_config.__dict__, "layer": v}))),
    }
    editors: dict[str, Editor] = {}
    for name, values in grid.items():
        for value in values:
            if include_defaults or str(value) != defaults[name]:
                editors[f"{name}={value}"] = make[name](value)
                if name == "layer":
                    editors[f"Patch layer={value}"] = Patch(EditConfig(**{**patch_config.__dict__, "layer": value}))
    return editors


def with_default_settings(sensitivity: pd.DataFrame, main: pd.DataFrame, defaults: dict[str, str] | None = None) -> pd.DataFrame:
    """``sensitivity`` rows plus, for every knob, the main run's ASAM rows on the same cases renamed
    "knob=default" (and Patch's renamed "Patch layer=default"): the default setting *is* the main table's
    editor, so the study does not edit with it twice. Works on metric rows and on timing rows."""
    defaults = defaults or sensitivity_defaults()
    same = main[main.task.isin(sensitivity.task.unique()) & main.seed.isin(sensitivity.seed.unique()) & main.case.isin(sensitivity.case.unique())]
    parts = [sensitivity]
    for name, value in defaults.items():
        parts.append(same[same.method == "ASAM"].assign(method=f"{name}={value}", group="sensitivity"))
    parts.append(same[same.method == "Patch"].assign(method=f"Patch layer={defaults['layer']}", group="sensitivity"))
    return pd.concat(parts, ignore_index=True)


def knob(name: str) -> tuple[str, str]:
    """("eps", "0.1") from "eps=0.1"; ("Patch layer", "2") from "Patch layer=2"."""
    key, _, value = name.partition("=")
    return key, value


# --- summaries --------------------------------------------------------------------------------------

GEN_METRICS = ("T-Gen", "I-Gen", "TI-Gen")


def gap_closure(summary: pd.DataFrame, method: str, base: str, by: tuple[str, ...] = ("task",)) -> pd.DataFrame:
    """Share of ``base``'s generality gap (1 - Gen) that ``method`` closes, per generality metric (NaN when
    the base has no gap). ``summary``: rows (``by``..., method, metric, mean) of the exact protocol."""
    pivot = summary.pivot_table(index=[*by, "metric"], columns="method", values="mean")
    pivot = pivot[pivot.index.get_level_values("metric").isin(GEN_METRICS)]
    gap = 1 - pivot[base]
    closed = (pivot[method] - pivot[base]) / gap.where(gap > 0)
    return pd.DataFrame({f"{base} gap": gap, f"{method} gap": 1 - pivot[method], "share closed": closed}).reset_index()


def distance_curve(members: pd.DataFrame, column: str, edges: list[float]) -> pd.DataFrame:
    """Share of evaluated members on the new answer per distance bin of ``column`` (fixed ``edges``; values
    outside them count in the outer bins), per method and seed: columns method, seed, bin, exact, n."""
    evaluated = members[members.kind != "anchor"].copy()
    labels = [f"{lo:.3g}-{hi:.3g}" for lo, hi in zip(edges[:-1], edges[1:])]
    values = evaluated[column].clip(edges[0], edges[-1])  # the outer edges may be rounded inwards
    evaluated["bin"] = pd.cut(values, edges, labels=labels, include_lowest=True)
    out = evaluated.groupby(["method", "seed", "bin"], observed=True).exact.agg(["mean", "size"]).reset_index()
    return out.rename(columns={"mean": "exact", "size": "n"})
