"""Texts the tests run models over: short, long, a question, quotes and punctuation."""

SENTENCES = [
    "The cat sat on the mat.",
    "A much longer sentence, with commas, numbers like 1984 and punctuation, pads the shorter ones in its batch!",
    "Why?",
    "Queries and keys meet in one picture.",
    "She said \"hello\" and left; nobody answered.",
]
