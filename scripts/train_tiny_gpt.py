"""Train `tiny-gpt`: a small GPT-2 with a tokenizer built from the bundled corpus, shipped in the package.

Run: `.venv/bin/python scripts/train_tiny_gpt.py [--steps 4800] [--out workers/data/tiny_gpt]` (seeded, CPU);
`--remeasure` recomputes the heads of the saved model into its training.json.

What it learns from: the bundled corpus (640 sentences, about 15k tokens) as running text, plus sequences with
repeated spans (a random token string, a corpus passage, or distinct corpus words in random order, then the same
again), so that it has a reason to form induction heads (attend from a repeated token to the token that followed
its first occurrence, then copy it). One head, L0H2 (`taught_head`), is also trained to attend to the previous
token (`previous_token_loss`, weighted by `taught_weight`): the previous-token head the induction heads build on.
Its position embeddings start as sinusoids (scaled to
the token embeddings' size) and are then learned: in sinusoids a shift by one position is the same rotation at
every position, so one query/key map can point every position at the one before it, at position 5 as at 120.
Writes config.json, model.safetensors, the tokenizer files and `training.json` (settings, loss curve, wall time,
the heads found) to --out.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from training_schedule import learning_rate, window_means  # noqa: E402

from workers.models.tiny_gpt import (  # noqa: E402
    BOS,
    POSITION_BANDS,
    attention_maps,
    corpus_windows,
    induction_scores,
    induction_scores_by_span,
    previous_token_by_band,
    previous_token_scores,
    repeated_corpus_words,
    repeated_random_tokens,
    words_of,
)

LOSS_WINDOW = 100  # steps per point of the recorded loss curve
LR_FLOOR = 0.1  # the cosine decay ends at this fraction of the peak learning rate

CORPUS = ROOT / "workers" / "data" / "default_corpus.txt"
SETTINGS = {"seed": 0, "vocab_size": 2048, "n_positions": 256, "n_embd": 128, "n_layer": 3, "n_head": 4,
            "n_inner": 512, "seq_len": 128, "batch_size": 32, "lr": 2e-3, "warmup": 200, "weight_decay": 0.05,
            "positions": "learned, started as sinusoids", "position_scale": 0.04, "words_per_span": [4, 24],
            "mix": {"text": 0.35, "random repeated": 0.2, "text repeated": 0.2, "words repeated": 0.25},
            "taught_head": [0, 2], "taught_weight": 0.2}


def build_tokenizer(lines: list[str], vocab_size: int, max_length: int):
    """Byte-level BPE trained on the corpus; every encoding starts with BOS (as every training sequence does)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(lines, trainer)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B",
                                                       special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, unk_token=BOS, pad_token=BOS,
                                   model_max_length=max_length)


class Batches:
    """Seeded training sequences [batch, seq_len]: corpus windows, repeated random tokens, repeated passages."""

    def __init__(self, stream: np.ndarray, words: list[list[int]], vocab: int, bos: int, seq_len: int,
                 mix: dict[str, float], words_per_span: list[int], seed: int):
        self.stream, self.words, self.vocab, self.bos, self.seq_len = stream, words, vocab, bos, seq_len
        self.words_per_span = words_per_span
        self.kinds, self.weights = list(mix), list(mix.values())
        self.rng = np.random.default_rng(seed)

    def window(self, length: int) -> np.ndarray:
        """A random stretch of the running corpus text [length]."""
        start = self.rng.integers(0, len(self.stream) - length)
        return self.stream[start:start + length]

    def repeated(self, span: np.ndarray) -> np.ndarray:
        """BOS, then `span` again and again, cut to seq_len [seq_len]."""
        reps = math.ceil((self.seq_len - 1) / len(span))
        return np.concatenate([[self.bos], np.tile(span, reps)])[:self.seq_len]

    def sequence(self) -> np.ndarray:
        """One training sequence [seq_len]."""
        kind = self.rng.choice(len(self.kinds), p=self.weights)
        if self.kinds[kind] == "text":
            return np.concatenate([[self.bos], self.window(self.seq_len - 1)])
        if self.kinds[kind] == "words repeated":
            low, high = self.words_per_span
            chosen = self.rng.choice(len(self.words), size=int(self.rng.integers(low, high + 1)), replace=False)
            return self.repeated(np.concatenate([self.words[i] for i in chosen]))
        span_length = int(self.rng.integers(8, 48))
        if self.kinds[kind] == "random repeated":
            return self.repeated(self.rng.integers(1, self.vocab, span_length))
        return self.repeated(self.window(span_length))

    def next(self, batch_size: int) -> torch.Tensor:
        """A batch [batch_size, seq_len] of token ids."""
        return torch.from_numpy(np.stack([self.sequence() for _ in range(batch_size)]).astype(np.int64))


def sinusoids(positions: int, width: int) -> torch.Tensor:
    """Sinusoidal position codes [positions, width]: shifting by one position is one rotation for every position."""
    position = torch.arange(positions, dtype=torch.float32)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, dtype=torch.float32) / width)
    codes = torch.zeros(positions, width)
    codes[:, 0::2], codes[:, 1::2] = torch.sin(position * frequency), torch.cos(position * frequency)
    return codes


def corpus_words(lines: list[str], tokenizer) -> list[list[int]]:
    """Each distinct corpus word, spaced, as token ids [words][tokens], sorted by word."""
    return [tokenizer(" " + word, add_special_tokens=False)["input_ids"] for word in words_of(lines)]


def previous_token_loss(model, hidden: torch.Tensor, head: int) -> torch.Tensor:
    """Mean -log attention from each token (after the first) to the one before it, of `head` in the first layer,
    computed from that layer's normalised input `hidden` [batch, seq, n_embd] as GPT-2's attention does."""
    attention = model.transformer.h[0].attn
    width = attention.head_dim
    query, key, _value = attention.c_attn(hidden).split(attention.embed_dim, dim=2)
    query = query[..., head * width:(head + 1) * width]
    key = key[..., head * width:(head + 1) * width]
    scores = query @ key.transpose(1, 2) / math.sqrt(width)  # [batch, seq, seq]
    n = scores.shape[-1]
    causal = torch.ones(n, n, dtype=torch.bool).tril()
    log_attention = scores.masked_fill(~causal, float("-inf")).log_softmax(dim=-1)
    positions = torch.arange(1, n)
    return -log_attention[:, positions, positions - 1].mean()


def heads_found(model, tokenizer, texts: list[str]) -> dict[str, list]:
    """Per-head scores from the model's own attention, rounded [layers][heads]: previous-token attention over the
    first 64 corpus texts and by position band over 24 windows of 128 tokens of running corpus text; induction on
    repeated random tokens and on 20 distinct corpus words written twice."""
    prev = previous_token_scores(attention_maps(model, tokenizer(texts[:64])["input_ids"]))
    stream = [i for ids in tokenizer(texts, add_special_tokens=False)["input_ids"] for i in ids]
    bands = previous_token_by_band(attention_maps(model, corpus_windows(stream, tokenizer.bos_token_id, 24, 128, 7)))
    sequences = repeated_random_tokens(tokenizer.vocab_size, tokenizer.bos_token_id, count=32, span=24, seed=1)
    induction = induction_scores(attention_maps(model, sequences), span=24)
    word_sequences, spans = repeated_corpus_words(tokenizer, words_of(texts), count=32, n_words=20, seed=3)
    words = induction_scores_by_span(attention_maps(model, word_sequences), spans)
    return {"previous_token": np.round(prev, 3).tolist(),
            "previous_token_by_band": {f"{first}-{last}": np.round(band, 3).tolist()
                                       for (first, last), band in zip(POSITION_BANDS, bands, strict=True)},
            "induction": np.round(induction, 3).tolist(), "induction_corpus_words": np.round(words, 3).tolist()}


def remeasure(folder: Path, lines: list[str]) -> None:
    """Recompute the heads of a saved model into its training.json (the training record otherwise kept)."""
    from transformers import AutoTokenizer, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = GPT2LMHeadModel.from_pretrained(folder, attn_implementation="eager").eval()
    record = json.loads((folder / "training.json").read_text())
    record["heads"] = heads_found(model, tokenizer, lines)
    (folder / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    report(record["heads"])


def report(found: dict) -> None:
    """One line: the best previous-token head (its weakest band) and the best induction heads."""
    bands = np.array(list(found["previous_token_by_band"].values()))  # [bands, layers, heads]
    weakest = bands.min(axis=0)
    layer, head = np.unravel_index(weakest.argmax(), weakest.shape)
    words = np.array(found["induction_corpus_words"])
    w_layer, w_head = np.unravel_index(words.argmax(), words.shape)
    print(f"previous-token head L{layer}H{head}: {weakest[layer, head]:.2f} at its weakest band "
          f"({', '.join(f'{b[layer, head]:.2f}' for b in bands)}); induction on repeated corpus words: "
          f"L{w_layer}H{w_head} {words.max():.2f}")


def main() -> None:
    """Build the tokenizer, train, save model + tokenizer + training record."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=4800)
    parser.add_argument("--out", default=str(ROOT / "workers" / "data" / "tiny_gpt"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--remeasure", action="store_true", help="train nothing: recompute the heads in --out")
    args = parser.parse_args()
    if args.remeasure:
        remeasure(Path(args.out), [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines()
                                   if line.strip()])
        return
    settings = {**SETTINGS, "steps": args.steps}
    random.seed(settings["seed"])
    torch.manual_seed(settings["seed"])
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    from transformers import GPT2Config, GPT2LMHeadModel

    lines = [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]
    tokenizer = build_tokenizer(lines, settings["vocab_size"], settings["n_positions"])
    stream = np.array([i for ids in tokenizer(lines)["input_ids"] for i in ids], dtype=np.int64)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=settings["n_positions"], n_embd=settings["n_embd"],
                        n_layer=settings["n_layer"], n_head=settings["n_head"], n_inner=settings["n_inner"],
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():  # sinusoids: one query/key map can point every position at the one before it
        model.transformer.wpe.weight.copy_(settings["position_scale"]
                                           * sinusoids(settings["n_positions"], settings["n_embd"]))
    model.set_attn_implementation("sdpa")  # fast for training; the saved model loads with eager attention
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings["lr"],
                                  weight_decay=settings["weight_decay"], betas=(0.9, 0.95))
    batches = Batches(stream, corpus_words(lines, tokenizer), len(tokenizer), tokenizer.bos_token_id,
                      settings["seq_len"], settings["mix"], settings["words_per_span"], settings["seed"])
    losses, taught_losses = [], []
    captured: dict[str, torch.Tensor] = {}
    model.transformer.h[0].ln_1.register_forward_hook(lambda _m, _i, out: captured.__setitem__("hidden", out))
    taught_layer, taught_head = settings["taught_head"]
    assert taught_layer == 0, "the taught head is read from the first layer's input"
    model.train()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, settings["lr"], settings["warmup"], LR_FLOOR)
        ids = batches.next(settings["batch_size"])
        language = model(input_ids=ids, labels=ids).loss
        taught = previous_token_loss(model, captured["hidden"], taught_head)
        loss = language + settings["taught_weight"] * taught
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(language.item())
        taught_losses.append(taught.item())
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step:5d}  loss {window_means(losses[-100:], LOSS_WINDOW)[0]:.3f}  "
                  f"taught head {window_means(taught_losses[-100:], LOSS_WINDOW)[0]:.3f}  "
                  f"{time.perf_counter() - started:6.0f} s", flush=True)
    train_seconds = time.perf_counter() - started
    model.eval()
    model.set_attn_implementation("eager")
    found = heads_found(model, tokenizer, lines)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    record = {"settings": settings, "train_seconds": round(train_seconds, 1), "threads": args.threads,
              "torch": torch.__version__, "final_loss": window_means(losses[-100:], LOSS_WINDOW)[0],
              "loss_every_100": window_means(losses, LOSS_WINDOW),
              "taught_head_loss_every_100": window_means(taught_losses, LOSS_WINDOW),
              "heads": found}
    (out / "training.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"trained in {train_seconds:.0f} s; saved to {out}")
    report(found)


if __name__ == "__main__":
    main()
