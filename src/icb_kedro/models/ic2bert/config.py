"""IC2Bert architecture settings (no JAX import: bundles and the pyfunc load without it)."""

from __future__ import annotations

import dataclasses

ATTENTION_IMPLEMENTATIONS = ("fused", "einsum", "chunked")
MATMUL_DTYPES = ("float32", "bfloat16")
DROPOUT_RNGS = ("hash", "threefry")


@dataclasses.dataclass(frozen=True)
class IC2BertConfig:
    """Architecture hyper-parameters (defaults = the paper's model)."""

    n_genes: (
        int  # L: input panel size (983 in the paper, 937 for the shared cohorts' default panel)
    )
    n_bins: int = (
        4  # expression bins; vocabulary = n_bins + 2: [MASK] = n_bins, [MISSING] = n_bins + 1
    )
    d_model: int = 128  # D
    gene_dim: int = 64  # G, projected to D
    n_layers: int = 4
    n_heads: int = 4  # H
    ffn_dim: int = 256  # F
    dropout: float = 0.1
    # "einsum": explicit softmax(QK^T / sqrt(K)) V; "fused": jax.nn.dot_product_attention;
    # "chunked": blocks of ``attention_chunk`` query rows, probabilities recomputed in the
    # backward pass (``attention.chunked_attention``). Same function (to float32 rounding).
    # On this CPU (XLA:CPU, jax 0.10) einsum beat fused (6.9 s vs 11.1 s per paper-size
    # pretraining step), and chunked beats einsum on long panels (measured in
    # benchmarks/ic2bert_throughput.py); on a GPU, fused may use cuDNN's flash attention.
    attention: str = "einsum"
    attention_chunk: int = 256  # at most this many query rows per block ("chunked")
    # Matmul input dtype. bfloat16 only pays off where XLA:CPU emits native BF16 dot
    # products; here (AVX-512 BF16 present) it measured no faster than float32 (11.5 vs
    # 11.1 s per step), so float32 is the default; accumulation, softmax, LayerNorm and
    # losses stay float32 either way.
    matmul_dtype: str = "float32"
    # Dropout masks: "hash" = a counter-based integer hash (lowbias32, two rounds) seeded by
    # the Haiku key of each dropout site; "threefry" = hk.dropout. Same distribution for
    # training purposes; on this 2-core CPU threefry bits cost more than the rest of a
    # pretraining step (measured in benchmarks/ic2bert_throughput.py).
    dropout_rng: str = "hash"
    # Run the blocks as one hk.layer_stack (lax.scan over stacked weights): the same
    # function and parameter count, a fraction of the XLA compile time of 4 unrolled blocks.
    scan_layers: bool = True

    def __post_init__(self) -> None:
        if self.n_genes < 1:
            raise ValueError(f"IC2BertConfig.n_genes must be >= 1, got {self.n_genes}")
        if self.n_bins < 2:
            raise ValueError(f"IC2BertConfig.n_bins must be >= 2, got {self.n_bins}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.attention not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {self.attention!r}"
            )
        if self.attention_chunk < 1:
            raise ValueError(f"attention_chunk must be >= 1, got {self.attention_chunk}")
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(
                f"matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}"
            )
        if self.dropout_rng not in DROPOUT_RNGS:
            raise ValueError(f"dropout_rng must be one of {DROPOUT_RNGS}, got {self.dropout_rng!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def vocab_size(self) -> int:
        return self.n_bins + 2

    @property
    def mask_id(self) -> int:
        return self.n_bins

    @property
    def missing_id(self) -> int:
        return self.n_bins + 1

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> IC2BertConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown IC2BertConfig keys: {unknown}")
        return cls(**values)
