"""A small pre-LayerNorm decoder-only Transformer language model (Flax linen).

Standard GPT-style blocks: causal self-attention (jax.nn.dot_product_attention,
which picks cuDNN flash attention on GPU when asked) and a GELU MLP, learned
position embeddings, tied input/output embeddings. Parameters stay fp32;
`dtype` sets the compute precision.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


class Block(nn.Module):
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    d = x.shape[-1]
    h = nn.LayerNorm(dtype=self.dtype)(x)
    qkv = nn.DenseGeneral((3, self.num_heads, d // self.num_heads), dtype=self.dtype,
                          name="qkv")(h)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    attn = jax.nn.dot_product_attention(q, k, v, is_causal=True)
    x = x + nn.DenseGeneral(d, axis=(-2, -1), dtype=self.dtype, name="out")(attn)
    h = nn.LayerNorm(dtype=self.dtype)(x)
    h = nn.Dense(self.mlp_dim, dtype=self.dtype)(h)
    h = nn.gelu(h)
    return x + nn.Dense(d, dtype=self.dtype)(h)


class TransformerLM(nn.Module):
  vocab_size: int
  seq_len: int
  num_layers: int = 2
  model_dim: int = 128
  num_heads: int = 4
  mlp_dim: int = 512
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens: jax.Array) -> jax.Array:
    embed = nn.Embed(self.vocab_size, self.model_dim, name="embed")
    pos = self.param("pos", nn.initializers.normal(0.02), (self.seq_len, self.model_dim))
    x = embed(tokens).astype(self.dtype) + pos[: tokens.shape[1]].astype(self.dtype)
    for i in range(self.num_layers):
      x = Block(self.num_heads, self.mlp_dim, self.dtype, name=f"block{i}")(x)
    x = nn.LayerNorm(dtype=self.dtype)(x)
    return embed.attend(x.astype(jnp.float32))


def flops_per_token(m: TransformerLM) -> float:
  """Model FLOPs per token for training (forward + backward = 3x forward),
  counting matmuls only (the usual 6N + attention estimate)."""
  d, L, s = m.model_dim, m.num_layers, m.seq_len
  per_layer = 2 * (3 * d * d + d * d + 2 * d * m.mlp_dim) + 2 * 2 * s * d / 2  # causal attn
  return 3 * (L * per_layer + 2 * d * m.vocab_size)
