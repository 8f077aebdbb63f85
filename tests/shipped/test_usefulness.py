"""The shipped model must be useful: greedy suggestions through the server's completion path.

Each case calls `Completer.complete`, the code path that `tiny-copilot-lsp` uses, with the default
settings. Decoding is greedy, so the same text always gives the same suggestion.
"""

from __future__ import annotations

import re

import pytest

from tiny_copilot.model.checkpoint import load_checkpoint, shipped_checkpoint_path
from tiny_copilot.model.engine import Engine
from tiny_copilot.server.completion import Completer
from tiny_copilot.server.settings import ServerSettings

MAX_TAB_PRESSES = 24

# NOTE: the shipped model (3.4M parameters, 4 hours on a 2-core CPU, 0.89 bits per byte) misses the
# cases marked xfail. strict=True makes such a test fail once a better model passes it, so the mark goes then.

STANDARD_HEADERS = {
    # C++ standard library
    "algorithm", "array", "atomic", "bitset", "cassert", "cctype", "chrono", "cmath", "complex", "cstddef",
    "cstdint", "cstdio", "cstdlib", "cstring", "deque", "exception", "functional", "fstream", "iomanip",
    "ios", "iosfwd", "iostream", "istream", "iterator", "limits", "list", "map", "memory", "mutex", "new",
    "numeric", "optional", "ostream", "queue", "random", "set", "sstream", "stack", "stdexcept", "string",
    "string_view", "thread", "tuple", "type_traits", "typeinfo", "unordered_map", "unordered_set", "utility",
    "variant", "vector", "climits", "cfloat", "initializer_list", "locale", "regex", "ratio", "valarray",
    # C standard library
    "assert.h", "ctype.h", "errno.h", "float.h", "limits.h", "locale.h", "math.h", "setjmp.h", "signal.h",
    "stdarg.h", "stddef.h", "stdint.h", "stdio.h", "stdlib.h", "string.h", "time.h", "stdbool.h", "wchar.h",
    "inttypes.h",
}  # fmt: skip


@pytest.fixture(scope="module")
def completer() -> Completer:
    checkpoint = load_checkpoint(shipped_checkpoint_path())
    return Completer(Engine(checkpoint.model, checkpoint.tokenizer), ServerSettings())


def suggest(completer: Completer, text: str, language: str) -> str:
    suggestion = completer.complete(text, len(text), language)
    return suggestion.text if suggestion else ""


def press_tab_until_done(completer: Completer, text: str) -> str:
    """Accept suggestions at the end of `text` as a user pressing Tab would; Enter auto-indents when none shows."""
    for _ in range(MAX_TAB_PRESSES):
        suggestion = suggest(completer, text, "python")
        if suggestion:
            text += suggestion
            continue
        line = text.rsplit("\n", 1)[-1]
        if not line.strip() and text.endswith("\n" + line) and text.rstrip(" ").endswith("\n\n"):
            break  # two empty lines in a row: the function is over
        indent = line[: len(line) - len(line.lstrip())]
        text += "\n" + indent + ("    " if line.rstrip().endswith(":") else "")
    return text


@pytest.mark.xfail(strict=True, reason="the shipped model suggests nothing in the empty body, so Tab only adds blank lines")
def test_dfs_body_is_a_plausible_depth_first_search(completer: Completer) -> None:
    prompt = "def dfs(graph, start):\n    "
    body = press_tab_until_done(completer, prompt)[len(prompt) :]

    assert re.search(r"\b(visited|seen|explored)\b", body), f"no visited set in:\n{body}"
    assert re.search(r"\bstack\b|\bdfs\(", body), f"neither an explicit stack nor recursion in:\n{body}"
    assert re.search(r"\bfor \w+ in .*(graph|neighbo|adj)", body), f"no loop over neighbours in:\n{body}"


@pytest.mark.xfail(strict=True, reason="the shipped model proposes `1, len(iterables)):`, with a name the file does not define")
def test_range_call_is_closed_with_argument_and_colon(completer: Completer) -> None:
    text = "def total(values):\n    result = 0\n    for i in range("
    suggestion = suggest(completer, text, "python")

    assert re.fullmatch(r"[\w.]+(\([\w.]*\))?( *[-+] *\w+)?\):", suggestion.strip()), suggestion


def test_cpp_for_loop_header_is_completed(completer: Completer) -> None:
    text = "#include <vector>\n\nint sum(const std::vector<int>& v) {\n    int n = v.size();\n    int s = 0;\n    for (int i = 0; i < n; "
    suggestion = suggest(completer, text, "cpp")

    # Brace on the same line, or (Boost and GNU style) the suggestion ends after ")" and "{" follows on the next line.
    assert suggestion in ("++i)", "i++)") or suggestion.startswith(("++i) {", "i++) {")), suggestion


def test_include_completes_a_standard_header(completer: Completer) -> None:
    text = "#include <"
    suggestion = suggest(completer, text, "cpp")

    header = suggestion.split(">")[0]
    assert suggestion.rstrip().endswith(">"), suggestion
    assert header in STANDARD_HEADERS, suggestion


@pytest.mark.xfail(strict=True, reason="the shipped model rarely copies names from the file yet")
@pytest.mark.parametrize(
    ("text", "defined_names"),
    [
        (
            "def normalize(raw_scores):\n    total_weight = sum(raw_scores)\n    return [score / ",
            {"total_weight"},
        ),
        (
            "class Inventory:\n    def __init__(self):\n        self.items_by_name = {}\n\n"
            "    def add(self, name, item):\n        self.",
            {"items_by_name"},
        ),
        (
            "def parse_header(line):\n    key, value = line.split(':', 1)\n    return key.strip(), ",
            {"value"},
        ),
    ],
)
def test_suggestion_uses_names_defined_earlier(completer: Completer, text: str, defined_names: set[str]) -> None:
    suggestion = suggest(completer, text, "python")

    used = set(re.findall(r"[A-Za-z_]\w*", suggestion))
    assert used & defined_names, f"{suggestion!r} uses none of {defined_names}"
