"""User settings of the completion server, declared once.

`ServerSettings` is the single declaration: the LSP layer reads it from `initializationOptions` and
`workspace/didChangeConfiguration`, the `tiny-copilot complete` command builds it from its flags, and
the editor clients' defaults are checked against `settings_schema()` by a test.

Editors send camelCase keys (`maxNewTokens`), optionally nested as `{"tinyCopilot": {...}}`;
`ServerSettings.from_json` accepts those and snake_case alike. It never raises on a user's mistake:
each invalid or unknown entry becomes a warning (name, value, expected) and the default is kept.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

Multiline = Literal["auto", "always", "never"]
MULTILINE_MODES: tuple[str, ...] = ("auto", "always", "never")

ALL_LANGUAGES = "*"
"""The `enabled_languages` entry that enables completion in every language."""

SETTINGS_SECTION = "tinyCopilot"
"""The key under which editors nest our settings."""


class InvalidSettingError(ValueError):
    """A ServerSettings field given a value outside its rule; a command line names its own option with `message_for`."""

    def __init__(self, field_name: str, expected: str, value: Any) -> None:
        self.field_name = field_name
        self.expected = expected
        self.value = value
        super().__init__(self.message_for(f"ServerSettings.{field_name}"))

    def message_for(self, name: str) -> str:
        """Return the error message with the setting called `name`, such as an option `--max-new-tokens`."""
        return f"{name} must be {self.expected}, got {self.value!r}"


@dataclass(frozen=True)
class ServerSettings:
    """Every user-facing setting of the completion server, with its default."""

    checkpoint: str | None = None
    """Checkpoint folder to serve; null serves the model installed with the package."""
    max_new_tokens: int = 48
    """Maximum number of tokens generated for one suggestion."""
    temperature: float = 0.0
    """Sampling temperature; 0 picks the most likely token, so the same text and cursor give the same suggestion."""
    seed: int = 0
    """Seed of the random generator used when temperature is above 0; each request restarts from it."""
    multiline: Multiline = "auto"
    """When to suggest several lines: "auto" on a blank line after a block opener, "always" at any line end, "never"."""
    max_lines: int = 8
    """Maximum number of lines in a multi-line suggestion."""
    enabled_languages: tuple[str, ...] = ("python", "c", "cpp")
    """LSP language ids that get suggestions (the shipped model was trained on these three). "*" enables every language."""
    prefix_budget_tokens: int = 768
    """Maximum number of prompt tokens taken from the text before the cursor."""
    suffix_budget_tokens: int = 256
    """Maximum number of prompt tokens taken from the text after the cursor."""
    threads: int = 1
    """CPU threads for inference; values above the machine's core count are lowered to it. One is fastest for models this small."""
    token_healing: bool = True
    """Let the model re-choose the last prompt token, so a cursor inside a word completes that word."""

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            expected = _invalid_reason(field.name, getattr(self, field.name))
            if expected is not None:
                raise InvalidSettingError(field.name, expected, getattr(self, field.name))

    def is_language_enabled(self, language_id: str | None) -> bool:
        """Return whether `language_id` gets suggestions; None (unknown language) counts as enabled."""
        if language_id is None or ALL_LANGUAGES in self.enabled_languages:
            return True
        return language_id in self.enabled_languages

    def effective_threads(self) -> int:
        """Return `threads`, lowered to the number of CPU cores of this machine."""
        return max(1, min(self.threads, os.cpu_count() or 1))

    @classmethod
    def from_json(cls, data: object, replace_invalid: bool = True) -> tuple[ServerSettings, list[str]]:
        """Build settings from editor JSON; return them with one warning per rejected entry.

        `data` may be None, a flat object or `{"tinyCopilot": {...}}` (a null section means defaults). Keys may be camelCase or
        snake_case. Invalid values and unknown keys are reported and replaced by defaults. Warnings
        name the key as the editor sent it and show values as JSON, as the user wrote them. With
        `replace_invalid` False the warnings leave out what replaced the entry, for callers that
        reject the settings instead of running with the defaults.
        """
        warnings: list[str] = []
        if data is None:
            return cls(), warnings
        section = ""
        if isinstance(data, dict) and SETTINGS_SECTION in data:
            data = data[SETTINGS_SECTION]
            section = SETTINGS_SECTION
        if data is None:
            return cls(), warnings
        if not isinstance(data, dict):
            warnings.append(
                f'{section or "the settings"} must be a JSON object such as {{"maxNewTokens": 32}}, '
                f"got {_json_type(data)} {_json_text(data)}" + ("; using the defaults" if replace_invalid else "")
            )
            return cls(), warnings

        values: dict[str, Any] = {}
        for key, raw_value in data.items():
            name = _field_name(str(key))
            if name is None:
                warnings.append(_unknown_key_warning(str(key), section, replace_invalid))
                continue
            value = _coerce(name, raw_value)
            expected = _invalid_reason(name, value)
            if expected is not None:
                default = _json_text(_defaults()[name])
                warning = f"invalid setting {_qualified(section, str(key))}: {_json_text(raw_value)}; expected {expected}"
                warnings.append(warning + (f", so the default {default} is used" if replace_invalid else ""))
                continue
            values[name] = value
        return cls(**values), warnings


def settings_schema() -> list[dict[str, Any]]:
    """Describe every setting for editor manifests: name (camelCase), key (field name), type, default, description.

    `type` is a JSON-schema type; `enum`, `minimum` and `maximum` appear where they apply. Array
    defaults are lists, so the result compares directly with a VS Code package.json.
    """
    descriptions = _field_docstrings()
    schema = []
    for field in dataclasses.fields(ServerSettings):
        rule = _RULES[field.name]
        default = _defaults()[field.name]
        entry: dict[str, Any] = {
            "name": _camel(field.name),
            "key": field.name,
            "type": rule.json_type,
            "default": list(default) if isinstance(default, tuple) else default,
            "description": descriptions[field.name],
        }
        if rule.enum:
            entry["enum"] = list(rule.enum)
        if rule.minimum is not None:
            entry["minimum"] = rule.minimum
        if rule.maximum is not None:
            entry["maximum"] = rule.maximum
        schema.append(entry)
    return schema


@dataclass(frozen=True)
class _Rule:
    json_type: str | list[str]
    expected: str
    check: Callable[[Any], bool]
    enum: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


def _int_rule(minimum: int, maximum: int) -> _Rule:
    def check(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum

    return _Rule("integer", f"an integer from {minimum} to {maximum}", check, minimum=minimum, maximum=maximum)


def _is_language_list(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(item, str) and item.strip() == item and item for item in value)


def _is_number_in(value: Any, minimum: float, maximum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and minimum <= value <= maximum


# Upper limits keep a typo (an extra zero) from stalling the editor; the model's context length
# lowers the token budgets further at serving time.
_RULES: dict[str, _Rule] = {
    # A NUL cannot occur in a path; the warning shows it as \u0000, where the load error would hide it.
    "checkpoint": _Rule(["string", "null"], "a checkpoint folder path or null", lambda v: v is None or (isinstance(v, str) and "\0" not in v)),
    "max_new_tokens": _int_rule(1, 512),
    "temperature": _Rule(
        "number", "a number from 0 to 2", lambda v: _is_number_in(v, 0.0, 2.0), minimum=0.0, maximum=2.0
    ),
    "seed": _int_rule(0, 2**31 - 1),
    "multiline": _Rule("string", "one of " + ", ".join(MULTILINE_MODES), lambda v: v in MULTILINE_MODES, enum=MULTILINE_MODES),
    "max_lines": _int_rule(1, 100),
    "enabled_languages": _Rule("array", 'a list of LSP language ids such as ["python", "c"], or ["*"]', _is_language_list),
    "prefix_budget_tokens": _int_rule(16, 16384),
    "suffix_budget_tokens": _int_rule(0, 16384),
    "threads": _int_rule(1, 256),
    "token_healing": _Rule("boolean", "true or false", lambda v: isinstance(v, bool)),
}


def _invalid_reason(name: str, value: Any) -> str | None:
    """Return what `name` expects when `value` is invalid, else None."""
    rule = _RULES[name]
    return None if rule.check(value) else rule.expected


def _coerce(name: str, value: Any) -> Any:
    """Convert JSON shapes to field types: arrays to tuples, "" to a null checkpoint, whole floats to ints."""
    if isinstance(value, list):
        return tuple(value)
    if name == "checkpoint" and isinstance(value, str) and not value.strip():
        return None  # VS Code string settings default to "", which means "not set"
    if _RULES[name].json_type == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


MAX_SHOWN_VALUE_CHARS = 80
"""Longer values are cut in warnings, so a pasted document in a setting does not flood the editor."""


def _json_text(value: Any) -> str:
    """Format `value` as JSON (tuples as arrays), cut to MAX_SHOWN_VALUE_CHARS. Values that JSON cannot encode get repr()."""
    try:
        text = json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > MAX_SHOWN_VALUE_CHARS:
        text = text[: MAX_SHOWN_VALUE_CHARS - 1] + "…"
    return text


def _json_type(value: Any) -> str:
    """Name the JSON type of a decoded value other than null, with its article: "an array", "a string"."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _qualified(section: str, key: str) -> str:
    """Name a setting as the editor shows it: `tinyCopilot.maxLines` when nested, else the key alone."""
    return f"{section}.{key}" if section else key


def _unknown_key_warning(key: str, section: str, ignored: bool) -> str:
    known = _camel_names()
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {_qualified(section, close[0])}? " if close else ""
    quoted_key = json.dumps(_qualified(section, key), ensure_ascii=False)
    return f"unknown setting {quoted_key}{' ignored' if ignored else ''}; {hint}known settings: {', '.join(known)}"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _camel_names() -> list[str]:
    return [_camel(f.name) for f in dataclasses.fields(ServerSettings)]


def _field_name(key: str) -> str | None:
    by_key = {_camel(f.name): f.name for f in dataclasses.fields(ServerSettings)}
    by_key.update({f.name: f.name for f in dataclasses.fields(ServerSettings)})
    return by_key.get(key)


@lru_cache(maxsize=1)
def _defaults() -> dict[str, Any]:
    defaults = ServerSettings()
    return {f.name: getattr(defaults, f.name) for f in dataclasses.fields(ServerSettings)}


@lru_cache(maxsize=1)
def _field_docstrings() -> dict[str, str]:
    """Read the string literal that follows each field in the class body, so descriptions live in one place."""
    tree = ast.parse(inspect.getsource(ServerSettings))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for statement, following in zip(body, body[1:]):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = following.value.value
    missing = [f.name for f in dataclasses.fields(ServerSettings) if f.name not in docs]
    assert not missing, f"ServerSettings fields without a docstring: {missing}"
    return docs
