import io
import json

from tiny_copilot.training.eval_lsp_client import _read_message, shown_text


def _item(text, start_character=None, line=0):
    item = {"insertText": text}
    if start_character is not None:
        position = {"line": line, "character": start_character}
        item["range"] = {"start": position, "end": position}
    return item


def test_shown_text_of_plain_item():
    assert shown_text({"items": [_item("return x")]}, "    ") == "return x"


def test_shown_text_of_empty_results():
    assert shown_text({"items": []}, "") == ""
    assert shown_text(None, "") == ""
    assert shown_text([], "") == ""


def test_shown_text_bare_list():
    assert shown_text([_item("a"), _item("b")], "") == "a"


def test_shown_text_drops_the_replaced_word_prefix():
    # The item replaces "pri" (columns 4-7) with "print(x)", so the editor shows "nt(x)".
    assert shown_text({"items": [_item("print(x)", start_character=4)]}, "    pri") == "nt(x)"


def test_shown_text_counts_range_columns_in_utf16():
    # "é" is one UTF-16 unit, "😀" two; the range starts after both.
    line = "s = '😀é' + na"
    start = len("s = '😀é' + ".encode("utf-16-le")) // 2
    assert shown_text({"items": [_item("name", start_character=start)]}, line) == "me"


def test_shown_text_hides_items_that_rewrite_typed_text():
    assert shown_text({"items": [_item("other", start_character=0)]}, "abc") == ""


def test_shown_text_reads_snippet_values():
    assert shown_text({"items": [{"insertText": {"kind": "snippet", "value": "x = 1"}}]}, "") == "x = 1"


def test_read_message_parses_framed_messages():
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"text": "é"}}, ensure_ascii=False).encode("utf-8")
    stream = io.BytesIO(b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc\r\n\r\n" % len(body) + body)
    assert _read_message(stream) == {"jsonrpc": "2.0", "id": 1, "result": {"text": "é"}}
    assert _read_message(stream) is None
