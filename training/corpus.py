"""Build the training corpus: find the user's code, filter it, drop duplicates, split train/validation.

Contract:
    corpus = build_corpus(["src", "lib/*.h", "snippets/code.txt"], excludes=["tests/"], val_fraction=0.05)
    corpus.texts("train"), corpus.texts("val")   # lists of str, in a fixed order
    corpus.manifest                               # JSON-serialisable dict; the caller writes it to the run
    corpus.manifest_sha256                        # changes whenever any used file, root or option changes
    describe_corpus(corpus)                       # lines of statistics for a learner to read

Paths are files, folders or globs (`**` included). No paths means the standard library of the running
interpreter, without site-packages. Folders are walked in sorted order; every skipped file or folder is
counted under a reason from `training.corpus_rules`. A file's split comes from a hash of its path relative
to its root, so it never moves between train and validation when other files are added or removed. The
exception: a language with 10 or more files (at the default fraction) whose hashes all fall in train gets
the file nearest the boundary moved to validation, and so does a corpus with no validation file at all.
A corpus of one file (a single `code.txt` of pasted snippets) keeps its last lines for validation.
Raises FileNotFoundError for a path or glob that matches nothing, ValueError for unsupported input or a
corpus with no usable file. Reads files; writes nothing.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import sysconfig
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pathspec import GitIgnoreSpec

from .corpus_rules import (
    LANGUAGE_BY_SUFFIX,
    SKIP_BROKEN_LINK,
    SKIP_DUPLICATE,
    SKIP_EXCLUDED,
    SKIP_GITIGNORED,
    SKIP_SECRET,
    SKIP_TOO_LARGE,
    SKIP_UNREADABLE,
    SKIP_UNSUPPORTED_TYPE,
    TEXT_SUFFIX,
    FileRules,
    GitignoreRules,
    compile_excludes,
    content_skip_reason,
    folder_skip_reason,
    is_secret_name,
    language_of,
    source_language,
)

log = logging.getLogger(__name__)

Split = Literal["train", "val"]
MANIFEST_FORMAT = 1
DEFAULT_VAL_FRACTION = 0.05
_GLOB_CHARS = frozenset("*?[")
_REASONS_AFTER_EXCLUDE = frozenset({SKIP_GITIGNORED, SKIP_UNSUPPORTED_TYPE})
"""Skip reasons that `_walk_skip_reason` checks after --exclude; every other walk skip comes before it."""


@dataclass(frozen=True)
class SourceFile:
    """One file of the corpus, read and accepted."""

    root_index: int
    """Index into `Corpus.roots` of the root this file was found under."""
    relative_path: str
    """Path relative to its root, with forward slashes; the split is derived from it."""
    language: str
    sha256: str
    """Hash of the file's bytes."""
    text: str
    split: Split
    val_start_char: int | None = None
    """For the only file of a one-file corpus: text[val_start_char:] is validation, the rest train."""

    def text_for(self, split: Split) -> str:
        """Return the part of the text that belongs to `split` ("" when none does)."""
        if self.val_start_char is not None:
            return self.text[self.val_start_char :] if split == "val" else self.text[: self.val_start_char]
        return self.text if split == self.split else ""


@dataclass(frozen=True)
class Corpus:
    roots: tuple[Path, ...]
    files: tuple[SourceFile, ...]
    skipped: dict[str, int]
    """Count of skipped files or folders by reason (see `training.corpus_rules`)."""
    manifest: dict[str, Any]
    manifest_sha256: str

    def texts(self, split: Split) -> list[str]:
        """Return the documents of one split, in manifest order; each is a whole file (or its part)."""
        return [text for text in (f.text_for(split) for f in self.files) if text]

    def texts_by_language(self, split: Split) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for source in self.files:
            text = source.text_for(split)
            if text:
                grouped.setdefault(source.language, []).append(text)
        return grouped


@dataclass(frozen=True)
class _Candidate:
    root_index: int
    path: Path
    explicit: bool
    """The user named this file or matched it with a glob, rather than a folder walk finding it."""


@dataclass
class _Collector:
    roots: list[Path] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    excluded: list[tuple[Path, str]] = field(default_factory=list)
    """(root, path relative to it, "/" after a folder) of each file or folder that --exclude left out."""
    skipped_before_exclude: list[tuple[Path, str]] = field(default_factory=list)
    """The same for each folder or secret file that a skip rule left out before --exclude was checked."""

    def exclude(self, root: Path, path: Path, is_folder: bool) -> None:
        self.skipped[SKIP_EXCLUDED] += 1
        self.excluded.append((root, _relative(root, path) + ("/" if is_folder else "")))

    def add_root(self, root: Path) -> int:
        if root not in self.roots:
            self.roots.append(root)
        return self.roots.index(root)


def default_paths() -> list[Path]:
    """Return the standard library folder of the running interpreter (its walk skips site-packages)."""
    return [Path(sysconfig.get_paths()["stdlib"])]


def build_corpus(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str] = (),
    excludes: Sequence[str] = (),
    val_fraction: float = DEFAULT_VAL_FRACTION,
    rules: FileRules = FileRules(),
) -> Corpus:
    """Read, filter, deduplicate and split the files under `paths` (see the module docstring)."""
    if not 0.0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be in (0, 0.5], got {val_fraction!r}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    excludes = tuple(excludes)
    compile_excludes(excludes)  # rejects an empty pattern before any file is read
    collector = _Collector()
    candidates = list(_expand(list(paths) or default_paths(), excludes, collector))
    _warn_unused_excludes(excludes, collector)

    accepted: list[tuple[_Candidate, str, str, str]] = []
    seen_hashes: set[str] = set()
    for candidate in candidates:
        result = _read_candidate(candidate, rules, collector)
        if result is None:
            continue
        language, text, digest = result
        if digest in seen_hashes:
            collector.skipped[SKIP_DUPLICATE] += 1
            continue
        seen_hashes.add(digest)
        accepted.append((candidate, language, text, digest))
    if not accepted:
        skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(collector.skipped.items()))
        raise ValueError(
            f"no usable source file under {', '.join(map(str, paths)) or 'the standard library'}; "
            f"skipped: {skipped or 'nothing'}. Supported types: "
            f"{' '.join(sorted(LANGUAGE_BY_SUFFIX))} (and {TEXT_SUFFIX} when named explicitly)"
        )

    files = _assign_splits(accepted, collector.roots, val_fraction)
    roots = tuple(collector.roots)
    skipped = dict(sorted(collector.skipped.items()))
    manifest = build_manifest(roots, files, skipped, excludes, val_fraction, rules)
    return Corpus(roots, tuple(files), skipped, manifest, manifest_sha256(manifest))


def _expand(raw_paths: list[Any], excludes: tuple[str, ...], collector: _Collector) -> Iterator[_Candidate]:
    """Yield the files to read, in a deterministic order, counting the folders skipped on the way."""
    for raw in raw_paths:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if path.exists():
            matches, root = [path], (path if path.is_dir() else path.parent)
        elif path.is_symlink():
            raise FileNotFoundError(
                f"corpus path {text!r} is a symbolic link whose target is missing or loops; "
                "pass the file or folder it should point to"
            )
        elif _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(text), recursive=True))]
            root = _glob_root(Path(text).expanduser())
            if not matches:
                raise FileNotFoundError(f"corpus glob {text!r} matches no file; check the pattern and the current folder")
        else:
            raise FileNotFoundError(f"corpus path {text!r} does not exist; pass existing files, folders or globs")

        root = root.resolve()
        root_index = collector.add_root(root)
        exclude_spec = compile_excludes(_root_excludes(excludes, root))
        for match in matches:
            match = match.resolve()
            if match.is_dir():
                yield from _walk(root_index, root, match, GitignoreRules.above(match), exclude_spec, collector)
            elif _excluded(exclude_spec, root, match, is_folder=False):
                collector.exclude(root, match, is_folder=False)
            else:
                yield _Candidate(root_index, match, explicit=True)


def _root_excludes(excludes: tuple[str, ...], root: Path) -> list[str]:
    """Return `excludes` plus each one written as a filesystem path under `root`, anchored to `root`.

    Patterns use .gitignore syntax relative to each root, where `/tmp/src/app.py` means `tmp/src/app.py`
    under the root. A user who names an absolute or `~` path means that file, so a pattern that
    lies under `root` also applies as a root-relative one. Excluding by both readings only excludes more.
    """
    patterns = list(excludes)
    for pattern in excludes:
        if not pattern.startswith(("/", "~")):
            continue
        expanded = Path(os.path.expanduser(pattern))
        for candidate in (expanded, expanded.resolve()):
            try:
                relative = candidate.relative_to(root).as_posix()
            except ValueError:
                continue
            if relative != ".":
                patterns.append("/" + relative + ("/" if pattern.endswith("/") else ""))
    return patterns


def _glob_root(pattern: Path) -> Path:
    """Return the longest leading part of a glob pattern without wildcards (the folder it searches)."""
    fixed = []
    for part in pattern.parts:
        if _GLOB_CHARS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _walk(
    root_index: int,
    root: Path,
    folder: Path,
    gitignore: GitignoreRules,
    exclude_spec: GitIgnoreSpec,
    collector: _Collector,
) -> Iterator[_Candidate]:
    gitignore = gitignore.with_folder(folder)
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        log.warning("cannot list %s (%s); skipping it", folder, error)
        collector.skipped[SKIP_UNREADABLE] += 1
        return
    for entry in entries:
        path = Path(entry.path)
        is_folder = entry.is_dir(follow_symlinks=False) or (entry.is_symlink() and path.is_dir())
        if not is_folder and not _is_file(entry):
            if entry.is_symlink():
                collector.skipped[SKIP_BROKEN_LINK] += 1
            continue  # sockets and fifos are not source files, so they are not counted
        reason = _walk_skip_reason(root, path, is_folder, gitignore, exclude_spec)
        if reason == SKIP_EXCLUDED:
            collector.exclude(root, path, is_folder)
        elif reason is not None:
            collector.skipped[reason] += 1
            if reason not in _REASONS_AFTER_EXCLUDE:
                collector.skipped_before_exclude.append((root, _relative(root, path) + ("/" if is_folder else "")))
        elif is_folder:
            yield from _walk(root_index, root, path, gitignore, exclude_spec, collector)
        else:
            yield _Candidate(root_index, path, explicit=False)


def _is_file(entry: os.DirEntry[str]) -> bool:
    """Return whether `entry` is a regular file or a link to one. A link that loops (ELOOP) is neither."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _walk_skip_reason(
    root: Path, path: Path, is_folder: bool, gitignore: GitignoreRules, exclude_spec: GitIgnoreSpec
) -> str | None:
    if is_folder:
        reason = folder_skip_reason(path)
        if reason is not None:
            return reason
    elif is_secret_name(path.name):
        return SKIP_SECRET
    if _excluded(exclude_spec, root, path, is_folder):
        return SKIP_EXCLUDED
    if gitignore.ignores(path, is_folder):
        return SKIP_GITIGNORED
    if not is_folder and language_of(path, explicit=False) is None:
        return SKIP_UNSUPPORTED_TYPE
    return None


def _excluded(exclude_spec: GitIgnoreSpec, root: Path, path: Path, is_folder: bool) -> bool:
    return exclude_spec.match_file(_relative(root, path) + ("/" if is_folder else ""))


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix() if path != root else path.name


def _warn_unused_excludes(excludes: tuple[str, ...], collector: _Collector) -> None:
    """Warn about each --exclude pattern that left nothing out, because a typo there trains on the files it names."""
    for pattern in excludes:
        if pattern.startswith("!"):
            continue  # a negation re-includes files, so it never leaves one out
        specs = {root: compile_excludes(_root_excludes((pattern,), root)) for root in collector.roots}
        if any(specs[root].match_file(relative) for root, relative in collector.excluded):
            continue
        skipped = collector.skipped_before_exclude
        if any(specs[root].match_file(relative) for root, relative in skipped):
            continue
        if any(_matches_under(specs[root], root, relative) for root, relative in skipped if relative.endswith("/")):
            continue
        log.warning(
            "--exclude %r matched no file or folder, so it left nothing out; patterns use .gitignore "
            "syntax relative to each --data folder, such as 'secrets/' or '*.env'",
            pattern,
        )


def _matches_under(spec: GitIgnoreSpec, root: Path, folder_relative: str) -> bool:
    """Return whether `spec` matches anything inside the skipped folder `folder_relative` (ending in "/").

    Only a pattern that matched nothing else gets here, and the walk stops at the first match.
    """
    for folder, folder_names, file_names in os.walk(root / folder_relative):
        base = Path(folder).relative_to(root).as_posix()
        if any(spec.match_file(f"{base}/{name}/") for name in folder_names):
            return True
        if any(spec.match_file(f"{base}/{name}") for name in file_names):
            return True
    return False


def _read_candidate(candidate: _Candidate, rules: FileRules, collector: _Collector) -> tuple[str, str, str] | None:
    """Return (language, text, sha256) of an accepted file, or None after counting why it was skipped."""
    path = candidate.path
    language = language_of(path, explicit=candidate.explicit)
    if language is None:
        raise ValueError(
            f"unsupported file type {path.suffix or '(no suffix)'!r} for {path}; supported: "
            f"{' '.join(sorted(LANGUAGE_BY_SUFFIX))} {TEXT_SUFFIX}. Rename it to .txt to train on it as plain text"
        )
    reason: str | None = None
    text = ""
    try:
        if candidate.explicit and is_secret_name(path.name):
            reason = SKIP_SECRET
        elif path.stat().st_size > rules.max_file_bytes:
            reason = SKIP_TOO_LARGE
        else:
            reason, text = content_skip_reason(path.read_bytes(), rules)
    except OSError as error:
        log.warning("cannot read %s (%s); skipping it", path, error)
        reason = SKIP_UNREADABLE
    if reason is not None:
        collector.skipped[reason] += 1
        if candidate.explicit:
            log.warning("skipping %s: %s", path, reason)
        return None
    language = source_language(path, text, explicit=candidate.explicit) or language
    return language, text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_fraction(relative_path: str) -> float:
    """Map a relative path to a number in [0, 1) that is fixed for that path on every machine."""
    digest = hashlib.sha256(relative_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _assign_splits(
    accepted: list[tuple[_Candidate, str, str, str]], roots: list[Path], val_fraction: float
) -> list[SourceFile]:
    relative = [c.path.relative_to(roots[c.root_index]).as_posix() for c, *_ in accepted]
    scores = [split_fraction(r) for r in relative]
    splits: list[Split] = ["val" if score < val_fraction else "train" for score in scores]

    # A small corpus can miss one split by chance. Moving the file whose hash is nearest the boundary
    # fixes that, and the choice still depends on nothing but the paths.
    _give_each_language_validation(accepted, scores, splits, val_fraction)
    if len(accepted) >= 2 and "val" not in splits:
        splits[min(range(len(scores)), key=scores.__getitem__)] = "val"
    if len(accepted) >= 2 and "train" not in splits:
        splits[max(range(len(scores)), key=scores.__getitem__)] = "train"

    files = [
        SourceFile(c.root_index, rel, language, digest, text, split)
        for (c, language, text, digest), rel, split in zip(accepted, relative, splits)
    ]
    if len(files) == 1:
        only = files[0]
        files = [SourceFile(**{**only.__dict__, "split": "train", "val_start_char": _tail_start(only.text, val_fraction)})]
    return files


def _give_each_language_validation(
    accepted: list[tuple[_Candidate, str, str, str]], scores: list[float], splits: list[Split], val_fraction: float
) -> None:
    """Move one file of each language that expects validation files but got none into validation, in place.

    A language expects them when its file count times `val_fraction` rounds to one or more (10 files at the
    default 5 %). The hash alone leaves 29 files of a language all in train with probability 0.95**29 = 0.23,
    and then the validation loss and `tiny-copilot eval` measure nothing of that language.
    """
    by_language: dict[str, list[int]] = {}
    for index, (_, language, _, _) in enumerate(accepted):
        by_language.setdefault(language, []).append(index)
    for indices in by_language.values():
        if len(indices) * val_fraction >= 0.5 and all(splits[i] == "train" for i in indices):
            splits[min(indices, key=scores.__getitem__)] = "val"


def _tail_start(text: str, val_fraction: float) -> int | None:
    """Return where the last `val_fraction` of the lines (at least one) starts, or None for a one-line text."""
    lines = text.splitlines(keepends=True)
    if len(lines) < 2:
        return None
    n_val_lines = max(1, round(len(lines) * val_fraction))
    return sum(len(line) for line in lines[:-n_val_lines])


def build_manifest(
    roots: tuple[Path, ...],
    files: list[SourceFile],
    skipped: dict[str, int],
    excludes: tuple[str, ...],
    val_fraction: float,
    rules: FileRules,
) -> dict[str, Any]:
    """Describe the corpus: options, per-language counts per split, skip counts and every file used."""
    languages: dict[str, dict[str, dict[str, int]]] = {}
    for source in files:
        for split in ("train", "val"):
            text = source.text_for(split)  # type: ignore[arg-type]
            if not text:
                continue
            counts = languages.setdefault(source.language, {}).setdefault(split, {"files": 0, "bytes": 0})
            counts["files"] += 1
            counts["bytes"] += len(text.encode("utf-8"))
    records = []
    for source in files:
        record: dict[str, Any] = {
            "root": source.root_index,
            "path": source.relative_path,
            "language": source.language,
            "split": source.split,
            "sha256": source.sha256,
        }
        if source.val_start_char is not None:
            record["val_start_char"] = source.val_start_char
        records.append(record)
    return {
        "format": MANIFEST_FORMAT,
        "roots": [str(root) for root in roots],
        "excludes": list(excludes),
        "val_fraction": val_fraction,
        "rules": rules.__dict__,
        "languages": dict(sorted(languages.items())),
        "skipped": skipped,
        "files": records,
    }


def manifest_sha256(manifest: dict[str, Any]) -> str:
    """Hash a manifest in a canonical JSON form; equal hashes mean the same corpus."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def describe_corpus(corpus: Corpus) -> list[str]:
    """Return human-readable lines: roots, files and bytes per language and split, skips by reason."""
    lines = [f"corpus roots: {', '.join(map(str, corpus.roots))}"]
    for language, splits in corpus.manifest["languages"].items():
        train = splits.get("train", {"files": 0, "bytes": 0})
        val = splits.get("val", {"files": 0, "bytes": 0})
        lines.append(
            f"  {language:<7} train {train['files']:>5} files {train['bytes'] / 1e6:8.2f} MB | "
            f"val {val['files']:>4} files {val['bytes'] / 1e6:7.2f} MB"
        )
    skipped = ", ".join(f"{reason} {count}" for reason, count in corpus.skipped.items()) or "nothing"
    lines.append(f"  skipped: {skipped}")
    return lines
