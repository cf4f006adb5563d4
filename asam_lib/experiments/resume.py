"""Resume you can trust: a study folder's settings and its progress files.

``out/study.json`` records every setting that changes a result (:func:`study_settings`: fingerprints of the
model's files and of the data file, the image root, task, dtype, which records are edited, each method's dotted
overrides from ``--hparams`` and ``--set``, the sequential checkpoints) and the config of each editor that has
run there. A rerun with other settings stops with one line naming the setting that differs (:func:`check_settings`);
``--out-per-settings`` gives every set of settings a subfolder of its own instead (:func:`settings_folder`). Seeds
and methods are not settings: runs with other seeds or methods into one folder add up.

``out/progress/<method>.jsonl`` holds one line per attempt at an edit: its tidy rows, or the error that
stopped it, written and synced before the next edit starts (a process that edits shard ``i`` of ``n`` writes
``<method>.shard-i-of-n.jsonl``, so processes never share a file). The latest line of an edit wins
(:func:`latest_entries`), so a failed edit is tried again by the next run, and a finished one never is. A
last line cut short by a kill is skipped when read and cut off before the next line is appended.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

from asam_lib.common.cache import write_atomically
from asam_lib.mllm.model import config_hash

SETTINGS_FILE = "study.json"
HEAD_AND_TAIL = 1 << 20  # bytes of each end of a model file that its fingerprint reads


class ResumeError(RuntimeError):
    """A study folder that does not belong to this study, or a damaged progress file (the message says what to do)."""


def file_fingerprint(path: Path) -> str:
    """sha256 of a file's size and of its first and last MiB (all of it if smaller): cheap on a 15 GB
    checkpoint, and different for another checkpoint (their first MiB differ)."""
    digest, size = hashlib.sha256(), path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(HEAD_AND_TAIL))
        if size > 2 * HEAD_AND_TAIL:
            f.seek(size - HEAD_AND_TAIL)
        digest.update(f.read())
    return digest.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """The fingerprint of every file directly in ``folder`` (config, weights, tokenizer, processor), by name."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return config_hash({p.name: file_fingerprint(p) for p in files})


def study_settings(model: Path, data: Path, image_root: Path, dtype: str, config) -> dict:
    """Every setting of a study that changes its results (``config``: a
    :class:`asam_lib.experiments.mmedit_study.StudyConfig`, whose seed and methods are left out)."""
    # settings added later are recorded only when used, so that folders written before them stay valid
    added = {"hparams": config.overrides} if config.overrides else {}
    added |= {"generation": True} if config.generation else {}
    return {
        **added,
        "model": folder_fingerprint(model),
        "data": hashlib.sha256(data.read_bytes()).hexdigest()[:16],
        "image_root": str(image_root.resolve()),
        "task": config.task,
        "dtype": dtype,
        "n_edits": config.n_edits,
        "known_only": config.known_only,
        "n_support": config.n_support,
        "layer": config.layer,
        "steps": config.steps,
        "lr": config.lr,
        "sequential": list(config.sequential),
    }


def settings_folder(out: Path, settings: dict) -> Path:
    """The subfolder of ``out`` that ``--out-per-settings`` gives these settings."""
    return out / f"settings-{config_hash(settings)}"


def _option(name: str) -> str:
    """The command-line option that sets study setting ``name``."""
    return {"hparams": "--hparams / --set"}.get(name, "--" + name.replace("_", "-"))


def _recorded(out: Path) -> dict:
    path = out / SETTINGS_FILE
    if not path.exists():
        return {}
    recorded = json.loads(path.read_text())
    if "settings" not in recorded:
        raise ResumeError(f"{path} was written by an older version and records no settings: pass a new --out")
    return recorded


def check_settings(out: Path, settings: dict) -> None:
    """Refuse to mix studies: settings recorded in ``out`` must equal ``settings``."""
    before = _recorded(out).get("settings")
    if before is None or before == settings:
        return
    changed = [k for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k)]
    first = changed[0]
    more = f" (and {', '.join(map(_option, changed[1:]))})" if changed[1:] else ""
    raise ResumeError(
        f"{out} holds a study with other settings: {_option(first)} {before.get(first)!r} there, "
        f"{settings.get(first)!r} now{more}; "
        "rerun with the same options, pass another --out, or add --out-per-settings"
    )


def record_settings(out: Path, settings: dict, inputs: dict) -> None:
    """Write ``out/study.json`` (settings, and the input paths for people) if it is not there yet."""
    if not (out / SETTINGS_FILE).exists():
        out.mkdir(parents=True, exist_ok=True)
        write_atomically(
            out / SETTINGS_FILE,
            lambda tmp: tmp.write_text(
                json.dumps({"settings": settings, "inputs": inputs, "editors": {}}, indent=1) + "\n"
            ),
        )


def check_editor_configs(out: Path, configs: dict[str, str]) -> None:
    """Each method's editor config (a hash) must be the one it first ran with in ``out``; new methods are recorded."""
    recorded = _recorded(out)
    editors = recorded["editors"]
    for method, config in configs.items():
        if editors.get(method, config) != config:
            raise ResumeError(
                f"{method} ran in {out} with editor config {editors[method]}, and would now run with {config} "
                "(the library's editor defaults changed): pass another --out"
            )
    if any(m not in editors for m in configs):
        recorded["editors"] = {**editors, **configs}
        write_atomically(out / SETTINGS_FILE, lambda tmp: tmp.write_text(json.dumps(recorded, indent=1) + "\n"))


def entry_key(entry: dict) -> tuple:
    """What identifies an edit in a progress file: (method, kind, case, seed)."""
    return (entry["method"], entry.get("kind", "single"), entry["case"], entry["seed"])


class Progress:
    """One progress file: its entries, and appending one line per attempt."""

    def __init__(self, path: Path, method: str):
        self.path, self.method = path, method
        self.entries: list[dict] = []
        self.complete_bytes = 0  # length of the file up to the end of its last complete line
        if path.exists():
            data = path.read_bytes()
            lines = data.split(b"\n")
            for n, line in enumerate(lines[:-1], start=1):  # lines[-1]: whatever follows the last newline
                try:
                    self.entries.append({"method": method, **json.loads(line)})
                except json.JSONDecodeError:
                    if n < len(lines) - 1:
                        raise ResumeError(
                            f"{path}: line {n} is not valid JSON; delete that line (its edit will be redone)"
                        ) from None
                    break  # a last line cut short, newline included
                self.complete_bytes += len(line) + 1

    def append(self, entry: dict) -> None:
        """Write one attempt to disk (flushed and synced), after cutting off a partial last line."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab") as f:
            f.truncate(self.complete_bytes)
            line = (json.dumps(entry) + "\n").encode()
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.complete_bytes += len(line)
        self.entries.append({"method": self.method, **entry})


def progress_path(out: Path, method: str, shard: tuple[int, int] = (0, 1)) -> Path:
    """The progress file of ``method`` written by shard ``i`` of ``n`` (one file per process)."""
    i, n = shard
    return out / "progress" / (f"{method}.jsonl" if n == 1 else f"{method}.shard-{i}-of-{n}.jsonl")


def latest_entries(out: Path) -> dict[tuple, dict]:
    """The latest entry of every edit in every progress file of ``out`` (all methods, all shards), by
    :func:`entry_key`."""
    latest: dict[tuple, dict] = {}
    for path in sorted((out / "progress").glob("*.jsonl")):
        for entry in Progress(path, path.name.split(".")[0]).entries:
            latest[entry_key(entry)] = entry
    return latest


@contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold the lock of study folder ``out`` (processes of one study share it) while writing its
    ``study.json`` or its tables."""
    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".lock")):
        yield
