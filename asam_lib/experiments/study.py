"""The edit-and-evaluate study of notebook 04, run as independent jobs on worker processes.

A :class:`Job` is one (mode, task, seed, editors, edit count): single edits with rollback, or a sequential
run. Jobs are independent, so :func:`run_jobs` spreads them over worker processes
(:mod:`asam_lib.experiments.workers`). Each worker loads the base model and builds the edit cases once per (task,
seed, count) and returns tidy rows; the results do not depend on which worker ran a job or in which
order. The editors of the study are the method registry's (:mod:`asam_lib.editors.methods`), its ablations and
sensitivity grid :mod:`asam_lib.experiments.ablations`'; its summaries are :mod:`asam_lib.evaluation.summaries`'.

Wall-clock times are not reproducible, so they are split off into their own table
(:func:`split_timings`), written under ``build/`` rather than ``results/``.

Notebook 04 makes every job of its study with :func:`edit_study_jobs` and gets their tidy rows, run or read back from
``results/``, with :func:`study_rows`; its tables are :mod:`asam_lib.experiments.study_tables`', its figures
:mod:`asam_lib.figures.study_figures`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import pandas as pd

from asam_lib.common import paths
from asam_lib.data.case_cache import cases_folder
from asam_lib.editors import methods
from asam_lib.editors.editing import Editor, with_changes
from asam_lib.evaluation.harness import (
    EvaluationInputs,
    HarnessConfig,
    build_cases,
    run_sequential,
    run_single,
    save_table,
    tidy,
)
from asam_lib.experiments.ablations import CALIBRATED, HEADROOM, ablation_editors, budget_controls, editors
from asam_lib.experiments.sensitivity import sensitivity_editors
from asam_lib.experiments.workers import run_in_workers

TIMING_METRICS = ("seconds",)


@dataclass(frozen=True)
class Job:
    """One unit of work: the cases ``start`` to ``n_edits`` of (task, seed). ``editors``: method name -> editor;
    ``mode``: "single", "sequential" or "predictive" (notebook 02's variants-vs-unit study with LAR settings
    ``lar``, :func:`asam_lib.experiments.lar_study.predictive_study`); ``group``: a label copied into every row (e.g.
    "main", "ablation", "sensitivity"). Splitting a long job into ranges of cases (:func:`split`) spreads it over
    workers without building a case twice."""

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
    dtype: str = "float32"  # of the checkpoint's weights (see asam_lib.mllm.model.load_pretrained)
    device_map: str | None = None  # e.g. "cuda:0" or "auto" (None: the CPU)
    data: str | None = None  # an MMEdit-format file of the job's task (None: the embedded world's benchmark)
    image_root: str | None = None  # what the file's image paths are relative to (None: its folder)
    split: str = "report"  # the embedded world's edits: "report" or "dev" (asam_lib.evaluation.harness.in_split)
    hard_strength: float = 2.0  # of the cases' hard tier (HarnessConfig.hard_strength; 0: no hard tier, cheaper)
    firing_probe: int = 0  # sequential mode: where patches fire, on this many cases (harness.firing_rows)

    def __repr__(self) -> str:
        assets = "".join(
            f", {name} {value}" for name, value in [("model", self.model_folder), ("data", self.data)] if value
        )
        cases = f"cases {self.start}-{self.n_edits - 1}" if self.start else f"{self.n_edits} edits"
        split = "" if self.split == "report" else f", {self.split} split"
        split += "" if self.hard_strength else ", no hard tier"
        what = f"{self.group}, {self.mode}, {self.task}, seed {self.seed}, {cases}{split}"
        return f"Job({what}, {list(self.editors)}{assets})"


def split(job: Job, parts: int) -> list[Job]:
    """``job`` as ``parts`` jobs on consecutive ranges of its cases (not a sequential run: it depends on
    every earlier edit)."""
    if job.mode == "sequential":
        raise ValueError(f"{job}: a sequential run cannot be split")
    bounds = [job.start + round(i * (job.n_edits - job.start) / parts) for i in range(parts + 1)]
    return [replace(job, start=lo, n_edits=hi) for lo, hi in zip(bounds[:-1], bounds[1:]) if hi > lo]


@lru_cache(maxsize=2)
def _model(folder: str | None, dtype: str = "float32", device_map: str | None = None):
    from asam_lib.data.pretrain import base_model_folder
    from asam_lib.mllm.model import load_model, load_pretrained
    from asam_lib.mllm.prompting import PromptEncoder

    model, processor = load_pretrained(folder, dtype, device_map) if folder else load_model(base_model_folder())
    return model, PromptEncoder(processor)


@lru_cache(maxsize=2)
def _world():
    from asam_lib.data.world import World

    return World()


@lru_cache(maxsize=4)
def _known(model_key: tuple, task: str):
    from asam_lib.data.benchmark import exported_benchmark
    from asam_lib.data.records import load_records
    from asam_lib.evaluation.harness import known_records

    model, encoder = _model(*model_key)
    return known_records(model, encoder, load_records(exported_benchmark(_world(), task)))


@lru_cache(maxsize=4)
def _records(data: str, image_root: str | None, task: str):
    from asam_lib.data.records import load_records

    return load_records(data, image_root, task)


_CASES: dict[tuple, dict[int, object]] = {}


def _cases(job: Job):
    """Cases ``job.start`` to ``job.n_edits`` of its (task, seed), each kept once built in this process (cases are
    prefix-stable and independent, see :func:`asam_lib.evaluation.harness.build_cases`) and, for the embedded model, on
    disk for every process (:mod:`asam_lib.data.case_cache`); from the MMEdit file ``job.data`` if given
    (:func:`asam_lib.experiments.mmedit_study.prefix_cases`)."""
    model_key = (job.model_folder, job.dtype, job.device_map)
    model, encoder = _model(*model_key)
    if job.data is not None:
        from asam_lib.experiments.mmedit_study import prefix_cases

        return prefix_cases(model, encoder, _records(job.data, job.image_root, job.task), job.n_edits, job.seed)[
            job.start :
        ]
    built = _CASES.setdefault((model_key, job.task, job.seed, job.split, job.hard_strength), {})
    from asam_lib.data.pretrain import base_model_folder

    folder = cases_folder(base_model_folder()) if job.model_folder is None else None  # the embedded model's only
    for i in range(job.start, job.n_edits):
        if i not in built:
            config = HarnessConfig(task=job.task, n_edits=i + 1, split=job.split, hard_strength=job.hard_strength)
            built.update(
                enumerate(
                    build_cases(
                        model,
                        encoder,
                        _world(),
                        config,
                        seed=job.seed,
                        start=i,
                        known=_known(model_key, job.task),
                        cache=folder,
                    ),
                    start=i,
                )
            )
    return [built[i] for i in range(job.start, job.n_edits) if i in built]


_INPUTS: dict[tuple, EvaluationInputs] = {}


def _inputs(job: Job) -> EvaluationInputs | None:
    """The evaluation inputs every job of this process shares for its model (:class:`EvaluationInputs`: the
    locality references and the batches below the edit layer of the cases :func:`_cases` keeps). None for a job on
    an MMEdit file: its cases are built afresh per job, so each run keeps its own."""
    if job.data is not None:
        return None
    key = (job.model_folder, job.dtype, job.device_map)
    if key not in _INPUTS:
        _INPUTS[key] = EvaluationInputs(*_model(*key))
    return _INPUTS[key]


def run_job(job: Job) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run one job in this process: (metric rows, per-member rows), each tagged with ``job.group``."""
    model, encoder = _model(job.model_folder, job.dtype, job.device_map)
    cases = _cases(job)
    members: list[dict] = []
    if job.mode == "single":
        rows = run_single(
            model, encoder, job.editors, cases, seed=job.seed, task=job.task, members=members, inputs=_inputs(job)
        )
    elif job.mode == "sequential":
        frames = [
            run_sequential(
                model,
                encoder,
                name,
                editor,
                cases,
                seed=job.seed,
                checkpoints=job.checkpoints,
                task=job.task,
                firing_probe=job.firing_probe,
                inputs=_inputs(job),
            )
            for name, editor in job.editors.items()
        ]
        rows = pd.concat(frames, ignore_index=True)
    elif job.mode == "predictive":
        from asam_lib.experiments.lar_study import predictive_study

        rows = predictive_study(model, encoder, cases, job.editors, job.lar, seed=job.seed)
    else:
        raise ValueError(f"{job}: unknown mode {job.mode!r} (single, sequential or predictive)")
    return rows.assign(group=job.group), pd.DataFrame(members).assign(group=job.group)


def run_jobs(jobs: list[Job], workers: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``jobs`` on ``workers`` processes (1: in this process); concatenated rows in job order. A job that
    fails raises :class:`asam_lib.experiments.workers.JobError` naming it, with the traceback of the process that ran
    it."""
    outputs = run_in_workers(run_job, jobs, workers)
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


def predictive_jobs(editors: dict[str, Editor], seed: int, n_edits: int, lar, workers: int) -> list[Job]:
    """Notebook 02's predictive study (:func:`asam_lib.experiments.lar_study.predictive_study`) as jobs: each editor
    on ``n_edits`` VQA edits with LAR settings ``lar``, split over ``workers``; the standard unit only."""
    return [
        part
        for name, editor in editors.items()
        for part in split(
            Job("predictive", "vqa", seed, n_edits, {name: editor}, mode="predictive", lar=lar, hard_strength=0.0),
            workers,
        )
    ]


def sequential_study_editors() -> dict[str, Editor]:
    """Notebook 04's sequential study: ASAM's base editor (Patch), the sequential baseline (GRACE), paper-faithful
    ASAM, and this companion's option for sequential editing (:data:`asam_lib.experiments.ablations.CALIBRATED`:
    :data:`asam_lib.editors.asam.SEQUENTIAL_OPTION`)."""
    registered = {name: e for name, e in methods.editors().items() if name in ("Patch", "GRACE", "ASAM")}
    return registered | editors([CALIBRATED])


def sequential_study_jobs(
    seeds: list[int],
    n_sequential: int,
    n_sequential_every_seed: int,
    checkpoints: list[int],
    firing_probe: int,
    **assets,
) -> list[Job]:
    """The sequential study's jobs: one per (seed, editor of :func:`sequential_study_editors`) on VQA's standard
    tier, ``n_sequential`` edits on the first seed and ``n_sequential_every_seed`` on the others, every earlier edit
    re-evaluated at each of ``checkpoints``. ``assets``: :class:`Job`'s model and data fields."""
    if n_sequential_every_seed > n_sequential:
        raise ValueError("n_sequential_every_seed > n_sequential: the first seed's sequential run is the longest")
    return [
        Job(
            "sequential",
            "vqa",
            seed,
            n,
            {name: editor},
            mode="sequential",
            checkpoints=tuple(t for t in checkpoints if t <= n),
            hard_strength=0.0,  # the sequential study reads the standard tier only
            firing_probe=firing_probe,
            **assets,
        )
        for seed, n in [(s, n_sequential if s == seeds[0] else n_sequential_every_seed) for s in seeds]
        for name, editor in sequential_study_editors().items()
    ]


def edit_study_jobs(
    seeds: list[int],
    tasks: list[str],
    n_edits: int,
    n_ablation: int,
    n_sensitivity: int,
    n_sequential: int,
    n_sequential_every_seed: int,
    checkpoints: list[int],
    firing_probe: int,
    data: dict[str, str] | None = None,
    memory: dict | None = None,
    **assets,
) -> list[Job]:
    """Every job of notebook 04, longest first so that no worker is left with one at the end: the sequential study
    (:func:`sequential_study_jobs`, VQA); the main table (the registered editors and Patch at ASAM's full budget,
    :func:`asam_lib.experiments.ablations.budget_controls`) on ``n_edits`` edits per task and seed; the ablations (VQA)
    on the main table's first ``n_ablation`` edits, whose ASAM is the main table's; the sensitivity grid (VQA,
    ``n_sensitivity`` edits); and, on the embedded world only, where RCSL has room to act
    (:data:`asam_lib.experiments.ablations.HEADROOM`, development edits of the first seed). ``data``: task -> MMEdit
    file (None: the embedded world); ``memory``: edit-loop memory options of every editor
    (:func:`asam_lib.editors.editing.with_changes`); ``assets``: :class:`Job`'s model fields."""
    if n_ablation > n_edits:
        raise ValueError(f"n_ablation {n_ablation} > n_edits {n_edits}: the ablations reuse the main table's edits")
    data = data or {}
    missing = [task for task in tasks if data and task not in data]
    if missing:
        raise ValueError(f"data names no MMEdit file for task(s) {missing}: give one per task, or set tasks")
    ablation = ablation_editors()
    jobs = sequential_study_jobs(
        seeds, n_sequential, n_sequential_every_seed, checkpoints, firing_probe, data=data.get("vqa"), **assets
    )
    jobs += [
        Job("main", task, seed, n_edits, methods.editors() | budget_controls(), data=data.get(task), **assets)
        for task in reversed(tasks)
        for seed in seeds
    ]
    jobs += [
        Job("ablation", "vqa", seed, n_ablation, {name: editor}, data=data.get("vqa"), **assets)
        for seed in seeds
        for name, editor in ablation.items()
        if name != "ASAM"
    ]
    jobs += [
        Job("sensitivity", "vqa", seed, n_sensitivity, {name: editor}, data=data.get("vqa"), **assets)
        for seed in seeds
        for name, editor in sensitivity_editors().items()
    ]
    if not data:
        jobs += [
            Job("headroom", "vqa", seeds[0], n_ablation, {name: ablation[name]}, split="dev", **assets)
            for name in HEADROOM
        ]
    return [replace(job, editors=with_changes(job.editors, memory or {})) for job in jobs]


@dataclass
class StudyRows:
    """The rows of notebook 04's study, as saved under ``results/`` (:func:`asam_lib.evaluation.harness.tidy`):
    ``single`` (single edits: main, ablation, sensitivity, headroom), ``sequential`` (with its ``T`` as an integer),
    ``members`` (one row per evaluated unit member, with its edit's ``case``) and the wall-clock ``timings``
    (this machine's, under ``build/``; empty where the edits did not run here)."""

    single: pd.DataFrame
    sequential: pd.DataFrame
    members: pd.DataFrame
    timings: pd.DataFrame


STUDY_TABLES = {"single": "per_edit", "sequential": "sequential", "members": "members"}  # field -> 04_<name>.csv


def study_rows(
    jobs: list[Job], workers: int, folder: Path, recompute: bool = True, save: bool = False, prefix: str = "04"
) -> StudyRows:
    """Run ``jobs`` on ``workers`` processes (:func:`run_jobs`) and tidy their rows, or, without ``recompute`` and
    when every table exists, read them back from ``folder`` (``prefix_<name>.csv``, :data:`STUDY_TABLES`).
    ``save``: write the tables to ``folder`` and the timings under ``build/timings/``."""
    files = {field: folder / f"{prefix}_{name}.csv" for field, name in STUDY_TABLES.items()}
    timing_file = paths.BUILD / "timings" / f"{prefix}_timings.csv"
    if recompute or not all(path.exists() for path in files.values()):
        rows, members = run_jobs(jobs, workers=workers)
        rows, timings = split_timings(rows)
        tables = {
            "single": tidy(rows[rows.group != "sequential"].drop(columns=["T", "edit_index"], errors="ignore")),
            "sequential": tidy(rows[rows.group == "sequential"]),
            "members": tidy(members.drop(columns=["config"]).round(4)),
        }
        if save:
            for field, name in STUDY_TABLES.items():
                save_table(tables[field], f"{prefix}_{name}", folder)
            save_timings(timings, f"{prefix}_timings")
    else:
        tables = {field: pd.read_csv(path) for field, path in files.items()}
        # wall-clock times are not committed: none on a fresh clone
        timings = pd.read_csv(timing_file) if timing_file.exists() else tables["single"].iloc[:0]
    tables["sequential"]["T"] = tables["sequential"]["T"].astype(int)  # every sequential row has its T
    return StudyRows(**tables, timings=timings)
