"""Extraction: the q and k that each head actually dots, for every token (or image patch) of a corpus.

Forward hooks on each layer's query / key projections (one declarative `Family` entry per architecture)
collect the vectors; rotary embeddings are applied with the model's own cos/sin and rotation function, and the
attention module's scaling is folded into q, so that softmax(q·kᵀ/√d_head + mask) is the model's attention.
Shapes (TransformerLens words): per layer `q[head, token, d_head]`, `k[kv_head, token, d_head]`; tokens are
concatenated over texts in corpus order, padding removed. The model runs where `loaded.placement` says (a device,
a dtype); the vectors leave it as float32 on the CPU. Chunks are spooled in memory or, for large corpora,
in temporary files, then handed out a few heads at a time so memory does not grow with the model.
"""

from __future__ import annotations

import contextlib
import math
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from workers.contracts.specs import ModelError
from workers.corpora.corpus import Corpus, ImageCorpus
from workers.models.loading import LoadedModel

Progress = Callable[[float, str], None]
Emit = Callable[[str, int, torch.Tensor], None]
SPOOL_MEMORY_BYTES = 64 * 2**20  # above this, chunks go to temporary files
HEAD_BATCH_BYTES = 128 * 2**20  # memory for the heads handed out at once (fewer passes over each spool file)
TOKENIZE_CHUNK = 256  # texts tokenised at once


def _no_progress(fraction: float, message: str) -> None:
    """Default progress sink."""


@dataclass
class Batches:
    """The corpus cut into model inputs: per batch the corpus item ids, the inputs and the valid-token mask."""

    items: list[list[int]]  # corpus item ids per batch
    lengths: np.ndarray  # tokens per item, int32 [items]
    make_inputs: Callable[[list[int]], dict[str, torch.Tensor]]
    token_ids: list[list[int]] | None = None  # text corpora only

    def __iter__(self) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """(inputs, valid[batch, pos] bool) per batch."""
        for items in self.items:
            inputs = self.make_inputs(items)
            valid = torch.zeros((len(items), int(self.lengths[items].max())), dtype=torch.bool)
            for row, item in enumerate(items):
                valid[row, : self.lengths[item]] = True
            yield inputs, valid

    def corpus_order(self) -> np.ndarray:
        """For each token in corpus order, its row in batch order, int64 [tokens]."""
        batch_offset = np.zeros(len(self.lengths), np.int64)
        cursor = 0
        for item in (i for batch in self.items for i in batch):
            batch_offset[item] = cursor
            cursor += self.lengths[item]
        return np.concatenate([np.arange(o, o + n) for o, n in zip(batch_offset, self.lengths, strict=True)])


@dataclass
class QKBundle:
    """Tokens table plus q, k per layer (float32)."""

    tokens: dict[str, np.ndarray]
    q: list[np.ndarray] = field(default_factory=list)  # per layer [head, token, d_head]
    k: list[np.ndarray] = field(default_factory=list)  # per layer [kv_head, token, d_head]
    v: list[np.ndarray] = field(default_factory=list)  # per layer [kv_head, token, d_head]
    seconds: float = 0.0


# ---------------------------------------------------------------- batching

def position_limit(loaded: LoadedModel) -> int:
    """The most tokens the model takes in one text (its position embeddings); a very large number when unbounded."""
    config = loaded.model.config
    limits = [getattr(config, name, None) for name in ("max_position_embeddings", "n_positions")]
    return min([int(limit) for limit in limits if isinstance(limit, int) and limit > 0] or [2**31])


def token_ids(loaded: LoadedModel, texts: Sequence[str], max_tokens: int,
              max_total_tokens: int | None = None, chunk: int = TOKENIZE_CHUNK) -> list[list[int]]:
    """Token ids per text, truncated to max_tokens; with max_total_tokens, only the first texts whose tokens fit in
    it (at least one). Texts are tokenised `chunk` at a time and the rest are never tokenised once the limit is
    reached, so memory follows the tokens kept, not the corpus (a tokeniser's output holds far more than the ids)."""
    ids: list[list[int]] = []
    total = 0
    for start in range(0, len(texts), chunk):
        encoded = loaded.tokenizer(list(texts[start: start + chunk]), truncation=True, max_length=max_tokens)
        for text_ids in encoded["input_ids"]:
            if max_total_tokens is not None and ids and total + len(text_ids) > max_total_tokens:
                return ids
            ids.append(list(text_ids))
            total += len(text_ids)
    return ids


def text_batches(loaded: LoadedModel, corpus: Corpus, batch_size: int, max_tokens: int,
                 max_total_tokens: int | None = None) -> Batches:
    """Token ids per text (truncated to max_tokens), batches sorted by length, right padding.

    With max_total_tokens, only the first texts whose tokens fit in it are kept (at least one).
    """
    ids = token_ids(loaded, corpus.texts, min(max_tokens, position_limit(loaded)), max_total_tokens)
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    pad_id = loaded.tokenizer.pad_token_id or 0

    def make_inputs(items: list[int]) -> dict[str, torch.Tensor]:
        width = max(len(ids[i]) for i in items)
        input_ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            input_ids[row, : len(ids[item])] = torch.tensor(ids[item])
            mask[row, : len(ids[item])] = 1
        return {"input_ids": input_ids, "attention_mask": mask}

    return Batches(items=[order[i: i + batch_size] for i in range(0, len(order), batch_size)],
                   lengths=np.array([len(x) for x in ids], dtype=np.int32), make_inputs=make_inputs, token_ids=ids)


def patch_grid(loaded: LoadedModel) -> int:
    """Patches per side of a ViT-like model's input."""
    config = loaded.model.config
    return int(config.image_size) // int(config.patch_size)


def image_batches(loaded: LoadedModel, corpus: ImageCorpus, batch_size: int) -> Batches:
    """Pixel batches in corpus order; every image is CLS + grid x grid patches."""
    n_tokens = patch_grid(loaded) ** 2 + 1

    def make_inputs(items: list[int]) -> dict[str, torch.Tensor]:
        pixels = loaded.tokenizer(images=[corpus.images[i] for i in items], return_tensors="pt")["pixel_values"]
        return {"pixel_values": pixels}

    n = len(corpus.images)
    return Batches(items=[list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)],
                   lengths=np.full(n, n_tokens, dtype=np.int32), make_inputs=make_inputs)


def make_batches(loaded: LoadedModel, corpus: Corpus | ImageCorpus, batch_size: int, max_tokens: int,
                 max_total_tokens: int | None = None) -> Batches:
    """Batches for a text or image corpus; a clear error when corpus and model modality differ."""
    modality = loaded.spec.modality
    if isinstance(corpus, ImageCorpus) != (modality == "image"):
        wanted = "an image corpus (images, a folder of images or an .npz)" if modality == "image" else "a text corpus"
        raise ModelError(f"model {loaded.spec.model_id!r} reads {modality}s; choose {wanted}")
    if isinstance(corpus, ImageCorpus):
        return image_batches(loaded, corpus, batch_size)
    return text_batches(loaded, corpus, batch_size, max_tokens, max_total_tokens)


# ---------------------------------------------------------------- hooks

def _module_at(root: torch.nn.Module, path: str) -> torch.nn.Module | None:
    """Attribute path lookup, None when any part is missing."""
    for part in path.split("."):
        root = getattr(root, part, None)
        if root is None:
            return None
    return root


def _first_module(root: torch.nn.Module, candidates: tuple[str, ...], what: str) -> tuple[torch.nn.Module, str]:
    """The first candidate path that exists, with its path; ModelError naming all tried."""
    for path in candidates:
        module = _module_at(root, path)
        if module is not None:
            return module, path
    raise ModelError(f"cannot find the {what} (tried {', '.join(candidates)}); the Family entry needs updating")


def _query_factor(attention: torch.nn.Module, d_head: int) -> float:
    """Factor folding the module's logit scaling into q so that the standard 1/√d_head applies."""
    scaling = getattr(attention, "scaling", None)
    return 1.0 if scaling is None else float(scaling) * math.sqrt(d_head)


def _rotate(vectors: torch.Tensor, d_head: int, rotary: tuple[torch.Tensor, torch.Tensor], apply: Callable
            ) -> torch.Tensor:
    """Apply the model's rotary embedding to [batch, pos, heads*d_head] with its own function (cos and sin moved to
    the layer's device: under a device map the rotary module may sit on another GPU)."""
    batch, pos, _ = vectors.shape
    heads_first = vectors.reshape(batch, pos, -1, d_head).transpose(1, 2)
    rotated, _ = apply(heads_first, heads_first, *(part.to(vectors.device) for part in rotary))
    return rotated.transpose(1, 2).reshape(batch, pos, -1)


@contextlib.contextmanager
def capture_hooks(loaded: LoadedModel, emit: Emit) -> Iterator[None]:
    """emit(role, layer, vectors[batch, pos, heads*d_head]) for q, k and v of every layer; hooks removed in
    finally."""
    family, model = loaded.family, loaded.model
    state: dict[str, Any] = {}
    handles = []
    try:
        if family.rotary:
            rotary_module, _ = _first_module(model, (family.rotary,), "rotary embedding")
            handles.append(rotary_module.register_forward_hook(lambda _m, _i, out: state.__setitem__("rotary", out)))
        blocks, _ = _first_module(model, family.layers, "list of layers")
        for layer, block in enumerate(blocks):
            handles += _hook_block(loaded, block, layer, emit, state)
        yield
    finally:
        for handle in handles:
            handle.remove()


def _hook_block(loaded: LoadedModel, block: torch.nn.Module, layer: int, emit: Emit, state: dict[str, Any]) -> list:
    """Hooks on one block's q, k and v projections (rotary and q's scaling applied; v as the model computes it)."""
    family, spec = loaded.family, loaded.spec
    d = spec.d_head
    q_module, q_path = _first_module(block, family.query, "query projection")
    k_module, _ = _first_module(block, family.key, "key projection")
    v_module, _ = _first_module(block, family.value, "value projection")
    attention = _module_at(block, q_path.rpartition(".")[0]) if "." in q_path else block
    factor = _query_factor(attention, d)
    apply = getattr(sys.modules[type(attention).__module__], "apply_rotary_pos_emb", None) if family.rotary else None

    def finish(role: str, vectors: torch.Tensor) -> None:
        if apply is not None and role != "v":
            vectors = _rotate(vectors, d, state["rotary"], apply)  # in the model's dtype, as the model does
        vectors = vectors.float()  # float32 from here on, whatever the model runs in
        emit(role, layer, vectors * factor if role == "q" and factor != 1.0 else vectors)

    if family.fused_qkv:
        q_width, k_width = spec.n_heads * d, spec.n_kv_heads * d

        def fused(_m, _i, out):
            finish("q", out[..., :q_width])
            finish("k", out[..., q_width: q_width + k_width])
            finish("v", out[..., q_width + k_width: q_width + 2 * k_width])

        return [q_module.register_forward_hook(fused)]
    return [q_module.register_forward_hook(lambda _m, _i, out: finish("q", out)),
            k_module.register_forward_hook(lambda _m, _i, out: finish("k", out)),
            v_module.register_forward_hook(lambda _m, _i, out: finish("v", out))]


# ---------------------------------------------------------------- spooling

class Spool:
    """Per (role, layer), the valid-token rows [token, heads*d_head] in batch order: in memory or in files.

    `dtype` is what the rows are kept as: float32 for exact in-memory bundles, float16 when they go to the store
    in float16 anyway (half the spool's memory, disk writes and reads).
    """

    def __init__(self, on_disk: bool, dtype: torch.dtype = torch.float32):
        self.on_disk = on_disk
        self.dtype = dtype
        self._numpy_dtype = np.dtype(str(dtype).removeprefix("torch."))
        self._dir = tempfile.TemporaryDirectory(prefix="qk-atlas-spool-") if on_disk else None
        self._chunks: dict[tuple[str, int], list[torch.Tensor]] = {}
        self._width: dict[tuple[str, int], int] = {}

    def add(self, role: str, layer: int, rows: torch.Tensor) -> None:
        """Append rows [n, heads*d_head]."""
        key = (role, layer)
        self._width[key] = rows.shape[1]
        if self.on_disk:
            with open(self._path(key), "ab") as handle:
                handle.write(rows.to(self.dtype).contiguous().numpy())  # the array's own bytes, no copy
        else:
            self._chunks.setdefault(key, []).append(rows.to(self.dtype))

    def _path(self, key: tuple[str, int]) -> Path:
        """Spool file of one (role, layer)."""
        assert self._dir is not None
        return Path(self._dir.name) / f"{key[0]}{key[1]}.{self._numpy_dtype.name}"

    def heads(self, role: str, layer: int, heads: list[int], d_head: int, order: np.ndarray) -> list[np.ndarray]:
        """Vectors of consecutive heads in corpus order, in the spool's dtype: one [token, d_head] array per head
        (each its own buffer, so that a head handed out does not keep the others alive)."""
        key, count = (role, layer), len(heads)
        if heads != list(range(heads[0], heads[0] + count)):
            raise ValueError(f"heads must be consecutive, got {heads}")
        columns = slice(heads[0] * d_head, (heads[0] + count) * d_head)
        if not self.on_disk:
            flat = torch.cat(self._chunks[key]) if len(self._chunks[key]) > 1 else self._chunks[key][0]
            self._chunks[key] = [flat]
            picked_rows = flat.index_select(0, torch.from_numpy(order))[:, columns]
            return list(picked_rows.reshape(len(order), count, d_head).permute(1, 0, 2).contiguous().numpy())
        return self._read_heads(key, heads[0], count, d_head, order)

    def _read_heads(self, key: tuple[str, int], first: int, count: int, d_head: int, order: np.ndarray,
                    block_rows: int = 16384) -> list[np.ndarray]:
        """Heads first.. first+count-1 of a spool file, [token, d_head] each in corpus order: the file is read in
        row blocks [block_rows, width] and each block's rows written straight to their corpus rows, so memory is
        the heads handed out plus one block."""
        width, rows = self._width[key], len(order)
        if self._path(key).stat().st_size != rows * width * self._numpy_dtype.itemsize:
            raise RuntimeError(f"spool file {self._path(key).name} does not hold {rows} rows of {width}")
        corpus_row = np.empty(rows, np.int64)
        corpus_row[order] = np.arange(rows)  # where each row of the file (batch order) goes
        out = [np.empty((rows, d_head), self._numpy_dtype) for _ in range(count)]
        buffer = np.empty((min(block_rows, rows), width), self._numpy_dtype)  # one block, read into again and again
        with open(self._path(key), "rb") as handle:
            for start in range(0, rows, block_rows):
                n = min(block_rows, rows - start)
                block = buffer[:n]
                if handle.readinto(block) != block.nbytes:
                    raise RuntimeError(f"spool file {self._path(key).name} ended early")
                where = corpus_row[start: start + n]
                for i, head in enumerate(range(first, first + count)):
                    out[i][where] = block[:, head * d_head: (head + 1) * d_head]
        return out

    def drop(self, role: str, layer: int) -> None:
        """Forget one (role, layer)."""
        self._chunks.pop((role, layer), None)
        if self.on_disk:
            self._path((role, layer)).unlink(missing_ok=True)

    def close(self) -> None:
        """Remove temporary files."""
        if self._dir is not None:
            self._dir.cleanup()


def run_capture(loaded: LoadedModel, batches: Batches, progress: Progress = _no_progress,
                spool_memory_bytes: int = SPOOL_MEMORY_BYTES, dtype: torch.dtype = torch.float32) -> Spool:
    """Forward every batch with hooks; valid rows of q, k and v go to a spool (kept as `dtype`)."""
    spec = loaded.spec
    itemsize = torch.empty(0, dtype=dtype).element_size()
    total = int(batches.lengths.sum()) * (spec.n_heads + 2 * spec.n_kv_heads) * spec.d_head * itemsize * spec.n_layers
    spool = Spool(on_disk=total > spool_memory_bytes, dtype=dtype)
    valid_on: dict[torch.device, torch.Tensor] = {}  # this batch's valid-token mask, on each device layers run on

    def emit(role: str, layer: int, vectors: torch.Tensor) -> None:
        if vectors.device not in valid_on:
            valid_on[vectors.device] = valid_on[torch.device("cpu")].to(vectors.device)
        # cast first (where the model runs), then keep the valid rows: no float32 copy when the spool is float16
        spool.add(role, layer, vectors.to(spool.dtype)[valid_on[vectors.device]].to("cpu"))

    with torch.inference_mode(), capture_hooks(loaded, emit):
        for done, (inputs, valid) in enumerate(batches, start=1):
            valid_on.clear()
            valid_on[torch.device("cpu")] = valid
            loaded.model(**on_model(loaded, inputs))
            progress(done / len(batches.items), f"forward pass {done}/{len(batches.items)}")
    return spool


def on_model(loaded: LoadedModel, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A batch's inputs on the model's input device; floating ones (pixels) in the model's dtype."""
    device, dtype = loaded.input_device, loaded.placement.dtype
    return {name: tensor.to(device, dtype) if tensor.is_floating_point() else tensor.to(device)
            for name, tensor in inputs.items()}


# ---------------------------------------------------------------- tokens table

def tokens_table(loaded: LoadedModel, batches: Batches) -> dict[str, np.ndarray]:
    """One row per token: text_id, position, token, length, position_norm, is_special, frequency (+ row, col)."""
    lengths = batches.lengths
    text_id = np.repeat(np.arange(len(lengths), dtype=np.int32), lengths)
    position = np.concatenate([np.arange(n, dtype=np.int32) for n in lengths])
    length = lengths[text_id].astype(np.int32)
    table = {"text_id": text_id, "position": position, "length": length,
             "position_norm": (position / np.maximum(length - 1, 1)).astype(np.float32)}
    if batches.token_ids is None:
        table.update(_patch_columns(loaded, position))
        table["image_id"] = text_id
    else:
        flat_ids = [i for ids in batches.token_ids for i in ids]
        special = set(loaded.tokenizer.all_special_ids)
        table["token"] = np.array(loaded.tokenizer.convert_ids_to_tokens(flat_ids), dtype=str)
        table["is_special"] = np.array([i in special for i in flat_ids], dtype=bool)
    _, inverse, counts = np.unique(table["token"], return_inverse=True, return_counts=True)
    table["frequency"] = counts[inverse.reshape(-1)].astype(np.int32)
    return table


def _patch_columns(loaded: LoadedModel, position: np.ndarray) -> dict[str, np.ndarray]:
    """Image tokens: position 0 is CLS (row = col = -1), then patches row by row."""
    grid = patch_grid(loaded)
    patch = position - 1
    row = np.where(position == 0, -1, patch // grid).astype(np.int32)
    col = np.where(position == 0, -1, patch % grid).astype(np.int32)
    token = np.where(position == 0, "[CLS]", np.char.add(np.char.add("r", row.astype(str)),
                                                          np.char.add("c", col.astype(str))))
    return {"token": token.astype(str), "is_special": position == 0, "row": row, "col": col}


# ---------------------------------------------------------------- entry points

def extract(loaded: LoadedModel, corpus: Corpus | ImageCorpus, batch_size: int = 64, max_tokens: int = 128,
            progress: Progress = _no_progress, spool_memory_bytes: int = SPOOL_MEMORY_BYTES) -> QKBundle:
    """All layers' q and k in memory (small corpora, tests); see `extract_heads` for the streaming form."""
    spec = loaded.spec
    start = time.perf_counter()
    batches = make_batches(loaded, corpus, batch_size, max_tokens)
    spool = run_capture(loaded, batches, progress, spool_memory_bytes)
    order = batches.corpus_order()
    bundle = QKBundle(tokens=tokens_table(loaded, batches))
    try:
        for layer in range(spec.n_layers):
            bundle.q.append(np.stack(spool.heads("q", layer, list(range(spec.n_heads)), spec.d_head, order)))
            bundle.k.append(np.stack(spool.heads("k", layer, list(range(spec.n_kv_heads)), spec.d_head, order)))
            bundle.v.append(np.stack(spool.heads("v", layer, list(range(spec.n_kv_heads)), spec.d_head, order)))
    finally:
        spool.close()
    bundle.seconds = time.perf_counter() - start
    return bundle


def extract_heads(loaded: LoadedModel, corpus: Corpus | ImageCorpus, batch_size: int, max_tokens: int,
                  progress: Progress = _no_progress, spool_memory_bytes: int = SPOOL_MEMORY_BYTES,
                  dtype: torch.dtype = torch.float16, max_total_tokens: int | None = None
                  ) -> tuple[dict[str, np.ndarray], Iterator[tuple[str, int, int, np.ndarray]]]:
    """(tokens table, iterator of (role, layer, head, vectors[token, d_head] as `dtype`)) with bounded memory.

    With max_total_tokens, the tokens table covers only the first texts that fit (text_id 0..kept-1).
    """
    batches = make_batches(loaded, corpus, batch_size, max_tokens, max_total_tokens)
    spool = run_capture(loaded, batches, progress, spool_memory_bytes, dtype)
    return tokens_table(loaded, batches), _stream_heads(loaded, spool, batches.corpus_order())


def _stream_heads(loaded: LoadedModel, spool: Spool, order: np.ndarray) -> Iterator[tuple[str, int, int, np.ndarray]]:
    """Hand out heads a few at a time (HEAD_BATCH_BYTES), layer by layer, then drop each layer's spool."""
    spec = loaded.spec
    per_pass = max(1, HEAD_BATCH_BYTES // max(1, len(order) * spec.d_head * spool.dtype.itemsize))
    try:
        for layer in range(spec.n_layers):
            for role, count in (("q", spec.n_heads), ("k", spec.n_kv_heads), ("v", spec.n_kv_heads)):
                for first in range(0, count, per_pass):
                    heads = list(range(first, min(first + per_pass, count)))
                    vectors = spool.heads(role, layer, heads, spec.d_head, order)
                    for head in heads:  # each handed over and forgotten, so the next pass starts with none held
                        yield role, layer, head, vectors.pop(0)
                spool.drop(role, layer)
    finally:
        spool.close()


def plain_forward_seconds(loaded: LoadedModel, corpus: Corpus | ImageCorpus, batch_size: int = 64,
                          max_tokens: int = 128) -> float:
    """Seconds for the same batches through the same model with no hooks (the extraction baseline)."""
    start = time.perf_counter()
    batches = make_batches(loaded, corpus, batch_size, max_tokens)
    with torch.inference_mode():
        for inputs, _valid in batches:
            loaded.model(**on_model(loaded, inputs))
    return time.perf_counter() - start
