"""One module per view (single, matrix, sentence, headmap, compare): its layout fragment and its callbacks.

Each module exposes `panel()` (the view's part of the page) and `register(app)` (its callbacks, including the
intents that turn its clicks and controls into a new URL).
"""
