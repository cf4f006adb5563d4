import hashlib
from pathlib import Path

from asam_lib.data.benchmark import export_mmedit, locality_pools
from asam_lib.data.world import RELATIONS, World, WorldConfig


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(folder)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_same_seed_gives_the_same_bytes(tmp_path):
    config = WorldConfig(n_entities=5, n_text_entities=4)
    export_mmedit(World(config), tmp_path / "a")
    export_mmedit(World(config), tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_another_seed_gives_another_world(tmp_path):
    export_mmedit(World(WorldConfig(seed=0, n_entities=5)), tmp_path / "a")
    export_mmedit(World(WorldConfig(seed=1, n_entities=5)), tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "b")


def test_heldout_phrasings_recombine_known_parts(small_world):
    for relation, questions in small_world.questions.items():
        train = [q for q in questions if not q.heldout]
        held = [q for q in questions if q.heldout]
        assert held and train
        assert not {q.render() for q in held} & {q.render() for q in train}
        for k in range(3):
            assert {q.parts[k] for q in held} <= {q.parts[k] for q in train}, relation


def test_entities_are_distinct_and_facts_are_valid(small_world):
    looks = {(e.shape, e.colour, e.pattern) for e in small_world.entities}
    assert len(looks) == len(small_world.entities)
    for e in small_world.entities + small_world.text_entities:
        for relation, answer in e.facts.items():
            assert answer in RELATIONS[relation]["answers"]


def test_image_streams_never_share_an_image(small_world):
    pretrain = {small_world.image(0, "pretrain", k).tobytes() for k in range(20)}
    evaluation = {small_world.image(0, "eval", k).tobytes() for k in range(20)}
    assert len(pretrain) == 20 and not pretrain & evaluation


def test_locality_pools_are_disjoint():
    pools = locality_pools(World())
    assert not set(pools.text_support) & set(pools.text_eval)
    assert not set(pools.image_support) & set(pools.image_eval)
    assert pools.text_support and pools.text_eval and pools.image_support and pools.image_eval


def test_every_word_is_in_the_vocabulary(small_world, tiny_encoder):
    for relation in small_world.questions:
        for q in small_world.phrasings(relation):
            tiny_encoder.prompt_ids(q.render(), True)


def test_images_are_rendered_once_and_equal_a_fresh_render(monkeypatch):
    import numpy as np

    import asam_lib.data.world as world_module

    world = World()
    first = world.image(3, "eval", 5)
    assert world.image(3, "eval", 5) is first
    fresh = world._render(3, "eval", 5, world.image_params(3, "eval", 5))
    assert np.array_equal(np.asarray(first), np.asarray(fresh))
    chosen = world.image(3, "eval", 5, params=world.image_params(3, "eval", 6))
    assert chosen is not first  # explicit params always render
    monkeypatch.setattr(world_module, "IMAGE_CACHE_SIZE", 2)
    small = World()
    a = small.image(0, "eval", 0)
    small.image(0, "eval", 1)
    small.image(0, "eval", 0)  # refreshes image 0
    small.image(0, "eval", 2)  # evicts image 1, the least recently used
    assert set(small._images) == {(0, "eval", 0, None), (0, "eval", 2, None)} and small.image(0, "eval", 0) is a


def test_stronger_transforms_stay_valid_and_strength_one_draws_are_unchanged():
    import numpy as np

    from asam_lib.data.render import PARAM_RANGES, VALID_RANGES, sample_params

    for seed in range(200):
        params = sample_params(np.random.default_rng(seed), strength=3.0).to_dict()
        assert all(low <= params[name] <= high for name, (low, high) in VALID_RANGES.items())
        rng, reference = np.random.default_rng(seed), np.random.default_rng(seed)
        drawn = sample_params(rng).to_dict()
        expected = {n: round(c + h * reference.uniform(-1.0, 1.0), 6) for n, (c, h) in PARAM_RANGES.items()}
        assert drawn == expected  # strength 1 never reaches the clip, so the standard tier's images are unchanged
    world = World()
    assert world.image(3, "hard", 5, strength=2.0) is world.image(3, "hard", 5, strength=2.0)
    assert world.image(3, "hard", 5, strength=2.0) is not world.image(3, "hard", 5)
