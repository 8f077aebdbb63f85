"""Training configuration, declared once: `tiny-copilot train` derives its flags from these fields.

Each field's metadata carries its help text (with the unit) and, where the flag or its parsing differs
from the field, `flag` and `parse`. Fields whose default is None mean "take it from the preset" (model
shape) or "not set" (limits, paths).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tiny_copilot.model.config import DEFAULT_PRESET, MAX_SEQ_LEN, PRESETS, ModelConfig, preset_config

DEFAULT_TIME_BUDGET_S = 600.0
"""Run length when neither --time-budget nor --max-steps is given."""

DEFAULT_SEQ_LEN = 256
"""Training context in tokens when the preset does not set one; see TrainConfig.seq_len."""

DEFAULT_SAMPLE_PROMPT = "def dfs(graph, start):\n    "

_DURATION_UNITS_S = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+))\s*([a-z]*)\s*$")


def parse_duration_s(text: str) -> float:
    """Parse `90s`, `15m`, `2h`, `1.5h` or a bare number of seconds into seconds."""
    match = _DURATION.match(text.lower())
    if match is None or match.group(2) not in _DURATION_UNITS_S:
        raise ValueError(
            f"invalid duration {text!r}; write a number with an optional unit s, m or h, such as 90s, 15m or 2h"
        )
    seconds = float(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return seconds


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run does; saved in its checkpoints."""

    # What to train on.
    data_paths: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "files, folders or globs of source code to train on (default: the standard library of this Python)",
            flag="--data",
            nargs="+",
            metavar="PATH",
        ),
    )
    exclude_globs: tuple[str, ...] = field(
        default=(),
        metadata=_help(
            "skip files matching this glob, in .gitignore syntax relative to each --data folder, or this "
            "absolute path (repeatable)",
            flag="--exclude",
            metavar="GLOB",
        ),
    )
    fim_rate: float = field(
        default=0.5,
        metadata=_help("fraction of training documents turned into fill-in-the-middle examples, 0 to 1"),
    )

    # Model shape: a preset, optionally with fields replaced.
    preset: str = field(default=DEFAULT_PRESET, metadata=_help("model size preset", choices=tuple(PRESETS)))
    vocab_size: int | None = field(default=None, metadata=_help("tokenizer vocabulary size in tokens (default: the preset's)"))
    d_model: int | None = field(default=None, metadata=_help("width of the residual stream (default: the preset's)"))
    n_layers: int | None = field(default=None, metadata=_help("number of Transformer blocks (default: the preset's)"))
    n_heads: int | None = field(default=None, metadata=_help("attention heads per block (default: the preset's)"))
    seq_len: int | None = field(
        default=None,
        metadata=_help(f"training context in tokens, also the model's maximum context (default {DEFAULT_SEQ_LEN})"),
    )

    # How long to train.
    time_budget_s: float | None = field(
        default=None,
        metadata=_help(
            "wall-clock limit of the optimisation loop, including evaluations and checkpoints but not data "
            "preparation: 90s, 15m, 2h or plain seconds (default 10m unless --max-steps is given); "
            "with --max-steps, training stops at whichever comes first",
            flag="--time-budget",
            parse=parse_duration_s,
            metavar="DURATION",
        ),
    )
    max_steps: int | None = field(default=None, metadata=_help("stop after this many optimizer steps"))

    # Optimisation.
    seed: int = field(default=1337, metadata=_help("seed of the weight initialisation and the data order"))
    batch_size: int = field(default=16, metadata=_help("sequences per micro-batch on each process"))
    grad_accum: int = field(default=1, metadata=_help("micro-batches summed into each optimizer step"))
    lr: float = field(default=2e-3, metadata=_help("peak learning rate of AdamW"))
    min_lr_ratio: float = field(default=0.1, metadata=_help("final learning rate as a fraction of --lr"))
    schedule: Literal["cosine", "wsd"] = field(
        default="cosine",
        metadata=_help(
            "decay after warmup: cosine, or wsd (warmup-stable-decay: constant, then linear decay over the "
            "last --decay-fraction of the run)",
            choices=("cosine", "wsd"),
        ),
    )
    warmup_steps: int = field(
        default=100, metadata=_help("linear warmup length in optimizer steps, capped at a tenth of --max-steps")
    )
    decay_fraction: float = field(default=0.2, metadata=_help("share of the run spent decaying with --schedule wsd"))
    weight_decay: float = field(default=0.1, metadata=_help("AdamW weight decay, applied to weight matrices only"))
    beta1: float = field(default=0.9, metadata=_help("AdamW beta1"))
    beta2: float = field(default=0.95, metadata=_help("AdamW beta2"))
    grad_clip: float = field(default=1.0, metadata=_help("clip the gradient norm to this value; 0 disables clipping"))

    # Evaluation, logging and checkpoints.
    eval_interval: int = field(default=100, metadata=_help("optimizer steps between validation runs"))
    eval_batches: int = field(default=8, metadata=_help("validation micro-batches per evaluation, at most"))
    checkpoint_interval: int = field(
        default=100, metadata=_help("optimizer steps between checkpoints; an interruption loses at most this many")
    )
    log_interval: int = field(default=10, metadata=_help("optimizer steps between rows of metrics.jsonl"))
    sample_prompt: str = field(
        default=DEFAULT_SAMPLE_PROMPT,
        metadata=_help("prompt completed greedily at each evaluation (backslash escapes are interpreted)"),
    )
    sample_tokens: int = field(default=48, metadata=_help("tokens generated for the sample completion"))

    # Where the run lives.
    out_dir: str | None = field(
        default=None,
        metadata=_help("run folder (default: a new folder under the user data folder's tiny-copilot/runs)", flag="--out", metavar="DIR"),
    )
    init_checkpoint: str | None = field(
        default=None,
        metadata=_help(
            "fine-tune this checkpoint folder, keeping its tokenizer and shape; `default` means the shipped model",
            flag="--init",
            metavar="CHECKPOINT",
        ),
    )

    # Execution.
    device: Literal["auto", "cpu", "cuda"] = field(
        default="auto", metadata=_help("where to train; auto picks CUDA when present", choices=("auto", "cpu", "cuda"))
    )
    dtype: Literal["auto", "float32", "bfloat16"] = field(
        default="auto",
        metadata=_help(
            "compute type; auto measures bfloat16 autocast against float32 at start-up and keeps the faster",
            choices=("auto", "float32", "bfloat16"),
        ),
    )
    compile: Literal["auto", "on", "off"] = field(
        default="auto",
        metadata=_help(
            "torch.compile; auto tries it only when the run is long enough to repay the compile time and keeps "
            "it when it measures faster",
            choices=("auto", "on", "off"),
        ),
    )
    threads: int | None = field(
        default=None,
        metadata=_help(
            "CPU threads per process, lowered to the CPU cores the process may use (default: the CPU cores "
            "divided among the processes, or half of that "
            "when a start-up measurement finds it faster, as on a CPU busy with other work)"
        ),
    )

    def __post_init__(self) -> None:
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "seq_len", "max_steps", "threads"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"{flag_of(name)} must be a positive integer, got {value!r}")

        if self.seq_len is not None and self.seq_len > MAX_SEQ_LEN:
            raise ValueError(f"{flag_of('seq_len')} must be at most {MAX_SEQ_LEN}, got {self.seq_len}")

        if self.vocab_size is not None:
            from .tokenizer_train import MAX_VOCAB_SIZE, MIN_VOCAB_SIZE

            if not MIN_VOCAB_SIZE <= self.vocab_size <= MAX_VOCAB_SIZE:
                raise ValueError(
                    f"{flag_of('vocab_size')} must be from {MIN_VOCAB_SIZE} to {MAX_VOCAB_SIZE} (the 256 byte tokens and the "
                    f"special tokens at least; token files store ids as uint16), got {self.vocab_size}"
                )

        for name in ("batch_size", "grad_accum", "eval_interval", "eval_batches", "checkpoint_interval", "log_interval", "sample_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{flag_of(name)} must be a positive integer, got {value!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"{flag_of('warmup_steps')} must be >= 0, got {self.warmup_steps}")
        if self.time_budget_s is not None and not (math.isfinite(self.time_budget_s) and self.time_budget_s > 0):
            raise ValueError(f"{flag_of('time_budget_s')} must be a positive number of seconds, got {self.time_budget_s!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"{flag_of('preset')} {self.preset!r} is unknown; choose one of {', '.join(PRESETS)}")

        for name, low, high in (
            ("fim_rate", 0.0, 1.0),
            ("min_lr_ratio", 0.0, 1.0),
            ("decay_fraction", 0.0, 1.0),
            ("beta1", 0.0, 1.0),
            ("beta2", 0.0, 1.0),
        ):
            value = getattr(self, name)
            if not low <= value <= high:
                raise ValueError(f"{flag_of(name)} must be between {low} and {high}, got {value}")

        for name in ("lr", "weight_decay", "grad_clip"):
            value = getattr(self, name)
            # nan passes every comparison check, and torch rejected --lr nan only after data preparation.
            if not math.isfinite(value) or value < 0 or (name == "lr" and value == 0):
                raise ValueError(f"{flag_of(name)} must be a finite number {'> 0' if name == 'lr' else '>= 0'}, got {value}")
        for name, allowed in (
            ("schedule", ("cosine", "wsd")),
            ("device", ("auto", "cpu", "cuda")),
            ("dtype", ("auto", "float32", "bfloat16")),
            ("compile", ("auto", "on", "off")),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{flag_of(name)} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")

        # RoPE has no learned positions, so a fine-tune may train a longer context than the checkpoint's;
        # every other shape field is baked into its weights.
        fixed = sorted(set(self.shape_overrides()) - {"max_seq_len"})
        if self.init_checkpoint is not None and fixed:
            raise ValueError(
                f"--init keeps the checkpoint's shape and tokenizer, so {', '.join(flag_of(_SHAPE_FIELDS[name]) for name in fixed)} "
                "cannot be changed; drop those options (only --seq-len may differ)"
            )
        # Building the model config here reports an impossible shape (d_model not divisible by
        # n_heads, say) before any data is prepared.
        if self.init_checkpoint is None:
            self.model_config()

    @property
    def stop_time_s(self) -> float | None:
        """The time budget in force: the given one, the default when no limit is given, or None."""
        if self.time_budget_s is None and self.max_steps is None:
            return DEFAULT_TIME_BUDGET_S
        return self.time_budget_s

    @property
    def tokens_per_step(self) -> int:
        """Tokens in one optimizer step of one process."""
        return self.batch_size * self.grad_accum * self.context_len

    @property
    def context_len(self) -> int:
        return self.seq_len or DEFAULT_SEQ_LEN

    def shape_overrides(self) -> dict[str, int]:
        """Return the model-shape fields given explicitly, keyed by ModelConfig field name."""
        given = {
            "vocab_size": self.vocab_size,
            "d_model": self.d_model,
            "n_layers": self.n_layers,
            "n_heads": self.n_heads,
            "max_seq_len": self.seq_len,
        }
        return {name: value for name, value in given.items() if value is not None}

    def model_config(self) -> ModelConfig:
        """Model shape of a run that starts from scratch: the preset with the overrides applied."""
        overrides = {"max_seq_len": DEFAULT_SEQ_LEN, **self.shape_overrides()}
        source = f"--preset {self.preset}" + "".join(
            f" {flag_of(_SHAPE_FIELDS[name])} {value}" for name, value in self.shape_overrides().items()
        )
        # ModelConfig would reject this shape too, but naming its own fields; this check names the options.
        shape = {**PRESETS[self.preset], **overrides}
        pair_width = 2 * shape["n_heads"]
        if shape["d_model"] % pair_width != 0:
            raise ValueError(
                f"invalid model shape from {source}: --d-model {shape['d_model']} must be divisible by twice "
                f"--n-heads {shape['n_heads']}, because each head's width must be even for rotary embeddings; "
                f"try --d-model {-(-shape['d_model'] // pair_width) * pair_width}"
            )
        try:
            return preset_config(self.preset, **overrides)
        except ValueError as exc:
            raise ValueError(f"invalid model shape from {source}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["data_paths"] = list(self.data_paths)
        data["exclude_globs"] = list(self.exclude_globs)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown training config keys {unknown}; this run was made by a newer tiny-copilot")
        values = dict(data)
        for name in ("data_paths", "exclude_globs"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


_SHAPE_FIELDS = {"vocab_size": "vocab_size", "d_model": "d_model", "n_layers": "n_layers", "n_heads": "n_heads", "max_seq_len": "seq_len"}
"""TrainConfig field of each ModelConfig field that shape_overrides() returns."""

RESUMABLE_OVERRIDES = frozenset(
    {
        "time_budget_s",
        "max_steps",
        "eval_interval",
        "eval_batches",
        "checkpoint_interval",
        "log_interval",
        "sample_prompt",
        "sample_tokens",
        "device",
        "dtype",
        "compile",
        "threads",
        "out_dir",
    }
)
"""Fields that `--resume` may change; the others must match the run, or the data order and schedule would."""


def keep_resumed_dtype(config: TrainConfig, given: dict[str, Any], trained_dtype: object) -> tuple[TrainConfig, str | None]:
    """Pin `--dtype auto` of a resumed run to the dtype its steps so far used; return the config and a note.

    `auto` measures bfloat16 against float32 at start-up, and on a busy machine the measurement can
    come out the other way, so a resumed run would switch numerics halfway. A `--dtype` given with
    `--resume` still wins.
    """
    if config.dtype != "auto" or "dtype" in given or trained_dtype not in ("float32", "bfloat16"):
        return config, None
    note = f"--resume keeps {trained_dtype}, the dtype the run trained with; pass --dtype to change it"
    return dataclasses.replace(config, dtype=trained_dtype), note


def flag_of(name: str) -> str:
    """Return the command-line flag of a TrainConfig field."""
    metadata = {f.name: f.metadata for f in dataclasses.fields(TrainConfig)}[name]
    return metadata.get("flag", "--" + name.replace("_", "-"))


def resume_config(saved: dict[str, Any], given: dict[str, Any]) -> TrainConfig:
    """Return the saved run's config with the `given` fields that a resume may change applied.

    Raises ValueError naming each given option that would change the model, the data order or the
    schedule, because a resumed run must replay exactly what the interrupted one would have done.
    """
    base = TrainConfig.from_dict(saved)
    conflicts = [
        f"{flag_of(name)} {value!r} (the run has {getattr(base, name)!r})"
        for name, value in given.items()
        if name not in RESUMABLE_OVERRIDES and value != getattr(base, name)
    ]
    if conflicts:
        raise ValueError(
            "--resume continues a run with its own settings, but these options differ from it: "
            + "; ".join(conflicts)
            + ". Drop them, or start a new run in another folder with --out"
        )
    return dataclasses.replace(base, **{k: v for k, v in given.items() if k in RESUMABLE_OVERRIDES})
