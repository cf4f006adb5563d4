"""Worker processes: whatever goes wrong in a job reaches the caller as one JobError naming the job and
carrying the worker's own traceback, and artefacts that several workers build at once (the exported
benchmark) are never seen half-written."""

import multiprocessing
import os
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from asam_lib.common import cache
from asam_lib.data.records import MissingImage, load_records
from asam_lib.experiments.study import Job, run_jobs
from asam_lib.experiments.workers import JobError
from asam_lib.mllm.architectures import UnsupportedArchitecture


class _ExitsWhenUnpickled:
    """An editor that kills the process that unpickles it: a worker dying without a Python error."""

    def __reduce__(self):
        return os._exit, (3,)


def test_an_exception_in_a_worker_names_the_job_and_carries_its_traceback():
    job = Job("check", "vqa", 0, 1, {}, mode="no such mode")
    with pytest.raises(JobError) as caught:
        run_jobs([job], workers=2)
    message = str(caught.value)
    assert repr(job) in message and "Traceback (most recent call last)" in message
    assert "in run_job" in message and "unknown mode 'no such mode'" in message


def test_a_worker_that_dies_names_the_job():
    job = Job("check", "vqa", 0, 1, {"dies": _ExitsWhenUnpickled()})
    with pytest.raises(JobError, match="died without a Python error") as caught:
        run_jobs([job], workers=2)
    assert repr(job) in str(caught.value)


def test_a_job_that_cannot_be_pickled_names_the_job():
    job = Job("check", "vqa", 0, 1, {"lambda": lambda: None})
    with pytest.raises(JobError, match="pickle") as caught:
        run_jobs([job], workers=2)
    assert repr(job) in str(caught.value)


def test_in_process_errors_name_the_job():
    job = Job("check", "vqa", 0, 1, {}, mode="no such mode")
    with pytest.raises(ValueError) as caught:
        run_jobs([job], workers=1)
    assert f"while running {job!r}" in caught.value.__notes__


def test_errors_with_their_own_arguments_survive_pickling():
    missing = MissingImage("data.json", 3, "image", "x.png not found", "set image_root=...")
    assert str(pickle.loads(pickle.dumps(missing))) == str(missing)
    unsupported = UnsupportedArchitecture("FooForBar", "config.json")
    assert str(pickle.loads(pickle.dumps(unsupported))) == str(unsupported)


def _export_while_reading(task: str) -> int:
    """In a worker: export ``task`` (its images are the vqa task's) once the reader has begun, or read every vqa
    image over and over until the caption task is exported."""
    import time

    from asam_lib.data.benchmark import exported_benchmark
    from asam_lib.data.world import World

    vqa = exported_benchmark(World(), "vqa")
    reading = vqa.parent.parent / "reading"  # outside the benchmark's folder, which the export rewrites
    deadline = time.monotonic() + 120
    if task == "caption":
        while not reading.exists() and time.monotonic() < deadline:  # the export must overlap the reads
            time.sleep(0.01)
        exported_benchmark(World(), "caption")
        return 0
    reads = 0
    reading.touch()  # the reads begin: the exporter may start
    while time.monotonic() < deadline:
        for record in load_records(vqa):
            record.image("image")
            reads += 1
        if (vqa.parent / "caption.json").exists():
            break
    return reads


def test_exporting_one_task_while_a_worker_reads_another_never_shows_a_half_written_image(tmp_path, monkeypatch):
    """The cause of notebook 04's intermittent failure: on a fresh clone, one worker exported the caption
    task and rewrote the image files the other worker was reading for its VQA job."""
    from asam_lib.data.benchmark import exported_benchmark
    from asam_lib.data.world import World

    monkeypatch.setenv("ASAM_CACHE", str(tmp_path))
    monkeypatch.setattr("asam_lib.common.paths.CACHE", tmp_path)
    exported_benchmark(World(), "vqa")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
        reads, exported = pool.map(_export_while_reading, ["vqa", "caption"])
    assert reads > 0 and exported == 0
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "no temporary file is left behind"


def test_write_atomically_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "table.txt"
    target.write_text("old")

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.write_atomically(target, fails)
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
