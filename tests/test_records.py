import json

import pytest

from asam_lib.data.benchmark import export_mmedit
from asam_lib.data.records import MalformedRecord, MissingImage, load_records
from asam_lib.data.units import unit_from_record

GOOD = {
    "src": "what is in the image ?",
    "pred": "dog",
    "alt": "cat",
    "rephrase": "what does the picture show ?",
    "image": "img/a.png",
    "image_rephrase": "img/b.png",
    "loc": "nq question: who wrote hamlet",
    "loc_ans": "shakespeare",
    "m_loc": "img/a.png",
    "m_loc_q": "what colour is it ?",
    "m_loc_a": "red",
}


@pytest.fixture
def mmedit_dir(tmp_path, small_world):
    (tmp_path / "img").mkdir()
    small_world.image(0, "eval", 0).save(tmp_path / "img" / "a.png")
    small_world.image(0, "eval", 1).save(tmp_path / "img" / "b.png")
    return tmp_path


def _write(folder, records):
    path = folder / "edits.json"
    path.write_text(json.dumps(records))
    return path


def test_a_real_mmedit_record_loads_unchanged(mmedit_dir):
    (record,) = load_records(_write(mmedit_dir, [GOOD]))
    assert (record.task, record.src, record.alt, record.pred) == ("vqa", GOOD["src"], "cat", "dog")
    assert record.image("image_rephrase").size == (32, 32)
    unit = unit_from_record(record)
    assert [m.kind for m in unit.members] == ["anchor", "text", "image", "both"]


def test_the_exported_world_loads_with_the_same_loader(tmp_path, small_world):
    records = load_records(export_mmedit(small_world, tmp_path, "caption"))
    assert len(records) == len(small_world.entities)
    assert all(r.task == "caption" and r.alt != r.pred for r in records)


@pytest.mark.parametrize(
    "change, error, field",
    [
        ({"alt": None}, MalformedRecord, "alt"),  # missing field (None = delete)
        ({"alt": ""}, MalformedRecord, "alt"),  # empty target
        ({"src": 42}, MalformedRecord, "src"),  # wrong type
        ({"task": "video"}, MalformedRecord, "task"),
        ({"image_rephrase": "img/nowhere.png"}, MissingImage, "image_rephrase"),
    ],
)
def test_a_bad_record_names_file_index_and_field(mmedit_dir, change, error, field):
    bad = dict(GOOD)
    for key, value in change.items():
        if value is None:
            del bad[key]
        else:
            bad[key] = value
    path = _write(mmedit_dir, [GOOD, bad])
    with pytest.raises(error) as caught:
        load_records(path)
    message = str(caught.value)
    assert str(path) in message and "record 1" in message and repr(field) in message
    assert caught.value.index == 1 and caught.value.field == field


def test_a_file_that_is_not_a_list_is_rejected(mmedit_dir):
    with pytest.raises(MalformedRecord, match="expected a JSON list"):
        load_records(_write(mmedit_dir, GOOD))


def test_an_unreadable_image_fails_when_read(mmedit_dir):
    (mmedit_dir / "img" / "a.png").write_bytes(b"not a png")
    (record,) = load_records(_write(mmedit_dir, [GOOD]))
    with pytest.raises(MissingImage, match="not a readable image"):
        record.image("image")
