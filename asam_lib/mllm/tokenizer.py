"""The word-level tokenizer of the embedded model, wrapped as a real ``PreTrainedTokenizerFast``."""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS, IMAGE = "<pad>", "<unk>", "<s>", "</s>", "<image>"
CHAT_WORDS = ("user", "assistant", ":")


def build_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """A lower-casing, whitespace/punctuation-splitting word-level tokenizer over ``words``.

    Ids 0-4 are ``<pad> <unk> <s> </s> <image>``; a BOS token is prepended to every encoded text, as
    Llama does. The vocabulary order is fixed by sorting, so the same words give the same ids.
    """
    specials = [PAD, UNK, BOS, EOS, IMAGE]
    vocab_words = sorted(set(words) | set(CHAT_WORDS))
    vocab = {tok: i for i, tok in enumerate(specials + vocab_words)}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(IMAGE, behavior="isolated"), pre_tokenizers.Whitespace()]
    )
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    core.add_special_tokens([PAD, UNK, BOS, EOS, IMAGE])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        extra_special_tokens={"image_token": IMAGE},
        padding_side="right",
        model_max_length=256,
    )
