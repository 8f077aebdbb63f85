"""Stop rules and clean-up of suggestions, on hand-made documents with the cursor marked by "|"."""

from __future__ import annotations

import pytest

from tiny_copilot.server.postprocess import (
    CursorContext,
    IndentStyle,
    apply_indent_style,
    choose_mode,
    cut_index,
    detect_indent,
    finalize,
    trim_line_after_overlap,
)


def context_at(marked: str, language_id: str | None = "python") -> CursorContext:
    """Build the context of a document whose cursor is marked by "|"."""
    offset = marked.index("|")
    return CursorContext.from_text(marked[:offset] + marked[offset + 1 :], offset, language_id)


def accept(marked: str, suggestion: tuple[str, int] | None) -> str:
    """Return the document after accepting `suggestion` at the "|" cursor."""
    assert suggestion is not None
    text, replace_chars = suggestion
    offset = marked.index("|")
    return marked[:offset] + text + marked[offset + 1 + replace_chars :]


@pytest.mark.parametrize(
    ("marked", "multiline", "mode"),
    [
        ("def f():\n    |", "auto", "multi"),  # blank line after a block opener
        ("int f() {\n    |\n}", "auto", "multi"),
        ("x = [\n    |\n]", "auto", "multi"),
        ("x = 1\n|", "auto", "single"),  # blank line, no opener above
        ("def f():\n    return |", "auto", "single"),  # code before the cursor
        ("print(|)", "auto", "single"),
        ("def f():\n    |x = 1", "auto", "single"),  # mid-line: code after the cursor
        ("def f():\n    |", "never", "single"),
        ("x = 1\n|", "always", "multi"),
        ("call(a, |)", "always", "multi"),  # only closers after the cursor
        ("call(|a)", "always", "single"),
    ],
)
def test_choose_mode(marked: str, multiline: str, mode: str):
    assert choose_mode(context_at(marked), multiline) == mode


def test_colon_opens_block_in_python_only():
    assert choose_mode(context_at("case 1:\n    |", "python"), "auto") == "multi"
    assert choose_mode(context_at("case 1:\n    |", "c"), "auto") == "single"


def test_single_line_cuts_at_newline():
    context = context_at("x = |")
    assert cut_index("foo(1)\nbar", context, "single", 8) == len("foo(1)")
    assert cut_index("foo(1", context, "single", 8) is None


def test_multi_line_stops_at_blank_line():
    context = context_at("def f():\n    |")
    generated = "x = 1\n    return x\n\ndef g():"
    assert cut_index(generated, context, "multi", 8) == len("x = 1\n    return x")


def test_multi_line_waits_for_blank_line_to_complete():
    context = context_at("def f():\n    |")
    assert cut_index("x = 1\n", context, "multi", 8) is None
    assert cut_index("x = 1\n    ", context, "multi", 8) is None


def test_multi_line_stops_at_dedent():
    context = context_at("def f():\n    if x:\n        |")
    generated = "y = 1\n        z = 2\n    return y"
    assert cut_index(generated, context, "multi", 8) == len("y = 1\n        z = 2")


def test_multi_line_keeps_deeper_lines():
    context = context_at("def f():\n    |")
    generated = "for i in x:\n        print(i)\n    return"
    assert cut_index(generated, context, "multi", 8) is None


def test_multi_line_stops_at_closing_brace_of_block():
    context = context_at("int f() {\n    |\n}", "c")
    assert cut_index("return 1;\n}", context, "multi", 8) == len("return 1;")


def test_multi_line_stops_at_max_lines():
    context = context_at("def f():\n    |")
    generated = "a = 1\n    b = 2\n    c = 3\n    d"
    assert cut_index(generated, context, "multi", 3) == len("a = 1\n    b = 2\n    c = 3")


def test_multi_line_stops_at_repeated_next_line():
    context = context_at("def f():\n    |\n    return total\n")
    generated = "total = 0\n    return total\n"
    assert cut_index(generated, context, "multi", 8) == len("total = 0")


def test_multi_line_stops_at_repeated_line():
    context = context_at("def f(graph):\n    |")
    generated = "visited = set()\n    visited = set()\n    return visited\n"
    assert cut_index(generated, context, "multi", 8) == len("visited = set()")


def test_multi_line_keeps_short_repeated_lines():
    context = context_at("int f() {\n    |")
    generated = "if (a) {\n        g();\n        g();\n    }\n    }"
    assert cut_index(generated, context, "multi", 8) is None


def test_finalize_applies_line_rules_after_generation():
    context = context_at("def f():\n    |")
    assert finalize("x = 1\n    return x\n\nfoo", context, "multi", 8) == ("x = 1\n    return x", 0)


def test_finalize_drops_incomplete_last_line_when_truncated():
    context = context_at("def f():\n    |")
    assert finalize("x = 1\n    return x + y +", context, "multi", 8, truncated=True) == ("x = 1", 0)
    assert finalize("x = 1 + y +", context, "multi", 8, truncated=True) == ("x = 1 + y +", 0)


@pytest.mark.parametrize("generated", ["", "   ", "\n", " \t \n  "])
def test_finalize_drops_whitespace_only(generated: str):
    assert finalize(generated, context_at("x = |"), "single", 8) is None


def test_finalize_removes_carriage_returns():
    assert finalize("a\r\n    b", context_at("def f():\n    |"), "multi", 8) == ("a\n    b", 0)


def test_finalize_trims_trailing_whitespace():
    assert finalize("foo()   ", context_at("x = |"), "single", 8) == ("foo()", 0)


@pytest.mark.parametrize(
    ("marked", "generated", "accepted"),
    [
        ("print(|)", "x)", "print(x)"),  # the auto-inserted ")" is not doubled
        ("print(|)", "foo(a)", "print(foo(a))"),  # this ")" closes the suggestion's own "("
        ("print(|)", "foo(a))", "print(foo(a))"),
        ("f(g(|))", "x))", "f(g(x))"),
        ("f(g(|))", "x)", "f(g(x))"),  # a partial run of closers
        ("if f(|):", "x):", "if f(x):"),
        ("if f(|):", "x)", "if f(x):"),
        ('print("|")', 'hi")', 'print("hi")'),
        ("call(|, b)", "a, b)", "call(a, b)"),  # the whole rest of the line repeated
        ("print(|)", "x) + 1", "print(x) + 1"),  # goes past the ")": replaces it
        ("x = |", "1", "x = 1"),
    ],
)
def test_finalize_avoids_doubling_line_after(marked: str, generated: str, accepted: str):
    assert accept(marked, finalize(generated, context_at(marked), "single", 8)) == accepted


def test_finalize_drops_copy_of_balanced_rest_of_line():
    # The suggestion's ")" closes its own "(", so the closer rule alone kept it and doubled the line.
    assert finalize("get(key, default)", context_at("return self.data.|get(key, default)"), "single", 8) is None


@pytest.mark.parametrize(
    ("marked", "generated", "accepted"),
    [
        ("call(|, b)", "a, c)", "call(a, b)"),  # a rewrite of the rest of the line is cut after its word
        ("total = compute_|(data)", "sum(values)", "total = compute_sum(data)"),
        ("if |x > 0:", "not x > 0:", "if not x > 0:"),  # the space keeps the two words apart
        ("x = max(|, 1)", "a + b, 1)", "x = max(a, 1)"),
    ],
)
def test_mid_line_suggestion_is_one_word(marked: str, generated: str, accepted: str):
    assert accept(marked, finalize(generated, context_at(marked), "single", 8)) == accepted


@pytest.mark.parametrize(
    ("marked", "generated"),
    [
        ("data = json.lo|ad(f)", "ad(file)"),  # inside a word, rewriting the rest of the line
        ("if |x > 0:", "not"),
        ("value = |  # default", "[1, 2]"),  # no word at the start
        ("if ch|ar in QUOTES:", "ar in"),  # inside a word: "ar " would give "if char ar in"
        ("SKIP_S|ECRET = 1", "TATE ECRET"),  # "TATE " would give "SKIP_STATE ECRET"
        ("static |int count = 0;", "int count = 0;"),  # "int " would double the word after the cursor
        ("for (int i = 0; |i < n; ++i)", "i < n; ++i)"),
        # Inside the indentation, before code: "else" would give "  else  return 2".
        ("def f(x):\n    if x:\n        return 1\n  |  return 2\n", "else"),
        ("int f(void)\n{\n\t|\tputs(s);\n}\n", "int"),
        ("|    return 2", "x = 1"),
    ],
)
def test_mid_line_unfit_word_dropped(marked: str, generated: str):
    assert finalize(generated, context_at(marked), "single", 8) is None


def test_mid_line_stops_after_word():
    # The engine calls cut_index as a stop rule, so a mid-line suggestion costs a word's tokens, not a line's.
    assert cut_index("compute(", context_at("x = |(data)"), "single", 8) == len("compute")
    assert cut_index("compute", context_at("x = |(data)"), "single", 8) is None


def test_overlap_keeps_word_that_only_ends_like_rest():
    # "x" after the cursor is not a closer: trimming only one matching letter would guess.
    assert trim_line_after_overlap("max", "y = ", "x + 1") == ("max", 0)


def test_overlap_replaces_only_matching_closers():
    assert trim_line_after_overlap("x] + 1", "print(", ")") == ("x] + 1", 0)


def test_finalize_drops_lines_that_follow_cursor():
    marked = "def f():\n    |\n    return total\n"
    assert finalize("total = 0\n    return total", context_at(marked), "multi", 8) == ("total = 0", 0)


def test_finalize_drops_copy_of_next_line():
    marked = "def f():\n    |\n    return total\n"
    assert finalize("return total", context_at(marked), "multi", 8) is None


def test_finalize_drops_copy_of_next_lines_skipping_blank():
    marked = "x = 1\n|\n\ny = 2\nz = 3\n"
    assert finalize("y = 2\nz = 3", context_at(marked), "multi", 8) is None


def test_detect_indent_styles():
    assert detect_indent("def f():\n    if x:\n        y\n") == IndentStyle(use_tabs=False, width=4)
    assert detect_indent("def f():\n  if x:\n    y\n  z\n") == IndentStyle(use_tabs=False, width=2)
    assert detect_indent("int f() {\n\tif (x) {\n\t\ty();\n\t}\n}\n").use_tabs
    assert detect_indent("") == IndentStyle(use_tabs=False, width=4)


def test_indent_follows_tab_document():
    marked = "int f() {\n\tif (x) {\n\t\t|\n\t}\n}\n"
    context = context_at(marked, "c")
    assert context.indent.use_tabs
    result = finalize("a();\n        b();", context, "multi", 8)
    assert result == ("a();\n\t\tb();", 0)


def test_top_of_file_indent_from_below():
    """With no indented line above the cursor yet, the indentation below it decides."""
    assert context_at("import os\n|\ndef f():\n\treturn 1\n").indent.use_tabs
    assert context_at("import os\n|\ndef f():\n  return 1\n").indent == IndentStyle(use_tabs=False, width=2)
    # Indented lines above the cursor decide, whatever follows it.
    assert not context_at("def f():\n    pass\n|\ndef g():\n\treturn 1\n").indent.use_tabs


LICENCE_HEADER = "/*\n" + "".join(f" * Line {i} of the licence.\n" for i in range(30)) + " */\n"


def test_licence_header_comment_does_not_make_a_tab_file_use_spaces():
    """The ` * ` lines of a C block comment are no indentation: a licence header does not turn a tab file into a space file."""
    marked = LICENCE_HEADER + "int f(void)\n{\n\tif (x) {\n\t\t|\n\t}\n}\n"
    context = context_at(marked, "c")
    assert context.indent.use_tabs
    assert finalize("a();\n        b();", context, "multi", 8) == ("a();\n\t\tb();", 0)
    # With the header the only lines above the cursor, the code below it decides.
    assert context_at(LICENCE_HEADER + "|\nint g(void)\n{\n\treturn 1;\n}\n", "c").indent.use_tabs
    assert detect_indent(LICENCE_HEADER + "int g(void)\n{\n    return 1;\n}\n") == IndentStyle(use_tabs=False, width=4)


def test_indent_follows_space_document():
    marked = "def f():\n    if x:\n        |\n"
    result = finalize("a()\n\t\tb()", context_at(marked), "multi", 8)
    assert result == ("a()\n        b()", 0)


def test_indent_of_first_line_on_blank_line():
    style = IndentStyle(use_tabs=True, width=4)
    assert apply_indent_style("    a\n    b", style, "") == "\ta\n\tb"
    assert apply_indent_style("  a", style, "x =") == "  a", "text after code on the line keeps its spaces"


def test_context_at_document_edges():
    empty = CursorContext.from_text("", 0)
    assert (empty.line_before, empty.line_after, empty.next_lines) == ("", "", ())
    text = "a 😀 b\nc"
    for offset in range(len(text) + 1):
        context = CursorContext.from_text(text, offset)
        assert context.line_before + context.line_after in ("a 😀 b", "c")


def test_repetition_cut_keeps_first_copy_of_a_loop() -> None:
    from tiny_copilot.server.postprocess import repetition_cut

    assert repetition_cut("range_value, end), end), end)") == len("range_value, end)")
    assert repetition_cut("weight=0, weight=0, weight=0, ") == len("weight=0, ")
    assert repetition_cut("split('/', '/', '/', '/', '/', ") == len("split('/', ")


def test_repetition_cut_drops_long_letter_or_digit_run() -> None:
    from tiny_copilot.server.postprocess import LETTER_OR_DIGIT_RUN, repetition_cut

    assert repetition_cut("x = 10" + "4" * LETTER_OR_DIGIT_RUN) == len("x = 10")
    assert repetition_cut("name = t" + "z" * LETTER_OR_DIGIT_RUN) == len("name = t")
    assert repetition_cut("mask = 0x" + "F" * (LETTER_OR_DIGIT_RUN - 1)) is None
    assert repetition_cut("# " + "-" * 40) is None  # separators are not letters or digits


def test_repetition_cut_leaves_short_runs_and_normal_code() -> None:
    from tiny_copilot.server.postprocess import repetition_cut

    assert repetition_cut("f(g(h(x)))") is None
    assert repetition_cut("# ------------") is None
    assert repetition_cut("return a + b") is None
    assert repetition_cut("ab ab") is None
    assert repetition_cut("x = [(), (), ()]") is None


def test_unclosed_docstring_is_not_suggested():
    # Accepting it would turn the rest of the file into a string literal.
    assert finalize('"""Return the graph.', context_at("def f():\n    |"), "multi", 8) is None
    assert finalize("x = 1\n    '''Note", context_at("def f():\n    |"), "multi", 8) == ("x = 1", 0)


def test_closed_docstring_is_kept():
    generated = '"""Return the graph."""\n    return g'
    assert finalize(generated, context_at("def f():\n    |"), "multi", 8) == (generated, 0)


def test_docstring_end_is_kept_inside_docstring():
    context = context_at('def f():\n    """Return |')
    assert context.inside_triple_quotes
    assert finalize('the graph."""', context, "single", 8) == ('the graph."""', 0)


def test_triple_quotes_in_cpp_are_left_alone():
    assert finalize('"""raw', context_at("int f() {\n    |", "cpp"), "multi", 8) == ('"""raw', 0)
