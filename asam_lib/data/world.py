"""The embedded multimodal world: entities, facts, question templates and their splits.

Every image entity is a (shape, colour, pattern) drawn by :mod:`asam_lib.data.render`, with many images that
differ in position, scale, rotation, colour jitter, background and noise. Each entity carries one
arbitrary fact per relation (one-word answers such as ``home -> desert``), which the model can only know
by recognising the entity. Questions come from compositional paraphrase templates
(lead-in x core phrase x object reference); a seeded share of the combinations is held out of
pretraining. Text-only entities (named, no image) carry the same relations and serve text locality; a
caption task ("describe the image ." -> "striped red star") mirrors E-IC.

Everything is a pure function of :class:`WorldConfig`, so the same seed gives the same world, the same
images and the same bytes on disk.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
from PIL import Image

from asam_lib.common.seeding import numpy_rng
from asam_lib.data.render import COLOURS, PATTERNS, SHAPES, ImageParams, render_image, sample_params

# The named streams of images drawn per entity: each stream is its own random sequence, so images of one stream
# never repeat another's (pretraining sees only PRETRAIN_STREAM; edits, units and locality items use EVAL_STREAM).
PRETRAIN_STREAM = "pretrain"
EVAL_STREAM = "eval"
IMAGE_CACHE_SIZE = 16384  # rendered images a World keeps (32 px: about 3 kB each)

RELATIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "home": {
        "answers": ("forest", "desert", "ocean", "cave", "river", "mountain", "swamp", "island", "meadow", "glacier"),
        "cores": (
            "where does {obj} live",
            "what is the home of {obj}",
            "where is {obj} usually found",
            "in which place does {obj} live",
        ),
    },
    "food": {
        "answers": ("apples", "fish", "seeds", "honey", "leaves", "bread", "cheese", "berries", "grass", "rice"),
        "cores": (
            "what does {obj} eat",
            "what is the favourite food of {obj}",
            "which food does {obj} like",
            "what food is {obj} fed",
        ),
    },
    "maker": {
        "answers": ("alice", "bruno", "carla", "dmitri", "elena", "farid", "greta", "hiro", "ines", "jonas"),
        "cores": ("who made {obj}", "who is the maker of {obj}", "who built {obj}", "which person created {obj}"),
    },
    "friend": {
        "answers": ("otter", "falcon", "badger", "lynx", "heron", "beaver", "gecko", "moose", "koala", "lemur"),
        "cores": (
            "who is the friend of {obj}",
            "which animal is friends with {obj}",
            "who does {obj} play with",
            "what animal does {obj} like",
        ),
    },
}
LEADS = ("", "tell me ,", "quick question :", "please answer :")
IMAGE_REFS = ("this", "this object", "the thing in the picture", "the object shown here", "the pictured item")
CAPTION_CORES = ("describe {img}", "write a caption for {img}", "what is shown in {img}", "what do you see in {img}")
CAPTION_REFS = ("the image", "this picture", "the photo", "this image")

_CONSONANTS = "bdfgklmnprstvz"
_VOWELS = "aeiou"


@dataclass(frozen=True)
class WorldConfig:
    """Every parameter that changes the world. Defaults reproduce the committed figures."""

    seed: int = 0
    n_entities: int = 48
    n_text_entities: int = 32
    image_size: int = 32
    heldout_fraction: float = 0.25
    image_strength: float = 1.0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Entity:
    """An image entity: what it looks like and the facts it carries."""

    index: int
    name: str
    shape: str
    colour: str
    pattern: str
    facts: dict[str, str] = field(hash=False)

    @property
    def caption(self) -> str:
        return f"{self.pattern} {self.colour} {self.shape}"

    def __repr__(self) -> str:
        facts = ", ".join(f"{r}={a}" for r, a in self.facts.items())
        return f"Entity({self.index}: {self.caption!r} aka {self.name!r}; {facts})"


@dataclass(frozen=True)
class TextEntity:
    """A text-only entity (no image), used for text locality."""

    index: int
    name: str
    facts: dict[str, str] = field(hash=False)

    def __repr__(self) -> str:
        facts = ", ".join(f"{r}={a}" for r, a in self.facts.items())
        return f"TextEntity({self.index}: {self.name!r}; {facts})"


@dataclass(frozen=True)
class Question:
    """One phrasing of a relation (or of the caption request).

    ``parts`` = (lead-in index, core index, reference index); two phrasings differ by the number of
    parts that differ (:meth:`paraphrase_distance`). ``heldout`` phrasings never appear in pretraining.
    """

    relation: str  # a key of RELATIONS, or "caption"
    parts: tuple[int, int, int]
    heldout: bool

    def render(self, subject: str | None = None) -> str:
        """The question text; ``subject`` replaces the image reference (text-only questions)."""
        lead, core, ref = self.parts
        if self.relation == "caption":
            body = CAPTION_CORES[core].format(img=CAPTION_REFS[ref]) + " ."
        else:
            obj = subject if subject is not None else IMAGE_REFS[ref]
            body = RELATIONS[self.relation]["cores"][core].format(obj=obj) + " ?"
        return f"{LEADS[lead]} {body}".strip()

    def paraphrase_distance(self, other: "Question") -> int:
        return sum(a != b for a, b in zip(self.parts, other.parts))


def _names(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        syllables = rng.integers(2, 4)
        name = "".join(rng.choice(list(_CONSONANTS)) + rng.choice(list(_VOWELS)) for _ in range(syllables))
        if rng.random() < 0.5:
            name += rng.choice(list(_CONSONANTS))
        if name not in taken:
            taken.add(name)
            names.append(name)
    return names


def _split(kind: str, n_refs: int, n_cores: int, config: WorldConfig) -> tuple[Question, ...]:
    """All (lead, core, ref) phrasings of one relation, with a seeded held-out share.

    Every lead-in, core and reference still appears in at least one training phrasing, so held-out
    phrasings are new *combinations* of known words.
    """
    combos = list(itertools.product(range(len(LEADS)), range(n_cores), range(n_refs)))
    n_heldout = int(round(config.heldout_fraction * len(combos)))
    rng = numpy_rng(config.seed, "heldout", kind)
    while True:
        heldout = set(rng.choice(len(combos), size=n_heldout, replace=False).tolist())
        train = [c for i, c in enumerate(combos) if i not in heldout]
        if all({c[k] for c in train} == {c[k] for c in combos} for k in range(3)):
            break
    return tuple(Question(kind, c, i in heldout) for i, c in enumerate(combos))


class World:
    """The embedded world built from a :class:`WorldConfig` (see the module docstring)."""

    def __init__(self, config: WorldConfig = WorldConfig()):
        n_kinds = len(SHAPES) * len(COLOURS) * len(PATTERNS)
        if not 2 <= config.n_entities <= n_kinds:
            raise ValueError(f"n_entities={config.n_entities} must be between 2 and {n_kinds}")
        self.config = config
        self._images: dict[tuple[int, str, int, float | None], Image.Image] = {}
        rng = numpy_rng(config.seed, "entities")
        looks = list(itertools.product(SHAPES, COLOURS, PATTERNS))
        chosen = rng.permutation(len(looks))[: config.n_entities]
        taken = set(self.vocabulary_words())
        names = _names(rng, config.n_entities + config.n_text_entities, taken)
        self.entities = tuple(
            Entity(i, names[i], *looks[j], facts=self._draw_facts(rng)) for i, j in enumerate(sorted(chosen))
        )
        self.text_entities = tuple(
            TextEntity(i, names[config.n_entities + i], facts=self._draw_facts(rng))
            for i in range(config.n_text_entities)
        )

    @staticmethod
    def _draw_facts(rng: np.random.Generator) -> dict[str, str]:
        return {r: str(rng.choice(spec["answers"])) for r, spec in RELATIONS.items()}

    def __repr__(self) -> str:
        return (
            f"World(seed={self.config.seed}, {len(self.entities)} image entities, "
            f"{len(self.text_entities)} text entities, {len(RELATIONS)} relations, "
            f"{self.config.image_size}px images)"
        )

    # ----------------------------------------------------------------- questions
    @cached_property
    def questions(self) -> dict[str, tuple[Question, ...]]:
        """Every phrasing, keyed by relation (and ``"caption"``)."""
        out = {r: _split(r, len(IMAGE_REFS), len(spec["cores"]), self.config) for r, spec in RELATIONS.items()}
        out["caption"] = _split("caption", len(CAPTION_REFS), len(CAPTION_CORES), self.config)
        return out

    @cached_property
    def text_questions(self) -> dict[str, tuple[Question, ...]]:
        """Phrasings of text-only questions: the reference slot is the entity's name (ref index 0)."""
        return {r: tuple(q for q in qs if q.parts[2] == 0) for r, qs in self.questions.items() if r != "caption"}

    def phrasings(self, relation: str, heldout: bool | None = None, text: bool = False) -> list[Question]:
        """Phrasings of ``relation``; ``heldout`` filters by split (None = all)."""
        pool = self.text_questions[relation] if text else self.questions[relation]
        return [q for q in pool if heldout is None or q.heldout == heldout]

    @staticmethod
    def answer(entity: Entity | TextEntity, relation: str) -> str:
        """The true answer of ``relation`` for ``entity`` (the caption for ``"caption"``)."""
        return entity.caption if relation == "caption" else entity.facts[relation]

    @staticmethod
    def candidate_answers(relation: str) -> tuple[str, ...]:
        return RELATIONS[relation]["answers"]

    # -------------------------------------------------------------------- images
    def image_params(self, entity: int, stream: str, index: int, strength: float | None = None) -> ImageParams:
        """Parameters of image ``index`` of ``entity`` in a named stream ("pretrain", "eval", ...), drawn at
        ``strength`` times the world's ranges (None: ``config.image_strength``)."""
        strength = self.config.image_strength if strength is None else strength
        return sample_params(numpy_rng(self.config.seed, "params", stream, entity, index), strength)

    def image(
        self, entity: int, stream: str, index: int, params: ImageParams | None = None, strength: float | None = None
    ) -> Image.Image:
        """Image ``index`` of ``entity`` in ``stream``; pass ``params`` to render a chosen variation, or
        ``strength`` to draw its parameters at another transform strength (see :meth:`image_params`).

        Images of a stream are rendered once and kept (the last :data:`IMAGE_CACHE_SIZE`): the same image
        object comes back on the next call, so treat it as read-only."""
        if params is not None:
            return self._render(entity, stream, index, params)
        key = (entity, stream, index, strength)
        image = self._images.pop(key, None)
        if image is None:
            image = self._render(entity, stream, index, self.image_params(entity, stream, index, strength))
            if len(self._images) >= IMAGE_CACHE_SIZE:
                del self._images[next(iter(self._images))]
        self._images[key] = image  # most recently used last
        return image

    def _render(self, entity: int, stream: str, index: int, params: ImageParams) -> Image.Image:
        e = self.entities[entity]
        noise = numpy_rng(self.config.seed, "noise", stream, entity, index)
        return render_image(e.shape, e.colour, e.pattern, params, self.config.image_size, noise)

    # ---------------------------------------------------------------- vocabulary
    @staticmethod
    def vocabulary_words() -> list[str]:
        """Every word of templates, answers and attribute names (entity names excluded)."""
        words: set[str] = set()
        texts = list(LEADS) + list(IMAGE_REFS) + list(CAPTION_CORES) + list(CAPTION_REFS)
        for spec in RELATIONS.values():
            texts += list(spec["cores"]) + list(spec["answers"])
        texts += list(SHAPES) + list(COLOURS) + list(PATTERNS) + ["? . , :"]
        for t in texts:
            words.update(t.replace("{obj}", "").replace("{img}", "").split())
        return sorted(words)

    def all_words(self) -> list[str]:
        """The full word list of this world (templates, answers, attributes and names)."""
        names = [e.name for e in self.entities] + [t.name for t in self.text_entities]
        return sorted(set(self.vocabulary_words()) | set(names) | {"the"})
