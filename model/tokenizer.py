"""The byte-level BPE tokenizer as the model uses it: text to ids, ids to exact bytes."""

from __future__ import annotations

import codecs
import hashlib
from functools import cached_property
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.pre_tokenizers import ByteLevel

from .fim import SpecialIds


class CodeTokenizer:
    """A `tokenizers.Tokenizer` plus the per-token byte table that sampling and token healing need."""

    def __init__(self, tokenizer: Tokenizer, json_text: str) -> None:
        # Without this flag, code that spells "<|endoftext|>" would encode to the special id and cut a
        # training document in two. tokenizer.json does not store the flag (tokenizers 0.23), so set it here.
        tokenizer.encode_special_tokens = True
        self.inner = tokenizer
        self.json_text = json_text
        self.specials = SpecialIds(tokenizer.token_to_id)

    @classmethod
    def from_json(cls, json_text: str) -> CodeTokenizer:
        return cls(Tokenizer.from_str(json_text), json_text)

    @classmethod
    def from_file(cls, path: Path) -> CodeTokenizer:
        return cls.from_json(path.read_text(encoding="utf-8"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.json_text.encode("utf-8")).hexdigest()

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Encode plain text; special-token spellings inside `text` stay ordinary text."""
        return self.inner.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.inner.encode_batch(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Decode ids to text, dropping special tokens; invalid UTF-8 becomes U+FFFD."""
        return b"".join(self.token_bytes[i] for i in ids).decode("utf-8", errors="replace")

    @cached_property
    def token_bytes(self) -> list[bytes]:
        """The exact bytes of every id; special tokens map to b""."""
        byte_of_char = {char: byte for byte, char in _byte_level_alphabet().items()}
        table = [b""] * self.vocab_size
        special_ids = self.specials.all()
        for token, token_id in self.inner.get_vocab(with_added_tokens=True).items():
            if token_id in special_ids:
                continue
            table[token_id] = bytes(byte_of_char[ch] for ch in token)
        return table

    def incremental_decoder(self) -> codecs.IncrementalDecoder:
        """Return a UTF-8 decoder that holds back a character split across tokens until it is complete."""
        return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _byte_level_alphabet() -> dict[int, str]:
    """Map each byte to the printable character that byte-level BPE uses for it (GPT-2's table)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    assert set(mapping.values()) == set(ByteLevel.alphabet()), "byte-level alphabet differs from tokenizers'"
    return mapping
