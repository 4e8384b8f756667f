"""How tokens read: each token as the characters of the text it stands for, without its tokenizer's marks.

Tokenizers spell tokens in their own alphabets: WordPiece marks a piece that continues a word with `##`,
SentencePiece marks a word's start with `▁` (and may spell a byte as `<0x0A>`), byte-level BPE (GPT-2) writes each
byte as one printable character (`Ġ` a space, `Ċ` a newline, `Ã©` the two bytes of é). The tokens table keeps the
tokenizer's spelling (exports, search keys and the linked selection read it); what people read is `readable`:

- `label`: the token alone, marks removed (`Ġless` -> `less`, `##ing` -> `ing`, `▁the` -> `the`), line breaks and
  tabs shown as signs (`↵`, `⇥`), a token of spaces only as `␣`; each byte piece of a character split across
  tokens shows that character;
- `piece`: the text the token adds to its sentence (leading space included), so that a text's pieces joined
  read as the text (special tokens as they are, set apart by spaces).

Pure Python and numpy: the web process reads it (it never loads a tokenizer).
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Sequence

import numpy as np

SIGNS = {"\n": "↵", "\r": "␍", "\t": "⇥"}  # characters a label cannot show as themselves
SPACE_SIGN = "␣"  # a token of spaces only
CONTINUATION = "##"  # WordPiece: this piece continues the word before it
WORD_START = "▁"  # SentencePiece: this piece starts a word (a space before it)
MARKS = (CONTINUATION, "Ġ", WORD_START)  # the marks a token may start with (ignored where a token is typed)
BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")  # SentencePiece: one byte of a character it has no piece for


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's byte -> character table: printable bytes stand for themselves, the others for chr(256 + n)."""
    printable = {*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)}
    table, shifted = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + shifted)
            shifted += 1
    return table


BYTE_OF = {char: byte for byte, char in _byte_alphabet().items()}  # 'Ġ' -> 0x20, 'Ċ' -> 0x0A, 'a' -> 0x61
SPACING = frozenset(_byte_alphabet()[byte] for byte in b" \n")  # 'Ġ', 'Ċ': a space, a line break


def is_byte_level(tokens: Sequence[str], special: Sequence[bool]) -> bool:
    """Whether a table's tokens are spelt in the byte-level alphabet: every ordinary token's characters are in it,
    and some token holds a space or a line break spelt the byte-level way (`Ġ`, `Ċ`). A table that passes but whose
    bytes are not UTF-8 is read as word pieces after all (`readable`)."""
    characters = set("".join(token for token, is_special in zip(tokens, special, strict=True) if not is_special))
    return bool(characters & SPACING) and characters <= BYTE_OF.keys()


def _bytes_of(token: str, byte_level: bool, sentencepiece: bool) -> bytes:
    """The bytes an ordinary token adds to its text (a word's first piece with the space before it)."""
    if byte_level:
        return bytes(BYTE_OF[char] for char in token)
    fallback = BYTE_FALLBACK.match(token)
    if fallback:
        return bytes([int(fallback.group(1), 16)])
    if sentencepiece:
        return token.replace(WORD_START, " ").encode("utf-8")
    if token.startswith(CONTINUATION) and len(token) > len(CONTINUATION):
        return token[len(CONTINUATION):].encode("utf-8")
    return b" " + token.encode("utf-8")


def _decoded(tokens: Sequence[str], special: Sequence[bool], byte_level: bool, sentencepiece: bool
             ) -> list[str] | None:
    """Each token's piece of one text, decoded as UTF-8 in sequence (a character split across tokens belongs to
    the token that completes it); None when byte-level bytes are not UTF-8 before the text's end."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    pieces: list[str] = []
    for index, (token, is_special) in enumerate(zip(tokens, special, strict=True)):
        if is_special:
            pieces.append(" " + token)
            continue
        try:
            piece = decoder.decode(_bytes_of(token, byte_level, sentencepiece), final=index == len(tokens) - 1)
        except UnicodeDecodeError:
            if byte_level and index < len(tokens) - 1:
                return None
            decoder.reset()
            piece = "\N{REPLACEMENT CHARACTER}"
        after_special = index > 0 and special[index - 1]
        pieces.append(" " + piece if after_special and piece[:1].strip() else piece)  # set apart from a special
    return pieces


def label_of(piece: str) -> str:
    """A piece as one token's label: line breaks and tabs as signs, spaces around it dropped (spaces only: ␣)."""
    shown = "".join(SIGNS.get(char, char) for char in piece)
    return shown.strip() or SPACE_SIGN * len(shown)


def _labels(pieces: list[str]) -> list[str]:
    """Each piece's label; a piece that completes no character (the first bytes of one) shows the next character
    completed after it."""
    labels, following = [""] * len(pieces), ""
    for index in range(len(pieces) - 1, -1, -1):
        if pieces[index]:
            labels[index] = label_of(pieces[index])
            following = pieces[index].lstrip()[:1] or pieces[index][:1]
        else:
            labels[index] = label_of(following) if following else "\N{REPLACEMENT CHARACTER}"
    return labels


def _text_bounds(text_id: Sequence[int]) -> list[int]:
    """Row bounds of each text's tokens: [0, first row of text 2, ..., number of rows]."""
    return [0, *(np.flatnonzero(np.diff(np.asarray(text_id))) + 1).tolist(), len(text_id)]


def _pieces(tokens: list[str], special: list[bool], bounds: list[int], byte_level: bool) -> list[str] | None:
    """Every text's pieces (None when the tokens are not byte-level after all)."""
    sentencepiece = not byte_level and any(WORD_START in token for token in tokens)
    pieces: list[str] = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        text = _decoded(tokens[start:end], special[start:end], byte_level, sentencepiece)
        if text is None:
            return None
        pieces += text
    return pieces


def readable(tokens: Sequence[str], special: Sequence[bool], text_id: Sequence[int]) -> dict[str, np.ndarray]:
    """{"label", "piece"} [token] of a tokens table (rows grouped by text, in position order)."""
    tokens, special = [str(token) for token in tokens], [bool(flag) for flag in special]
    bounds = _text_bounds(text_id)
    pieces = _pieces(tokens, special, bounds, byte_level=True) if is_byte_level(tokens, special) else None
    if pieces is None:
        pieces = _pieces(tokens, special, bounds, byte_level=False) or []
    return {"label": np.array(_labels_by_text(pieces, bounds), dtype=str), "piece": np.array(pieces, dtype=str)}


def _labels_by_text(pieces: list[str], bounds: list[int]) -> list[str]:
    """Labels of every text's pieces (a character is never borrowed across two texts)."""
    return [label for start, end in zip(bounds[:-1], bounds[1:], strict=True) for label in _labels(pieces[start:end])]


def with_readable(table: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A tokens table with its `label` and `piece` columns (the same table when it has them)."""
    if "label" in table and "piece" in table:
        return table
    return {**table, **readable(table["token"], table["is_special"], table["text_id"])}


def sentence(pieces: Sequence[str]) -> str:
    """A text's pieces joined: the text as its tokens spell it."""
    return "".join(pieces).strip()
