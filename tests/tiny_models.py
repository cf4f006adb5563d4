"""Tiny, randomly initialised models of every supported architecture, with processors built around
tiny tokenizers (nothing can be downloaded here).

Each architecture gets the tokenizer family of its real checkpoints (SentencePiece-style BPE with a BOS
token for the Llama/Mistral-based LLaVA-1.5 and LLaVA-NeXT; byte-level BPE without BOS for the
Qwen2-based OneVision and Qwen2-VL), trained in milliseconds on the world's words, and a chat
template written here to mirror the real one. A real checkpoint brings its own tokenizer and template.

To cover a new architecture in the end-to-end tests, add a builder to :data:`BUILDERS`.
"""

from __future__ import annotations

import importlib.util
import string
from dataclasses import dataclass

import torch
import transformers
from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessorPil,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessorPil,
    LlavaOnevisionProcessor,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
    Qwen2VLProcessor,
    SiglipVisionConfig,
)

SIZE = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
PINPOINTS = [[16, 32], [32, 16], [32, 32]]

# Chat templates mirroring the real checkpoints' (llava-hf/llava-1.5-7b-hf, llava-v1.6-mistral-7b-hf,
# llava-onevision-qwen2-7b-ov-hf, Qwen/Qwen2-VL-7B-Instruct), for one user turn of images + text.
_IMAGES = "{% for c in m['content'] if c['type'] == 'image' %}"
_TEXTS = "{% for c in m['content'] if c['type'] == 'text' %}"
TEMPLATES = {
    "llava": "{% for m in messages %}{{ m['role'].upper() + ': ' }}"
    + _IMAGES
    + "{{ '<image>\n' }}{% endfor %}"
    + _TEXTS
    + "{{ c['text'] + ' ' }}{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}",
    "llava_next": "{% for m in messages %}{{ '[INST] ' }}"
    + _IMAGES
    + "{{ '<image>\n' }}{% endfor %}"
    + _TEXTS
    + "{{ c['text'] }}{% endfor %}{{ ' [/INST]' }}{% endfor %}",
    "llava_onevision": "{% for m in messages %}{{ '<|im_start|>' + m['role'] + ' ' }}"
    + _IMAGES
    + "{{ '<image>' }}{% endfor %}"
    + _TEXTS
    + "{{ '\n' + c['text'] }}{% endfor %}{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "qwen2_vl": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}"
    + _IMAGES
    + "{{ '<|vision_start|><|image_pad|><|vision_end|>' }}{% endfor %}"
    + _TEXTS
    + "{{ c['text'] }}{% endfor %}{{ '<|im_end|>\n' }}{% endfor %}"
    + "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
}

LLAMA_SPECIALS = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<image>",
    "<video>",
]


def _corpus(words: list[str]) -> list[str]:
    chat = "user assistant system you are a helpful USER ASSISTANT INST"
    return [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)] + [chat] * 4


def llama_tokenizer(words: list[str]) -> PreTrainedTokenizerFast:
    """SentencePiece-style BPE (``▁`` marks a space, BOS prepended), like LLaVA-1.5's and NeXT's."""
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    core.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="never", split=True
    )  # no merges across spaces
    core.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=LLAMA_SPECIALS,
        initial_alphabet=list(string.printable) + ["▁"],
        show_progress=False,
    )
    core.train_from_iterator(_corpus(words), trainer)
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", core.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="right",
    )


def qwen_tokenizer(words: list[str], image_token: str) -> PreTrainedTokenizerFast:
    """Byte-level BPE without BOS, ``<|im_end|>`` ends a turn, like Qwen2's."""
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=500,
        special_tokens=QWEN_SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(_corpus(words), trainer)
    video_token = "<|video_pad|>" if image_token == "<|image_pad|>" else "<video>"
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": image_token, "video_token": video_token},
        padding_side="right",
    )


class _WithoutVideo:
    """transformers 5.24 cannot type-check a processor's missing video processor when torchvision is
    not installed (the CPU CI); real Qwen2-VL / OneVision checkpoints ship one."""

    def check_argument_for_proper_class(self, argument_name, argument):
        return None if argument is None else super().check_argument_for_proper_class(argument_name, argument)


class OnevisionProcessorWithoutVideo(_WithoutVideo, LlavaOnevisionProcessor):
    pass


class Qwen2VLProcessorWithoutVideo(_WithoutVideo, Qwen2VLProcessor):
    pass


TORCHVISION = importlib.util.find_spec("torchvision") is not None


def _with_video(processor_class, without_video, video_processor: str, **video_kwargs):
    """``(processor class, video processor)``: the real pair where torchvision is installed (the real-checkpoint
    extra, so the saved processor loads with ``AutoProcessor``), else the class that accepts no video processor."""
    if TORCHVISION:
        return processor_class, getattr(transformers, video_processor)(**video_kwargs)
    return without_video, None


def _clip(image_size: int) -> CLIPVisionConfig:
    return CLIPVisionConfig(**SIZE, image_size=image_size, patch_size=8, projection_dim=32)


def _llama(tokenizer) -> LlamaConfig:
    return LlamaConfig(
        **SIZE,
        vocab_size=len(tokenizer),
        num_key_value_heads=2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def _qwen2_text(tokenizer) -> dict:
    return dict(
        **SIZE,
        vocab_size=len(tokenizer),
        num_key_value_heads=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
    )


def build_llava(words):
    tok = llama_tokenizer(words)
    image = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(
        image_processor=image,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATES["llava"],
    )
    config = LlavaConfig(
        vision_config=_clip(16),
        text_config=_llama(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_seq_length=4,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaForConditionalGeneration(config), processor


def build_llava_next(words):
    tok = llama_tokenizer(words)
    image = LlavaNextImageProcessorPil(
        size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}, image_grid_pinpoints=PINPOINTS
    )
    processor = LlavaNextProcessor(
        image_processor=image,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=TEMPLATES["llava_next"],
    )
    config = LlavaNextConfig(
        vision_config=_clip(16),
        text_config=_llama(tok),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=PINPOINTS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    return LlavaNextForConditionalGeneration(config), processor


def build_llava_onevision(words):
    tok = qwen_tokenizer(words, "<image>")
    image = LlavaOnevisionImageProcessorPil(size={"height": 16, "width": 16}, image_grid_pinpoints=PINPOINTS)
    processor_class, video = _with_video(
        LlavaOnevisionProcessor,
        OnevisionProcessorWithoutVideo,
        "LlavaOnevisionVideoProcessor",
        size={"height": 16, "width": 16},
    )
    processor = processor_class(
        image_processor=image,
        tokenizer=tok,
        video_processor=video,
        num_image_tokens=4,
        vision_feature_select_strategy="full",
        chat_template=TEMPLATES["llava_onevision"],
    )
    vision = SiglipVisionConfig(**SIZE, image_size=16, patch_size=8)
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=Qwen2Config(**_qwen2_text(tok)),
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=PINPOINTS,
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
    )
    return LlavaOnevisionForConditionalGeneration(config), processor


def build_qwen2_vl(words):
    tok = qwen_tokenizer(words, "<|image_pad|>")
    image = Qwen2VLImageProcessorPil(
        patch_size=4, merge_size=2, temporal_patch_size=2, min_pixels=8 * 8, max_pixels=32 * 32
    )
    processor_class, video = _with_video(
        Qwen2VLProcessor,
        Qwen2VLProcessorWithoutVideo,
        "Qwen2VLVideoProcessor",
        patch_size=4,
        merge_size=2,
        temporal_patch_size=2,
    )
    processor = processor_class(
        image_processor=image, tokenizer=tok, video_processor=video, chat_template=TEMPLATES["qwen2_vl"]
    )
    vision = dict(
        depth=1, embed_dim=32, hidden_size=32, num_heads=2, patch_size=4, spatial_merge_size=2, temporal_patch_size=2
    )
    text = dict(
        **_qwen2_text(tok), rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
    )
    ids = {
        name: tok.convert_tokens_to_ids(t)
        for name, t in [
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
        ]
    }
    config = Qwen2VLConfig(vision_config=vision, text_config=text, **ids)
    return Qwen2VLForConditionalGeneration(config), processor


BUILDERS = {
    "LlavaForConditionalGeneration": build_llava,
    "LlavaNextForConditionalGeneration": build_llava_next,
    "LlavaOnevisionForConditionalGeneration": build_llava_onevision,
    "Qwen2VLForConditionalGeneration": build_qwen2_vl,
}


@dataclass
class TinyModel:
    name: str
    model: torch.nn.Module
    processor: object


def build(name: str, words: list[str], seed: int = 0) -> TinyModel:
    """The tiny random model of architecture ``name`` over ``words`` (deterministic under ``seed``)."""
    torch.manual_seed(seed)
    model, processor = BUILDERS[name](words)
    return TinyModel(name, model.eval(), processor)
