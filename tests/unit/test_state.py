"""URL query strings: every state round-trips; bad values fall back to defaults with a notice."""

from __future__ import annotations

import pytest

from dashboard.state import ViewState, parse_query, with_controls


@pytest.mark.parametrize("method", ["umap", "attention"])
def test_round_trip(method):
    state = ViewState(layer=3, head=7, method=method, dims=3, norm="none", color="position")
    parsed, notices = parse_query(state.to_query())
    assert parsed == state and notices == [] and f"method={method}" in state.to_query()


def test_empty_query_gives_defaults():
    assert parse_query("") == (ViewState(), [])
    assert parse_query(None) == (ViewState(), [])


@pytest.mark.parametrize(("query", "field", "fragment"), [
    ("?layer=99", "layer", "not in 0..5"),
    ("?layer=-1", "layer", "not in 0..5"),
    ("?head=abc", "head", "not in 0..11"),
    ("?method=isomap", "method", "Unknown method"),
    ("?dims=4", "dims", "Unknown dims"),
    ("?model=gpt2", "model", "Unknown model"),
    ("?corpus=/etc/passwd", "corpus", "Unknown corpus"),
    ("?norm=%3Cscript%3E", "norm", "Unknown norm"),
    ("?color=rainbow", "color", "Unknown colour"),
    ("?color=row", "color", "Colour 'patch row (images)' applies to image models only; showing 'role'"),
    ("?view=matrix3000", "view", "Unknown view"),
    ("?order=alphabetical", "order", "Unknown order"),
    ("?order=entropy&keep=abc", "keep", "is not a number"),
    ("?order=entropy&keep=nan", "keep", "is not a number"),
    ("?tint=rainbow", "tint", "Unknown tint"),
    ("?weight=heavy", "weight", "Unknown weight"),
    ("?text=-2", "text", "is not in 0..4999; no text selected"),
    ("?pos=x", "pos", "Token position 'x' is not in 0..127; no token selected"),
])
def test_bad_values_fall_back_with_a_notice(query, field, fragment):
    state, notices = parse_query(query + "&head=2" if field != "head" else query)
    assert getattr(state, field) == getattr(ViewState(), field)
    assert len(notices) == 1 and fragment in notices[0] and " -1." not in notices[0]
    if field != "head":
        assert state.head == 2  # the good values are kept


def test_garbage_query_never_raises():
    for query in ["?&&&==", "?layer", "?layer=1&layer=2", "?" + "x" * 10_000, "?head=%ZZ", "?dims="]:
        state, _notices = parse_query(query)
        assert isinstance(state, ViewState)


def test_controls_are_clamped_to_the_model():
    state = with_controls(ViewState(), layer=3, head=11, dims="3")
    assert (state.layer, state.head, state.dims) == (3, 11, 3)


def test_selection_search_and_display_options_round_trip():
    state = ViewState(view="sentence", search="the", text=12, pos=3, show="keys", labels=1, color="kind",
                      order="entropy", keep="0.25", tint="fidelity", weight="value")
    parsed, notices = parse_query(state.to_query())
    assert parsed == state and notices == []
    assert "text=" not in ViewState().to_query() and "search=" not in ViewState().to_query()
    assert "tint=" not in ViewState().to_query() and "weight=" not in ViewState().to_query()


def test_changing_corpus_clears_the_selection():
    state = ViewState(text=5, pos=2)
    assert with_controls(state, corpus="default", head=3).text == 5
    assert with_controls(state, model="minilm", corpus="default").pos == 2


FIELDS = ["view", "model", "corpus", "layer", "head", "method", "dims", "norm", "color", "show", "labels",
          "search", "text", "pos", "order", "keep", "tint", "weight", "b_model", "b_corpus", "b_layer", "b_head",
          "unknown", ""]
NASTY_VALUES = ["", "-1", "0", "5", "6", "11", "12", "99999999999999999999", "9" * 5000, "1e3", "0x1f", " 3 ",
                "²", "٣", "3.0", "+2", "NaN", "inf", "<script>alert(1)</script>", "%3Cimg%20src%3Dx%3E",
                "\x00", "%00", "%ZZ", "'\"`", "../../etc/passwd", "/etc/passwd", "umap", "matrix", "pca",
                "🙂" * 50, "a" * 100_000, "&", "=", "#frag", ";", "\u202e"]


def test_fuzzed_queries_give_a_valid_state():
    """Seeded random query strings: never an exception, every field in its allowed set, notices are text."""
    import random

    from dashboard.state import COLORS, SHOWS, VIEWS, corpus_choices, model_choices
    from workers.contracts.choices import METHODS, NORMALISATIONS, values
    from workers.models.registry import read_spec

    rng = random.Random(0)
    for _ in range(1500):
        parts = [f"{rng.choice(FIELDS)}={rng.choice(NASTY_VALUES)}" for _ in range(rng.randint(0, 8))]
        if rng.random() < 0.2:
            parts.append("".join(chr(rng.randint(0, 0x2FFF)) for _ in range(rng.randint(1, 40))))
        state, notices = parse_query("?" + "&".join(parts))
        spec = read_spec(state.model)
        assert state.view in VIEWS and state.model in model_choices()
        assert state.corpus in corpus_choices(spec.modality)
        assert 0 <= state.layer < spec.n_layers and 0 <= state.head < spec.n_heads
        assert state.method in values(METHODS) and state.dims in (2, 3) and state.norm in values(NORMALISATIONS)
        assert state.color in COLORS and state.show in SHOWS and state.labels in (0, 1)
        assert len(state.search) <= 64 and state.text >= -1 and state.pos >= -1
        assert state.keep == "" or abs(float(state.keep)) < float("inf")
        assert all(isinstance(n, str) and len(n) < 300 for n in notices)
        assert parse_query(state.to_query()) == (state, [])  # whatever came in, the canonical URL is clean


def test_every_picture_has_a_one_line_reading_guide():
    """The line under the heading says what near means: from the method when it is placed from attention (the
    normalisation cannot change it), else from the normalisation; value pictures have their own."""
    from dashboard.shell.heading import guide_text
    from workers.contracts.choices import METHODS, NORMALISATIONS, VALUES_READING, reading

    for method in METHODS:
        for norm in NORMALISATIONS:
            line = reading(method.value, norm.value)
            assert 40 < len(line) <= 115 and "\n" not in line
            assert line == (method.reading if method.from_attention else norm.reading)
    assert reading("pca", "none") != reading("pca", "scale+translate")
    assert reading("pca", "fit", vectors="v") == VALUES_READING
    assert guide_text({"view": "single", "method": "pca", "norm": "none"}) == reading("pca", "none")
    assert "head" in guide_text({"view": "headmap", "method": "pca", "norm": "none"})
@pytest.mark.parametrize(("query", "says"), [
    ("?b_layer=99", "Picture B's layer '99' is not in 0..5; picture B follows picture A."),
    ("?b_head=x", "Picture B's head 'x' is not in 0..11; picture B follows picture A."),
    ("?b_model=gpt-17", "Unknown picture B's model 'gpt-17'; picture B follows picture A."),
    ("?b_corpus=/etc/passwd", "Unknown picture B's corpus '/etc/passwd'; picture B follows picture A."),
    ("?b_vectors=q", "Unknown picture B's vectors 'q'; picture B shows queries and keys."),
    ("?text=abc", "Text 'abc' is not in 0..4999; no text selected."),
])
def test_a_refused_optional_value_says_what_is_shown_instead(query, says):
    """A field that is unset by default says what unset means, never its internal value (-1 or '')."""
    _state, notices = parse_query(query)
    assert notices == [says]


def test_minus_one_is_no_selection_and_needs_no_notice():
    assert parse_query("?text=-1&pos=-1&b_layer=-1") == (ViewState(), [])


@pytest.fixture
def image_model(tmp_path, monkeypatch) -> str:
    """A registered ViT (its config alone: the URL's rules read no weights)."""
    import json

    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "vit", "num_hidden_layers": 2,
                                                    "num_attention_heads": 4, "hidden_size": 32}))
    monkeypatch.setenv("QK_ATLAS_MODELS", f"tiny-vit={folder}")
    return "tiny-vit"


def test_colour_modes_follow_the_model_modality(image_model):
    """Image-only modes on a text model, and text-only modes on an image model, fall back with a notice; the menu
    offers each model only its own modes."""
    from dashboard.shell.widgets import colour_options

    state, notices = parse_query(f"?model={image_model}&color=row")
    assert state.color == "row" and notices == []
    state, notices = parse_query(f"?model={image_model}&color=token_length")
    assert state.color == "role"
    assert notices == ["Colour 'token length (characters)' applies to text models only; showing 'role'."]
    switched, notices = ViewState(model=image_model, corpus="images", color="col"), []
    assert with_controls(switched, notices, model="minilm").color == "role"
    assert notices == ["Colour 'patch column (images)' applies to image models only; showing 'role'."]
    text_menu = [option["value"] for option in colour_options("text")]
    image_menu = [option["value"] for option in colour_options("image")]
    assert "row" not in text_menu and "token_length" in text_menu
    assert "row" in image_menu and "token_length" not in image_menu and "role" in image_menu
    assert all(option["title"] for option in colour_options("text"))  # each mode's help, from the table
