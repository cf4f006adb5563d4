"""Every input of ``python -m asam_lib study`` checked before the model loads.

Loading a 7B checkpoint takes minutes: a typo in an option, an ``--out`` that cannot be written, a missing
torchvision or a corrupt image should not cost them. Each check raises :class:`InputError`, whose message
is one line naming the input and the fix; the command line prints it and exits with status 2.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoConfig

from asam_lib.data.records import EditRecord, MalformedRecord
from asam_lib.mllm.architectures import ARCHITECTURES

PLACEMENT_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")
PROCESSOR_FILES = {
    "tokenizer": ("tokenizer.json", "tokenizer.model"),
    "image processor": ("preprocessor_config.json", "processor_config.json"),
}
INSTALL_EXTRA = "pip install -e '.[checkpoints]'"
# field -> (its EditRecord attribute, the metrics that need it)
GENERALITY_FIELDS = {
    "rephrase": ("rephrase", "T-Gen and TI-Gen"),
    "image_rephrase": ("image_rephrase_path", "I-Gen and TI-Gen"),
}


class InputError(ValueError):
    """An input of the study that cannot work, with the fix in its message."""


def check_out(out: Path) -> None:
    """``out`` is a folder, or can be created as one, and can be written to (nothing is created here)."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder: pass a folder (it is created if missing)")
    existing = next(p for p in (out, *out.parents) if p.exists())
    if not existing.is_dir():
        raise InputError(f"--out {out}: {existing} is a file, not a folder: pass a path under a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out}: {existing} is not writable by this user: pass a folder you can write to")


def check_device_map(device_map: str | None) -> None:
    """``device_map`` is None, a placement strategy of ``from_pretrained``, or a device this machine has."""
    if device_map is None or device_map in PLACEMENT_STRATEGIES:
        return
    try:
        device = torch.device(device_map)
    except RuntimeError:
        raise InputError(
            f"--device-map {device_map!r} is neither a placement strategy ({', '.join(PLACEMENT_STRATEGIES)}) "
            "nor a device (cpu, cuda, cuda:N, ...)"
        ) from None
    if device.type == "cpu":
        return
    backend = getattr(torch, device.type, None)
    if backend is None or not backend.is_available():
        raise InputError(
            f"--device-map {device_map}: torch sees no {device.type} device here (torch {torch.__version__}); "
            "install a build of torch for it, or use --device-map cpu"
        )
    if device.index is not None and device.index >= backend.device_count():
        raise InputError(
            f"--device-map {device_map}: this machine has {backend.device_count()} {device.type} device(s) "
            f"(0-{backend.device_count() - 1})"
        )


def torchvision_problem() -> str | None:
    """Why torchvision cannot be used here, or None if it imports."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return "torchvision is not installed"
    except Exception as err:  # a torchvision built for another torch fails while registering its operators
        return f"torchvision does not import ({err})"
    return None


def check_processor(folder: Path, architecture: str) -> None:
    """``folder`` holds a tokenizer and an image processor, and what loading them needs is installed."""
    for part, names in PROCESSOR_FILES.items():
        if not any((folder / name).is_file() for name in names):
            raise InputError(
                f"{folder} holds no {part} ({' or '.join(names)}): download the checkpoint's processor files too, "
                "not only its weights"
            )
    if ARCHITECTURES[architecture].processor_needs_torchvision:
        problem = torchvision_problem()
        if problem:
            raise InputError(
                f"{problem}: the {architecture} processor needs it (its video processor); install the extra: "
                f"{INSTALL_EXTRA} (see docs/real_checkpoints.md)"
            )


def check_layer(folder: Path, layer: int | None, option: str = "--layer") -> None:
    """``layer`` is a language layer of the checkpoint (read from its config, no weights loaded); ``option`` names
    where it was given."""
    if layer is None:
        return
    try:
        n_layers = AutoConfig.from_pretrained(folder).get_text_config().num_hidden_layers
    except (OSError, ValueError) as err:
        raise InputError(
            f"{folder / 'config.json'} cannot be read as a model config ({err}): re-download the checkpoint"
        ) from None
    if layer >= n_layers:
        raise InputError(
            f"{option} {layer} is out of range: {folder} has {n_layers} language layers (0-{n_layers - 1})"
        )


def check_sequential(checkpoints: Sequence[int], n_edits: int) -> None:
    """Sequential editing can reach every checkpoint T with the ``n_edits`` records it edits."""
    beyond = [t for t in checkpoints if t > n_edits]
    if beyond:
        raise InputError(
            f"--sequential {','.join(map(str, beyond))}: only {n_edits} records are edited; "
            f"pass checkpoints up to {n_edits} or more --n-edits"
        )


def check_generality(records: Sequence[EditRecord], allow_missing: bool) -> None:
    """Every record has the fields its generality metrics need, unless ``allow_missing`` (then those metrics
    average over the records that have them, and ``summary.csv`` counts them)."""
    if allow_missing:
        return
    for record in records:
        for name, (attribute, metrics) in GENERALITY_FIELDS.items():
            if not getattr(record, attribute):
                raise MalformedRecord(
                    record.source,
                    record.index,
                    name,
                    f"missing, so the edit's {metrics} cannot be measured",
                    "add it, or pass --allow-missing-generality to leave those metrics out for such records",
                )
