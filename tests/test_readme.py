"""The READMEs: the settings table matches the server, and README.zh-CN.md mirrors README.md.

The mirror checks compare what a translation must not change: code blocks, tables, figures, inline
code (commands, flags, file names) and links, section by section. They cannot judge the Chinese prose.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from tiny_copilot.server.settings import settings_schema

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_ZH = ROOT / "README.zh-CN.md"

CODE_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
SHELL_COMMENT = re.compile(r"[ \t]+# .*$", re.MULTILINE)
# A placeholder such as `<your copy of tiny-copilot>` or `tinyCopilot.<name>` may be translated.
PLACEHOLDER = re.compile(r"<[^<>\n]*>")
INLINE_CODE = re.compile(r"`([^`]+)`")
LIST_ITEM = re.compile(r"^(?:[-*]|\d+\.) ", re.MULTILINE)
LINK = re.compile(r"\]\(([^)\s]+)\)")
# 1,033 and 0.87 are one figure each, and a comma or full stop after a figure is punctuation.
NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Each README links to the other one in its last line.
LANGUAGE_LINKS = {README.name, README_ZH.name}


def settings_rows(readme: Path) -> dict[str, tuple[str, str]]:
    """Map each setting in the README's settings table to its (default, description) cells."""
    row = re.compile(r"^\| `(\w+)` \| [^|]+ \| `([^`]*)` \| (.*) \|$", re.MULTILINE)
    return {name: (default, description) for name, default, description in row.findall(settings_table(readme))}


def settings_table(readme: Path) -> str:
    text = readme.read_text(encoding="utf-8")
    return text.split("<!-- settings:begin -->")[1].split("<!-- settings:end -->")[0]


def code_blocks(readme: Path) -> list[tuple[str, str]]:
    """Return each fenced block's language and code, without shell comments and with placeholders blanked."""
    blocks = []
    for language, code in CODE_BLOCK.findall(readme.read_text(encoding="utf-8")):
        if language in ("bash", "sh"):
            code = SHELL_COMMENT.sub("", code)
        blocks.append((language, PLACEHOLDER.sub("<...>", code)))
    return blocks


def sections(readme: Path) -> list[str]:
    """Split the README outside its code blocks at each `## ` heading, with the text above the first heading as the first section."""
    prose = CODE_BLOCK.sub("", readme.read_text(encoding="utf-8"))
    return re.split(r"^## ", prose, flags=re.MULTILINE)


def tables(readme: Path) -> list[list[str]]:
    """Return the README's tables outside code blocks, each as its list of `|` lines."""
    found: list[list[str]] = []
    previous_was_row = False
    for line in CODE_BLOCK.sub("", readme.read_text(encoding="utf-8")).splitlines():
        is_row = line.startswith("|")
        if is_row and not previous_was_row:
            found.append([])
        if is_row:
            found[-1].append(line)
        previous_was_row = is_row
    return found


def shape(text: str) -> tuple[int, int]:
    """Count the paragraphs (blocks between blank lines, so a table counts as one) and the list items of a section."""
    paragraphs = [block for block in re.split(r"\n\s*\n", text) if block.strip()]
    return len(paragraphs), len(LIST_ITEM.findall(text))


def numbers(text: str) -> Counter[str]:
    return Counter(NUMBER.findall(text))


def inline_code(text: str) -> Counter[str]:
    """Count each distinct inline code span once: a translation may quote a command more or less often."""
    return Counter({PLACEHOLDER.sub("<...>", " ".join(span.split())) for span in INLINE_CODE.findall(text)})


def links(text: str) -> Counter[str]:
    return Counter(target for target in LINK.findall(text) if target not in LANGUAGE_LINKS)


def differences(english: Counter[str], chinese: Counter[str]) -> dict[str, list[str]]:
    """Return what only one side has, or {} when both contain the same items."""
    only_english, only_chinese = english - chinese, chinese - english
    if not only_english and not only_chinese:
        return {}
    return {
        "only in README.md": sorted(only_english.elements()),
        "only in README.zh-CN.md": sorted(only_chinese.elements()),
    }


def section_differences(item_of: Callable[[str], Counter[str]]) -> dict[str, dict[str, list[str]]]:
    """Compare `item_of(section)` of each README.md section with its README.zh-CN.md counterpart."""
    found = {}
    for english, chinese in zip(sections(README), sections(README_ZH)):
        difference = differences(item_of(english), item_of(chinese))
        if difference:
            found[english.splitlines()[0]] = difference
    return found


def test_readme_settings_match_server_defaults() -> None:
    rows = settings_rows(README)

    expected = {entry["name"]: (json.dumps(entry["default"]), entry["description"]) for entry in settings_schema()}
    assert rows == expected


def test_chinese_settings_table_is_identical() -> None:
    # The descriptions stay in English there: VS Code's settings page shows the same English text.
    assert settings_table(README_ZH) == settings_table(README)


def test_chinese_code_blocks_match() -> None:
    assert code_blocks(README_ZH) == code_blocks(README)


def test_chinese_sections_match() -> None:
    assert len(sections(README_ZH)) == len(sections(README))


def test_chinese_paragraphs_and_list_items_match() -> None:
    english = {section.splitlines()[0]: shape(section) for section in sections(README)}
    chinese = {heading: shape(section) for heading, section in zip(english, sections(README_ZH))}

    assert chinese == english


def test_chinese_table_rows_and_figures_match() -> None:
    english, chinese = tables(README), tables(README_ZH)

    assert [len(table) for table in chinese] == [len(table) for table in english]
    for english_table, chinese_table in zip(english, chinese):
        for english_row, chinese_row in zip(english_table, chinese_table):
            assert numbers(chinese_row) == numbers(english_row), english_row


def test_chinese_figures_match() -> None:
    assert section_differences(numbers) == {}


def test_chinese_inline_code_matches() -> None:
    assert section_differences(inline_code) == {}


def test_chinese_links_match() -> None:
    assert section_differences(links) == {}
