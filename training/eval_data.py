"""The held-out files of an evaluation, checked by content hash against the training corpus.

With `--data`, the files under the given paths are read with the corpus rules of `tiny-copilot train`
(same file types, same skips for generated, minified, secret and duplicate files). A file whose
SHA-256 appears among the checkpoint's training files is left out and counted; a file the user named
explicitly is rejected with OverlapError instead, because asking to evaluate on it is a mistake. Without
`--data`, the validation split recorded in the checkpoint's corpus manifest is read back from disk and
each file's hash must still match the manifest.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .corpus import build_corpus
from .corpus_rules import content_skip_reason, FileRules, source_language

log = logging.getLogger(__name__)


class OverlapError(ValueError):
    """Evaluation data is part of the checkpoint's training corpus."""


class ManifestError(ValueError):
    """The checkpoint's corpus manifest is missing or unusable, so held-out data cannot be verified."""


@dataclass(frozen=True)
class EvalFile:
    name: str
    """Path as shown in reports (relative to its corpus root when known)."""
    language: str
    text: str
    """File text with line breaks normalised to LF, as the server sees documents."""
    sha256: str
    """SHA-256 of the file's bytes on disk, the hash the corpus manifest records."""


@dataclass
class HeldOutSet:
    files: list[EvalFile]
    source: str
    """"validation split" or "--data"."""
    left_out: dict[str, int] = field(default_factory=dict)
    """Files not evaluated, by reason: "in_training_corpus", "missing", "changed_since_training"."""

    def by_language(self) -> dict[str, list[EvalFile]]:
        grouped: dict[str, list[EvalFile]] = {}
        for eval_file in self.files:
            grouped.setdefault(eval_file.language, []).append(eval_file)
        return dict(sorted(grouped.items()))


EARLIER_TRAINING_KEY = "earlier_train_sha256"
"""Manifest key listing the SHA-256 of the files that the checkpoints a fine-tune started from
(`--init`, and their own starting points) were trained on."""


def training_hashes(manifest: dict[str, Any]) -> set[str]:
    """Return the SHA-256 of every file that training read, including earlier fine-tuning stages."""
    return own_training_hashes(manifest) | earlier_training_hashes(manifest)


def own_training_hashes(manifest: dict[str, Any]) -> set[str]:
    """Return the SHA-256 of the train split of this manifest's own corpus."""
    return {record["sha256"] for record in _manifest_files(manifest) if record.get("split") == "train"}


def earlier_training_hashes(manifest: dict[str, Any]) -> set[str]:
    """Return the SHA-256 of the files that the checkpoints this run started from were trained on."""
    # NOTE: a fine-tune saved by an older tiny-copilot has no such key, so its base's files pass as held out.
    earlier = manifest.get(EARLIER_TRAINING_KEY, [])
    if not isinstance(earlier, list) or not all(isinstance(value, str) for value in earlier):
        raise ManifestError(
            f"the corpus manifest's {EARLIER_TRAINING_KEY!r} is not a list of SHA-256 strings, so held-out data "
            "cannot be verified; restore corpus_manifest.json from the training run"
        )
    return set(earlier)


def held_out_from_data(paths: Sequence[str | os.PathLike[str]], manifest: dict[str, Any]) -> HeldOutSet:
    """Read the files under `paths` and leave out those the checkpoint was trained on."""
    trained = training_hashes(manifest)
    explicit = {Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_file()}
    # val_fraction only labels the files here; every accepted file is evaluated whatever its label.
    corpus = build_corpus(list(paths), val_fraction=0.5)
    held_out = HeldOutSet(files=[], source="--data")
    for source in corpus.files:
        path = corpus.roots[source.root_index] / source.relative_path
        if source.sha256 in trained:
            if path.resolve() in explicit:
                raise OverlapError(
                    f"{path} is in the training corpus of this checkpoint (same SHA-256 {source.sha256[:12]}...); "
                    "evaluate on files the model was not trained on, or retrain without it"
                )
            held_out.left_out["in_training_corpus"] = held_out.left_out.get("in_training_corpus", 0) + 1
            continue
        held_out.files.append(EvalFile(str(path), source.language, _to_lf(source.text), source.sha256))
    _require_files(held_out, f"--data {' '.join(map(str, paths))}")
    return held_out


def held_out_from_manifest(manifest: dict[str, Any]) -> HeldOutSet:
    """Read back the validation split listed in `manifest`, checking each file's hash."""
    trained = own_training_hashes(manifest)
    # A fine-tune splits its own corpus without regard to its starting checkpoint's, so a validation
    # file may be one that an earlier stage trained on. Such files are left out, not an error.
    trained_earlier = earlier_training_hashes(manifest)
    roots = [Path(root) for root in manifest.get("roots", [])]
    held_out = HeldOutSet(files=[], source="validation split")
    for record in _manifest_files(manifest):
        one_file_corpus = "val_start_char" in record
        if record.get("split") != "val" and not one_file_corpus:
            continue
        if record["sha256"] in trained and not one_file_corpus:
            raise OverlapError(
                f"validation file {record['path']} has the same content as a training file "
                f"(SHA-256 {record['sha256'][:12]}...); the manifest is inconsistent, retrain"
            )
        if record["sha256"] in trained_earlier and not one_file_corpus:
            held_out.left_out["in_training_corpus"] = held_out.left_out.get("in_training_corpus", 0) + 1
            continue
        path = roots[record["root"]] / record["path"]
        text = _read_checked(path, record["sha256"], held_out)
        if text is None:
            continue
        if one_file_corpus:
            # The last lines of a one-file corpus were held out; the lines above them were trained on.
            text = text[record["val_start_char"] :]
        # Manifests written before .h files were labelled by content call every header C, so relabel.
        language = source_language(Path(record["path"]), text, explicit=False) or record["language"]
        held_out.files.append(EvalFile(record["path"], language, _to_lf(text), record["sha256"]))
    _log_unlogged_left_out(held_out)
    _require_files(held_out, f"the checkpoint's validation split under {', '.join(map(str, roots)) or 'no recorded folder'}")
    return held_out


LOGGED_PER_REASON = 3
"""Left-out validation files logged one by one per reason; one line counts the rest. The shipped
model's corpus is not on a user's machine, and one line per file was 265 lines."""


def _read_checked(path: Path, expected_sha256: str, held_out: HeldOutSet) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        _leave_out(held_out, "missing", "validation file %s is missing; leaving it out", path)
        return None
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        _leave_out(held_out, "changed_since_training", "validation file %s changed since training; leaving it out", path)
        return None
    _, text = content_skip_reason(data, FileRules())
    return text or data.decode("utf-8", errors="replace")


def _leave_out(held_out: HeldOutSet, reason: str, message: str, path: Path) -> None:
    count = held_out.left_out.get(reason, 0) + 1
    held_out.left_out[reason] = count
    if count <= LOGGED_PER_REASON:
        log.warning(message, path)


def _log_unlogged_left_out(held_out: HeldOutSet) -> None:
    for reason in ("missing", "changed_since_training"):
        unlogged = held_out.left_out.get(reason, 0) - LOGGED_PER_REASON
        if unlogged > 0:
            log.warning("%d more validation files left out as %s", unlogged, reason.replace("_", " "))


def _manifest_files(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(r, dict) and "sha256" in r for r in files):
        raise ManifestError(
            "the corpus manifest has no per-file SHA-256 list, so held-out data cannot be verified; "
            "pass the run's full corpus manifest with --manifest"
        )
    return files


def _require_files(held_out: HeldOutSet, where: str) -> None:
    if held_out.files:
        return
    reasons = ", ".join(f"{reason} {count}" for reason, count in held_out.left_out.items())
    reasons = reasons or "the validation split is empty because the training corpus was too small to hold a file out"
    if held_out.left_out.get("in_training_corpus"):
        raise OverlapError(f"no held-out file left in {where}: every file was left out ({reasons}); the model was trained on them")
    raise ManifestError(f"no held-out file to evaluate in {where} ({reasons}); pass --data with code the model was not trained on")


def _to_lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
