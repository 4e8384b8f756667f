"""Linked selection across two pictures: the same text (by its string) and the same token in another tokens table."""

from __future__ import annotations

import numpy as np

from workers.core.tokens import MARKS


def _bare(token: str) -> str:
    """A token without word-piece marks, lower-cased (how two tokenizers may spell the same piece)."""
    for mark in MARKS:
        token = token.removeprefix(mark)
    return token.lower()


def linked_token(source: dict, text: int, pos: int, target: dict, same_tokenizer: bool) -> tuple[int, int]:
    """(text, pos) in the `target` tokens table of the source's text `text` and token `pos`.

    The text is found by its string; the token by position when both tables come from one tokenizer, else the first
    token of that text spelt the same. (-1, -1) when the text is not in the target; pos -1 when the token is not.
    """
    if not 0 <= text < len(source["texts"]):
        return -1, -1
    found = np.flatnonzero(target["texts"] == source["texts"][text])
    if not len(found):
        return -1, -1
    to_text = int(found[0])
    if pos < 0:
        return to_text, -1
    target_rows = np.flatnonzero(target["text_id"] == to_text)
    if same_tokenizer:
        return to_text, pos if pos < len(target_rows) else -1
    source_rows = np.flatnonzero(source["text_id"] == text)
    if pos >= len(source_rows):
        return to_text, -1
    wanted = _bare(str(source["token"][source_rows[pos]]))
    spelt = [i for i, row in enumerate(target_rows) if _bare(str(target["token"][row])) == wanted]
    return to_text, spelt[0] if spelt else -1
