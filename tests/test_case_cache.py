"""Edit cases kept on disk: read back they give the same edits and numbers; a changed model gets a new folder."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from asam_lib.common import paths
from asam_lib.data import case_cache
from asam_lib.data.pretrain import base_model, base_model_folder
from asam_lib.data.world import World
from asam_lib.editors.patch import Patch
from asam_lib.evaluation import harness
from asam_lib.evaluation.harness import HarnessConfig, build_cases, run_single
from asam_lib.mllm.prompting import PromptEncoder

SMALL = {"n_support": 2, "n_locality": 2, "n_memory": 4, "unit_text": 3, "unit_image": 3, "unit_both": 3}


@pytest.fixture()
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "CACHE", tmp_path)
    case_cache.cases_folder.cache_clear()
    yield tmp_path
    case_cache.cases_folder.cache_clear()


def _same(a, b) -> bool:
    """Units with the same members (questions, images, distances: ``nan`` where none were measured)."""
    return repr(a.members) == repr(b.members) and [m.image for m in a.members] == [m.image for m in b.members]


def test_a_kept_value_is_built_once_and_read_back(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return {"value": [1.5, "x"]}

    assert case_cache.cached(tmp_path, {"a": 1}, build) == {"value": [1.5, "x"]}
    assert case_cache.cached(tmp_path, {"a": 1}, build) == {"value": [1.5, "x"]}
    assert len(calls) == 1
    case_cache.cached(tmp_path, {"a": 2}, build)  # another key is another value
    assert len(calls) == 2
    case_cache.cached(None, {"a": 1}, build)  # no folder: always built
    assert len(calls) == 3


def test_cases_read_from_the_cache_give_the_same_edits_and_numbers(cache_root):
    model, processor = base_model()
    encoder, world = PromptEncoder(processor), World()
    folder = case_cache.cases_folder(base_model_folder())
    config = HarnessConfig(n_edits=2, **SMALL)
    fresh = build_cases(model, encoder, world, config, seed=3)
    assert not list(folder.glob("*.pkl"))
    built = build_cases(model, encoder, world, config, seed=3, cache=folder)
    assert len(list(folder.glob("*.pkl"))) == 4  # each case and, apart, its hard unit
    read = build_cases(model, encoder, world, config, seed=3, cache=folder)
    for a, b in zip(fresh, read):
        assert all(_same(getattr(a, u), getattr(b, u)) for u in ("unit", "hard_unit", "binary_unit"))
        assert a.request.memory == b.request.memory and a.locality == b.locality
    # without the hard tier, the same case (read back, no hard unit)
    plain = build_cases(
        model, encoder, world, HarnessConfig(n_edits=2, hard_strength=0.0, **SMALL), seed=3, cache=folder
    )
    assert len(list(folder.glob("*.pkl"))) == 4
    assert all(c.hard_unit is None and _same(c.unit, b.unit) for c, b in zip(plain, built))
    rows = [run_single(model, encoder, {"Patch": Patch()}, cases[:1], seed=0) for cases in (fresh, read)]
    rows = [r[r.metric != "seconds"].reset_index(drop=True) for r in rows]
    pd.testing.assert_frame_equal(*rows)


def test_another_model_gets_its_own_folder_and_the_old_one_goes(cache_root, tmp_path_factory):
    one, two = tmp_path_factory.mktemp("model-one"), tmp_path_factory.mktemp("model-two")
    (one / "model.safetensors").write_bytes(b"one")
    (two / "model.safetensors").write_bytes(b"two")
    first = case_cache.cases_folder(one)
    (first / "case.pkl").write_bytes(b"")
    assert case_cache.cases_folder(one) == first
    second = case_cache.cases_folder(two)
    assert second != first and second.exists() and not first.exists()


def test_a_kept_case_is_keyed_by_its_world(monkeypatch, small_world):
    keys = []
    monkeypatch.setattr(harness, "cached", lambda folder, key, build: keys.append(key))
    record = SimpleNamespace(index=3, src="q", pred="a", alt="b", image_path="x.png")
    other = World(replace(small_world.config, seed=small_world.config.seed + 1))
    config = HarnessConfig(hard_strength=0.0)
    for world in (small_world, small_world, other):
        harness.world_case(None, None, world, config, record, seed=0, cache=Path("unused"))
    assert keys[0] == keys[1] and keys[0]["world"] != keys[2]["world"]
