"""The study's jobs: timings split off, cases split over workers, and jobs run end to end in each mode."""

import pandas as pd
import pytest

from asam_lib.editors.editing import FTL
from asam_lib.editors.patch import Patch
from asam_lib.experiments.study import Job, run_jobs, split, split_timings


def test_split_timings_separates_wall_clock_rows():
    rows = pd.DataFrame({"metric": ["Rel", "seconds", "steps"], "value": [1.0, 0.2, 5.0]})
    kept, timings = split_timings(rows)
    assert list(kept.metric) == ["Rel", "steps"] and list(timings.metric) == ["seconds"]


def test_split_covers_the_cases_once():
    job = Job("main", "vqa", 0, 10, {"Patch": Patch()}, start=1)
    parts = split(job, 4)
    assert [(p.start, p.n_edits) for p in parts] == [(1, 3), (3, 5), (5, 8), (8, 10)]  # consecutive, sizes 2-3
    assert "cases 8-9" in repr(parts[-1])
    assert len(split(Job("main", "vqa", 0, 2, {}), 5)) == 2  # no empty parts
    with pytest.raises(ValueError, match="cannot be split"):
        split(Job("main", "vqa", 0, 10, {}, mode="sequential"), 2)


def test_a_job_runs_in_this_process_and_tags_its_rows():
    whole = Job("check", "vqa", 0, 3, {"Patch": Patch()})
    rows, members = run_jobs([whole], workers=1)
    assert rows.group.eq("check").all() and members.group.eq("check").all()
    assert rows.case.nunique() == 3 and set(members.kind) == {"anchor", "text", "image", "both"}
    parts, _ = run_jobs(split(whole, 2), workers=1)
    keep = ~rows.metric.eq("seconds")
    pd.testing.assert_frame_equal(
        parts[~parts.metric.eq("seconds")].reset_index(drop=True), rows[keep].reset_index(drop=True)
    )
    with pytest.raises(ValueError, match="unknown mode"):
        run_jobs([Job("check", "vqa", 0, 1, {"Patch": Patch()}, mode="parallel")], workers=1)


def test_a_job_on_a_model_folder_and_an_mmedit_file(tmp_path, small_world, tiny_parts):
    from asam_lib.data.benchmark import export_mmedit
    from asam_lib.data.records import load_records
    from asam_lib.editors.editing import EditConfig
    from asam_lib.experiments.mmedit_study import StudyError, prefix_cases
    from asam_lib.mllm.prompting import PromptEncoder

    model, processor = tiny_parts
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    data = export_mmedit(small_world, tmp_path / "data", "vqa")
    job = Job(
        "main",
        "vqa",
        0,
        3,
        {"FT-L": FTL(EditConfig(steps=2, layer=1))},
        model_folder=str(tmp_path / "model"),
        data=str(data),
    )
    assert "data" in repr(job)
    rows, members = run_jobs([job], workers=1)
    records = load_records(data)
    assert rows.case.nunique() == 3 and set(rows.case) <= {f"vqa-{r.index}" for r in records}
    assert set(members.kind) <= {"anchor", "text", "image", "both"} and members.latent_distance.notna().all()
    encoder = PromptEncoder(processor)
    first = prefix_cases(model, encoder, records, 2, seed=0)
    more = prefix_cases(model, encoder, records, 3, seed=0)
    assert [c.request.name for c in first] == [c.request.name for c in more[:2]]
    assert all(c.request.locality_support for c in more)  # from the pool: records that are never edited
    with pytest.raises(StudyError, match="half of them are the support pool"):
        prefix_cases(model, encoder, records, len(records), seed=0)


def test_the_predictive_mode_gives_one_row_per_edit():
    from asam_lib.editors.lar import LARConfig

    rows, members = run_jobs(
        [Job("predictive", "vqa", 0, 2, {"Patch": Patch()}, mode="predictive", lar=LARConfig(k=2, steps=1))], workers=1
    )
    assert len(rows) == 2 and members.empty
    assert {"lar_loss", "noise_loss", "lar_failure", "Unit"} <= set(rows.columns) and rows.group.eq("predictive").all()
