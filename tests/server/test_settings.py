"""ServerSettings: defaults, validation, editor JSON and the exported schema."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tiny_copilot.server.settings import ServerSettings, settings_schema


def test_defaults_are_valid_and_greedy():
    settings = ServerSettings()
    assert settings.temperature == 0.0
    assert settings.token_healing is True
    assert settings.multiline == "auto"
    assert {"python", "c", "cpp"} <= set(settings.enabled_languages)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_new_tokens", 0),
        ("max_new_tokens", True),
        ("temperature", -0.1),
        ("multiline", "sometimes"),
        ("max_lines", 0),
        ("enabled_languages", ("python", "")),
        ("enabled_languages", ["python"]),
        ("prefix_budget_tokens", 4),
        ("threads", 0),
        ("token_healing", "yes"),
        ("checkpoint", 3),
    ],
)
def test_constructor_rejects_invalid_value(field: str, value: object):
    with pytest.raises(ValueError, match=f"ServerSettings.{field} must be"):
        ServerSettings(**{field: value})


def test_from_json_reads_camel_case_nested():
    data = {"tinyCopilot": {"maxNewTokens": 12, "multiline": "never", "enabledLanguages": ["python"], "tokenHealing": False}}
    settings, warnings = ServerSettings.from_json(data)
    assert warnings == []
    assert settings.max_new_tokens == 12
    assert settings.multiline == "never"
    assert settings.enabled_languages == ("python",)
    assert settings.token_healing is False


def test_from_json_reads_snake_case_flat():
    settings, warnings = ServerSettings.from_json({"max_lines": 3, "prefix_budget_tokens": 512})
    assert warnings == []
    assert (settings.max_lines, settings.prefix_budget_tokens) == (3, 512)


def test_from_json_replaces_invalid_values_by_defaults():
    settings, warnings = ServerSettings.from_json({"temperature": "hot", "maxLines": -2, "threads": 1})
    assert settings.temperature == ServerSettings().temperature
    assert settings.max_lines == ServerSettings().max_lines
    assert settings.threads == 1
    assert len(warnings) == 2
    assert 'temperature: "hot"' in warnings[0]
    assert "a number from 0 to 2" in warnings[0]
    assert "maxLines: -2" in warnings[1]
    assert "an integer from 1 to 100" in warnings[1]


def test_from_json_reports_unknown_keys():
    settings, warnings = ServerSettings.from_json({"maxNewToken": 5})
    assert settings == ServerSettings()
    assert len(warnings) == 1
    assert 'unknown setting "maxNewToken"' in warnings[0]
    assert "maxNewTokens" in warnings[0]


@pytest.mark.parametrize("data", [None, {}, {"tinyCopilot": {}}, {"tinyCopilot": None}])
def test_from_json_empty_gives_defaults(data: object):
    assert ServerSettings.from_json(data) == (ServerSettings(), [])


def test_from_json_rejects_non_object():
    settings, warnings = ServerSettings.from_json(["maxNewTokens", 3])
    assert settings == ServerSettings()
    assert "must be a JSON object" in warnings[0]


@pytest.mark.parametrize(
    ("key", "value", "shown_default"),
    [
        ("checkpoint", 3, "null"),
        ("checkpoint", "runs/a\0b", "null"),
        ("maxLines", None, "8"),
        ("max_lines", True, "8"),
        ("enabledLanguages", ["python", 1], '["python", "c", "cpp"]'),
        ("enabledLanguages", "python", '["python", "c", "cpp"]'),
        ("tokenHealing", "yes", "true"),
        ("multiline", ["auto"], '"auto"'),
        ("temperature", {"value": 1}, "0.0"),
        ("seed", -1, "0"),
    ],
)
def test_invalid_value_warning_shows_json(key: str, value: object, shown_default: str):
    for data, shown_key in (({key: value}, key), ({"tinyCopilot": {key: value}}, f"tinyCopilot.{key}")):
        _, warnings = ServerSettings.from_json(data)
        assert len(warnings) == 1
        assert f"invalid setting {shown_key}: {json.dumps(value)};" in warnings[0]
        assert f"the default {shown_default} is used" in warnings[0]
        for python_only in ("None", "True", "False", "('", "'"):
            assert python_only not in warnings[0]


def test_invalid_value_warning_cuts_long_values():
    _, warnings = ServerSettings.from_json({"checkpoint": ["x" * 1000]})
    assert len(warnings) == 1
    assert "x" * 70 in warnings[0]
    assert "x" * 100 not in warnings[0]


def test_unknown_key_warning_suggests_nearest():
    _, warnings = ServerSettings.from_json({"tinyCopilot": {"maxNewToken": 5}})
    assert len(warnings) == 1
    assert 'unknown setting "tinyCopilot.maxNewToken" ignored' in warnings[0]
    assert "did you mean tinyCopilot.maxNewTokens?" in warnings[0]


@pytest.mark.parametrize(
    ("data", "shown"),
    [
        (["maxNewTokens", 3], 'the settings must be a JSON object such as {"maxNewTokens": 32}, got an array ["maxNewTokens", 3]'),
        ("fast", 'the settings must be a JSON object such as {"maxNewTokens": 32}, got a string "fast"'),
        ({"tinyCopilot": True}, 'tinyCopilot must be a JSON object such as {"maxNewTokens": 32}, got a boolean true'),
        ({"tinyCopilot": 7}, 'tinyCopilot must be a JSON object such as {"maxNewTokens": 32}, got a number 7'),
    ],
)
def test_non_object_warning_shows_json(data: object, shown: str):
    settings, warnings = ServerSettings.from_json(data)
    assert settings == ServerSettings()
    assert warnings == [shown + "; using the defaults"]


def test_from_json_converts_editor_shapes():
    settings, warnings = ServerSettings.from_json({"checkpoint": "", "maxNewTokens": 20.0})
    assert warnings == []
    assert settings.checkpoint is None
    assert settings.max_new_tokens == 20
    assert isinstance(settings.max_new_tokens, int)


def test_language_enabled():
    settings = ServerSettings(enabled_languages=("python",))
    assert settings.is_language_enabled("python")
    assert not settings.is_language_enabled("markdown")
    assert settings.is_language_enabled(None)
    assert ServerSettings(enabled_languages=("*",)).is_language_enabled("markdown")


def test_effective_threads_within_cores():
    assert 1 <= ServerSettings(threads=256).effective_threads() <= 256


def test_schema_lists_every_field_once():
    schema = settings_schema()
    assert [entry["key"] for entry in schema] == [field.name for field in dataclasses.fields(ServerSettings)]
    assert len({entry["name"] for entry in schema}) == len(schema)


def test_schema_defaults_match_dataclass():
    defaults = ServerSettings()
    for entry in settings_schema():
        value = getattr(defaults, entry["key"])
        assert entry["default"] == (list(value) if isinstance(value, tuple) else value), entry["name"]
        assert entry["description"], entry["name"]


def test_schema_entries_round_trip_through_from_json():
    """Every schema default, sent back under its camelCase name, is accepted."""
    data = {entry["name"]: entry["default"] for entry in settings_schema()}
    settings, warnings = ServerSettings.from_json(data)
    assert warnings == []
    assert settings == ServerSettings()


def test_schema_types_and_limits():
    by_name = {entry["name"]: entry for entry in settings_schema()}
    assert by_name["maxNewTokens"]["type"] == "integer"
    assert by_name["maxNewTokens"]["minimum"] == 1
    assert by_name["temperature"]["type"] == "number"
    assert by_name["multiline"]["enum"] == ["auto", "always", "never"]
    assert by_name["enabledLanguages"]["type"] == "array"
    assert by_name["checkpoint"]["type"] == ["string", "null"]
    assert by_name["tokenHealing"]["type"] == "boolean"
