"""Text as people read it: what goes into a Plotly figure shows as typed, tokens read without their tokenizer's
marks (byte-level, WordPiece, SentencePiece), and every control says what it does."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dashboard.figures.sentence import sentence_figure
from dashboard.figures.single import empty_figure, hover_labels
from dashboard.figures.text import plotly_text
from workers.core.tokens import readable, sentence, with_readable

QUOTED = '"I think it\'s going to rain," said Nora & <b>Sam</b> agreed.'
# tiny-gpt's byte-level BPE (workers/data/tiny_gpt/tokenizer.json) on BOS + QUOTED + " café\n– 😀"
TINY_GPT_TOKENS = ['<|endoftext|>', '"', 'I', 'Ġthin', 'k', 'Ġit', "'s", 'Ġgoing', 'Ġto', 'Ġrain', ',"', 'Ġsaid',
                   'ĠN', 'or', 'a', 'Ġ', '&', 'Ġ', '<', 'b', '>', 'S', 'am', '<', '/', 'b', '>', 'Ġag', 're', 'ed',
                   '.', 'Ġcaf', 'Ã', '©', 'Ċ', 'â', 'Ģ', 'ĵ', 'Ġ', 'ð', 'Ł', 'ĺ', 'Ģ']


def _table(tokens: list[str], special: list[bool], text_id: list[int] | None = None) -> dict[str, np.ndarray]:
    """A tokens table of one text (or of the texts `text_id` says)."""
    return {"token": np.array(tokens), "is_special": np.array(special),
            "text_id": np.array(text_id if text_id is not None else [0] * len(tokens)),
            "position": np.arange(len(tokens))}


def test_plotly_text_writes_only_the_entities_plotly_decodes():
    assert plotly_text(QUOTED) == '"I think it\'s going to rain," said Nora &amp; &lt;b&gt;Sam&lt;/b&gt; agreed.'
    assert plotly_text("&amp;") == "&amp;amp;"  # an entity in a text is shown as written, not decoded
    assert plotly_text("") == ""


def test_figure_titles_labels_and_hover_show_quotes_as_typed():
    words = ['"', "I", "'s", "&", "<"]
    figure = sentence_figure(words, np.eye(5), None, f"text 421: {QUOTED}")
    assert figure.layout.title.text.replace("<br>", " ") == f"text 421: {plotly_text(QUOTED)}"  # wrapped lines
    assert "&quot;" not in figure.layout.title.text and "&#" not in figure.layout.title.text
    assert list(figure.data[-1].text) == ['"', "I", "'s", "&amp;", "&lt;"]
    assert empty_figure('Could not compute "it" <now>').layout.annotations[0].text == \
        'Could not compute "it" &lt;now&gt;'
    table = _table(["[CLS]", '"', "&", "<", "##s", "[SEP]"], [True, False, False, False, False, True])
    assert hover_labels(table, np.arange(1, 5)) == ['<b>"</b> · position 1', "<b>&amp;</b> · position 2",
                                                     "<b>&lt;</b> · position 3", "<b>s</b> · position 4"]


def test_no_dashboard_module_escapes_text_with_html_escape():
    """html.escape writes &quot; and &#x27;, which Plotly shows as written: figure text goes through plotly_text."""
    root = Path(__file__).resolve().parents[2] / "dashboard"
    assert [str(p) for p in root.rglob("*.py") if "escape(" in p.read_text()] == []


def test_byte_level_tokens_read_as_their_text():
    table = with_readable(_table(TINY_GPT_TOKENS, [True] + [False] * (len(TINY_GPT_TOKENS) - 1)))
    labels = list(table["label"])
    assert labels[:12] == ["<|endoftext|>", '"', "I", "thin", "k", "it", "'s", "going", "to", "rain", ',"', "said"]
    assert labels[15:19] == ["␣", "&", "␣", "<"]  # a lone space shows as a sign, never as nothing
    assert labels[31:] == ["caf", "é", "é", "↵", "–", "–", "–", "␣", "😀", "😀", "😀", "😀"]
    assert not any(mark in label for label in labels for mark in ("Ġ", "Ċ", "Ã", "â"))
    assert sentence(table["piece"]) == f"<|endoftext|> {QUOTED} café\n– 😀"


def test_wordpiece_and_sentencepiece_marks_are_dropped_and_pieces_join_words():
    wordpiece = with_readable(_table(["[CLS]", "the", "play", "##ing", "field", "&", "[SEP]", "[CLS]", "##", "[SEP]"],
                                     [True, False, False, False, False, False, True, True, False, True],
                                     [0] * 7 + [1] * 3))
    assert list(wordpiece["label"]) == ["[CLS]", "the", "play", "ing", "field", "&", "[SEP]", "[CLS]", "##", "[SEP]"]
    assert sentence(wordpiece["piece"][:7]) == "[CLS] the playing field & [SEP]"
    sentencepiece = with_readable(_table(["<s>", "▁The", "▁cat", "s", "<0xE2>", "<0x80>", "<0x93>", "▁ok"],
                                         [True] + [False] * 7))
    assert list(sentencepiece["label"]) == ["<s>", "The", "cat", "s", "–", "–", "–", "ok"]
    assert sentence(sentencepiece["piece"]) == "<s> The cats– ok"


def test_a_table_in_the_byte_alphabet_that_is_not_utf8_reads_as_word_pieces():
    """'Ġ' and 'ý' are both in the byte-level alphabet, but ý alone (byte 0xFD) is not UTF-8: word pieces."""
    labels = readable(["[CLS]", "aĠb", "ý", "##c", "[SEP]"], [True, False, False, False, True], [0] * 5)["label"]
    assert list(labels) == ["[CLS]", "aĠb", "ý", "c", "[SEP]"]


def test_image_tokens_read_as_they_are():
    table = with_readable(_table(["[CLS]", "r0c0", "r0c1"], [True, False, False]))
    assert list(table["label"]) == ["[CLS]", "r0c0", "r0c1"]


def test_every_control_has_a_one_line_tooltip():
    from dashboard import guard, ids
    from dashboard.shell.widgets import TIPS

    controls = {*guard.CONTROLS, *guard.BUTTONS, ids.UPLOAD}
    assert controls <= set(TIPS), sorted(controls - set(TIPS))
    assert all(0 < len(TIPS[control]) <= 110 and "\n" not in TIPS[control] for control in controls)


def test_a_long_texts_labels_keep_clear_of_each_other_and_its_title_keeps_whole_words():
    """The sentence view's labels shrink with the text's length so that one row clears the next in the smallest
    graph, and past the smallest size only every second (third …) token is written (all are named on hover); a
    title too long is cut after a whole word, with an ellipsis."""
    from dashboard.figures.sentence import GROWN_LABEL_PX, LABEL_FILL, LABEL_PX, ROWS_PX
    from dashboard.figures.text import shortened

    for n, size, every in ((7, 12, 1), (47, 8, 1), (128, 7, 3)):
        words = [f"w{i}" for i in range(n)]
        queries, keys = sentence_figure(words, np.eye(n), None, "t").data[-2:]
        assert queries.textfont.size == keys.textfont.size == size and list(queries.hovertext) == words
        assert [i for i, text in enumerate(keys.text) if text] == list(range(0, n, every))
        assert queries.meta == keys.meta == {"label_px": size, "label_every": every, "label_fill": LABEL_FILL,
                                             "label_largest": GROWN_LABEL_PX}  # the page may grow them
        assert LABEL_PX[0] <= size <= 0.9 * every * ROWS_PX / n or size == LABEL_PX[1]  # written rows clear
    title = "text 615: After years of saving every spare dollar, the couple bought a farmhouse"
    for limit in range(12, len(title)):
        cut = shortened(title, limit)
        assert len(cut) <= limit and cut.endswith("…") and title.startswith(cut[:-1])
        assert not title[len(cut) - 1].isalnum()  # the last word kept whole
    assert shortened(title, len(title)) == title
