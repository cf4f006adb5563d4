"""The shipped checkpoint is the recipe's model and knows the world (on a small held-out sample)."""

import json

import pytest

from asam_lib.common import paths
from asam_lib.data.pretrain import TARGETS, PretrainConfig, knowledge_report, model_key
from asam_lib.data.world import World, WorldConfig
from asam_lib.mllm.model import ModelConfig, load_model
from asam_lib.mllm.prompting import PromptEncoder

SHIPPED = paths.CHECKPOINTS / "base"


def test_the_shipped_checkpoint_matches_the_default_recipe():
    meta = json.loads((SHIPPED / "asam_meta.json").read_text())
    assert meta["key"] == model_key(WorldConfig(), ModelConfig(), PretrainConfig())
    for name, target in TARGETS.items():
        assert meta["accuracy"][name] >= target


@pytest.fixture(scope="module")
def shipped():
    model, processor = load_model(SHIPPED)
    return model, PromptEncoder(processor)


def test_the_shipped_checkpoint_meets_the_accuracy_targets(shipped):
    model, encoder = shipped
    report = knowledge_report(model, encoder, World(), images_per_entity=1, seed=7)
    for name, target in TARGETS.items():
        assert report[name] >= target, (name, report[name])
