"""Tiny randomly initialised models of every supported family, built from a config (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

VOCAB = 30522  # MiniLM's tokenizer serves every tiny text model


def build(kind: str):
    """A tiny model of one family, eager attention, seeded."""
    import transformers as tf

    torch.manual_seed(0)
    common = {"vocab_size": VOCAB}
    configs = {
        "bert": lambda: tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, **common),
        "roberta": lambda: tf.RobertaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                            intermediate_size=64, pad_token_id=0, **common),
        "distilbert": lambda: tf.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, **common),
        "gpt2": lambda: tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=256, **common),
        "gpt2-layer-scaled": lambda: tf.GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=256,
                                                   scale_attn_by_inverse_layer_idx=True, **common),
        "llama-gqa": lambda: tf.LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=8,
                                            num_key_value_heads=2, head_dim=8, intermediate_size=96,
                                            max_position_embeddings=256, **common),
        "llama-32x32": lambda: tf.LlamaConfig(hidden_size=64, num_hidden_layers=32, num_attention_heads=32,
                                              num_key_value_heads=8, head_dim=8, intermediate_size=96,
                                              max_position_embeddings=512, **common),  # 1,024 heads, GQA 4:1
        "mistral": lambda: tf.MistralConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                            num_key_value_heads=2, intermediate_size=64, head_dim=8,
                                            max_position_embeddings=256, sliding_window=None, **common),
        "qwen2": lambda: tf.Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=1, intermediate_size=64,
                                        max_position_embeddings=256, **common),
        "vit": lambda: tf.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64),
    }
    return tf.AutoModel.from_config(configs[kind](), attn_implementation="eager")


def image_processor():
    """A ViT image processor matching the tiny ViT (32x32 inputs)."""
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": 32, "width": 32})


def save(kind: str, folder: Path, tokenizer) -> Path:
    """Save a tiny model with its tokenizer (or image processor) to a local folder, like a checkpoint."""
    model = build(kind)
    model.save_pretrained(folder)
    (image_processor() if kind == "vit" else tokenizer).save_pretrained(folder)
    return folder
