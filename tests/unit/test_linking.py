"""Side by side: picture B's state, and the same text and token found in another tokens table."""

from __future__ import annotations

import numpy as np

from dashboard.linking import linked_token
from dashboard.state import ViewState, parse_query, with_controls


def _table(texts: list[list[str]]) -> dict[str, np.ndarray]:
    """A tokens table of pre-tokenised texts (their string is the tokens joined)."""
    return {"texts": np.array([" ".join(t) for t in texts]), "token": np.array([w for t in texts for w in t]),
            "text_id": np.array([i for i, t in enumerate(texts) for _ in t]),
            "position": np.array([p for t in texts for p in range(len(t))])}


def test_same_tokenizer_links_by_text_string_and_position():
    a = _table([["snow", "fell"], ["the", "cat", "sat"]])
    b = _table([["the", "cat", "sat"], ["a", "dog"], ["snow", "fell"]])  # another corpus order
    assert linked_token(a, 1, 2, b, same_tokenizer=True) == (0, 2)
    assert linked_token(a, 0, -1, b, same_tokenizer=True) == (2, -1)  # the text alone
    assert linked_token(b, 1, 0, a, same_tokenizer=True) == (-1, -1)  # 'a dog' is not in A
    assert linked_token(a, 7, 0, b, same_tokenizer=True) == (-1, -1)  # no such text


def test_another_tokenizer_links_by_the_spelling_of_the_token():
    a = {**_table([["the", "cat", "sat"]]), "texts": np.array(["the cat sat"])}
    b = {**_table([["[CLS]", "the", "Ġcat", "Ġsat", "[SEP]"]]), "texts": np.array(["the cat sat"])}
    assert linked_token(a, 0, 1, b, same_tokenizer=False) == (0, 2)  # 'cat' is 'Ġcat' there
    c = {**_table([["th", "##e", "dog"]]), "texts": np.array(["the cat sat"])}
    assert linked_token(a, 0, 1, c, same_tokenizer=False) == (0, -1)  # the text, but no such token


def test_picture_b_follows_a_until_set_and_round_trips_in_the_url():
    state = ViewState(view="compare", layer=2, head=5)
    assert (state.picture_b().layer, state.picture_b().head) == (2, 5)  # unset: the same as A
    changed = with_controls(state, b_head=7)
    assert (changed.b.layer, changed.b.head) == (-1, 7) and changed.picture_b().head == 7
    moved = with_controls(changed, layer=4)
    assert moved.picture_b().layer == 4 and moved.picture_b().head == 7  # B's layer follows A's, its head stays
    assert with_controls(changed, b_head=5).b.head == -1  # choosing A's own head links them again
    parsed, notices = parse_query(changed.to_query())
    assert parsed == changed and notices == [] and "b_head=7" in changed.to_query()
    assert "b_model" not in changed.to_query()


def test_picture_b_can_show_the_value_vectors():
    state = with_controls(ViewState(view="compare", layer=1, head=3), b_vectors="v")
    assert state.request_b()["vectors"] == "v" and state.request()["layer"] == 1
    assert "vectors" not in state.request()  # picture A is always queries and keys
    assert parse_query(state.to_query())[0] == state and "b_vectors=v" in state.to_query()
    assert with_controls(state, b_vectors="qk").b.vectors == ""  # back to queries and keys, out of the URL


def test_bad_picture_b_values_fall_back_with_a_notice():
    state, notices = parse_query("?view=compare&b_layer=99&b_model=gpt-17&b_corpus=/etc/passwd")
    assert (state.b.layer, state.b.model, state.b.corpus) == (-1, "", "")
    assert len(notices) == 3
