"""Model specs: a transformer's architecture facts, read from a Hugging Face ``config.json``.

:func:`from_hf_config` turns the ``config.json`` of a supported family into a
:class:`ModelSpec`. Supported ``model_type`` values (and what they add):

- ``gpt2`` (and the Megatron-LM GPT models written in that form): LayerNorm,
  learned positions, GeLU MLP, biases, tied embeddings.
- ``llama``, ``mistral``, ``qwen2``, ``qwen3``, ``mimo``: RMSNorm, RoPE, SwiGLU, GQA.
- ``mixtral``, ``qwen2_moe``, ``qwen3_moe``, ``minimax_m2``, ``gpt_oss``: MoE
  (routed experts, top-k; shared experts where the family has them; gpt-oss
  alternates sliding-window and full attention).
- ``deepseek_v3``, ``deepseek_v32``, ``kimi_k2``, ``glm_moe_dsa``: MLA
  (multi-head latent attention), shared experts, leading dense layers.
- ``llama4_text``: interleaved MoE with one shared expert.
- ``qwen3_5`` / ``qwen3_5_moe`` (Qwen3.5/3.6): hybrid linear (Gated DeltaNet)
  and full attention.
- Vision-language wrappers (``text_config`` present) are read from their text
  model; the vision tower is not modelled.

Anything else raises :class:`UnsupportedArchitecture` naming the architecture.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import PlannerError

LayerAttention = Literal["full", "sliding", "linear"]


class UnsupportedArchitecture(PlannerError):
    """A config.json whose architecture the planner cannot model."""


class MLAConfig(BaseModel):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank compressed KV."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    q_lora_rank: int | None  # None: queries projected directly (DeepSeek-V2-Lite)
    kv_lora_rank: int = Field(gt=0)
    qk_nope_head_dim: int = Field(gt=0)
    qk_rope_head_dim: int = Field(ge=0)
    v_head_dim: int = Field(gt=0)


class MoEConfig(BaseModel):
    """Mixture of experts: routed experts (top-k) plus optional shared experts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_experts: int = Field(gt=0)
    top_k: int = Field(gt=0)
    expert_intermediate_size: int = Field(gt=0)
    num_shared_experts: int = Field(default=0, ge=0)
    shared_intermediate_size: int = Field(default=0, ge=0)  # per shared expert
    moe_layers: tuple[int, ...]  # indices of layers whose MLP is MoE

    @model_validator(mode="after")
    def _topk(self) -> "MoEConfig":
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} exceeds num_experts {self.num_experts}")
        return self


class LinearAttentionConfig(BaseModel):
    """Gated DeltaNet linear attention (Qwen3.5): a fixed-size recurrent state."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_key_heads: int = Field(gt=0)
    num_value_heads: int = Field(gt=0)
    key_head_dim: int = Field(gt=0)
    value_head_dim: int = Field(gt=0)
    conv_kernel: int = Field(default=4, ge=1)


class ModelSpec(BaseModel):
    """Architecture facts of a decoder-only transformer, as the cost model needs them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_id: str | None = None
    model_type: str
    hidden_size: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    num_kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    intermediate_size: int = Field(gt=0, description="dense MLP width")
    vocab_size: int = Field(gt=0)
    max_seq_len: int = Field(gt=0)
    tie_embeddings: bool = False
    gated_mlp: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "rmsnorm"
    learned_positions: bool = False
    qkv_bias: bool = False
    linear_bias: bool = False  # bias on output projection and MLP (GPT-2 style)
    attn_output_gate: bool = False  # Qwen3.5: query projection also produces a gate
    dropout: float = Field(default=0.0, ge=0, le=1)
    mla: MLAConfig | None = None
    moe: MoEConfig | None = None
    linear_attention: LinearAttentionConfig | None = None
    layer_attention: tuple[LayerAttention, ...] = ()
    sliding_window: int | None = None
    num_mtp_layers: int = Field(default=0, ge=0)
    weight_quantization: str | None = None  # e.g. fp8, nvfp4, mxfp4 (from quantization_config)

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if not self.layer_attention:
            object.__setattr__(self, "layer_attention", ("full",) * self.num_layers)
        if len(self.layer_attention) != self.num_layers:
            raise ValueError(f"layer_attention has {len(self.layer_attention)} entries for {self.num_layers} layers")
        if self.mla is None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.moe and any(i < 0 or i >= self.num_layers for i in self.moe.moe_layers):
            raise ValueError("moe_layers index out of range")
        if "linear" in self.layer_attention and self.linear_attention is None:
            raise ValueError("linear attention layers need linear_attention settings")
        return self

    # ---- shapes -------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    @property
    def q_dim(self) -> int:
        """Width of the query projection output (heads x head dim)."""
        if self.mla:
            return self.num_heads * (self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim)
        return self.num_heads * self.head_dim

    @property
    def attn_out_dim(self) -> int:
        """Width of the attention output fed to the output projection."""
        return self.num_heads * (self.mla.v_head_dim if self.mla else self.head_dim)

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V) for MHA/GQA."""
        return self.num_kv_heads * self.head_dim

    def is_moe_layer(self, i: int) -> bool:
        return self.moe is not None and i in self._moe_set

    @cached_property
    def _moe_set(self) -> frozenset[int]:
        return frozenset(self.moe.moe_layers) if self.moe else frozenset()

    @property
    def num_moe_layers(self) -> int:
        return len(self._moe_set)

    @property
    def num_dense_layers(self) -> int:
        return self.num_layers - self.num_moe_layers

    # ---- parameter counts ---------------------------------------------------
    def attention_params(self, kind: LayerAttention = "full") -> int:
        """Weights (and biases) of one attention block, including its input norm."""
        h = self.hidden_size
        norm = h * (2 if self.norm == "layernorm" else 1)
        if kind == "linear":
            la = self.linear_attention
            assert la is not None
            k_dim = la.num_key_heads * la.key_head_dim
            v_dim = la.num_value_heads * la.value_head_dim
            proj_in = h * (2 * k_dim + 2 * v_dim) + h * 2 * la.num_value_heads  # qkvz + (beta, alpha)
            conv = (2 * k_dim + v_dim) * la.conv_kernel
            return proj_in + conv + v_dim * h + 2 * la.num_value_heads + la.value_head_dim + norm
        if self.mla:
            m = self.mla
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * self.num_heads * qk
            else:
                q = h * self.num_heads * qk
            kv = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
            kv += m.kv_lora_rank * self.num_heads * (m.qk_nope_head_dim + m.v_head_dim)
            return q + kv + self.num_heads * m.v_head_dim * h + norm
        q_out = self.q_dim * (2 if self.attn_output_gate else 1)
        qkv = h * (q_out + 2 * self.kv_dim)
        if self.qkv_bias:
            qkv += q_out + 2 * self.kv_dim
        out = self.q_dim * h + (h if self.linear_bias else 0)
        return qkv + out + norm

    def dense_mlp_params(self, width: int | None = None) -> int:
        h, f = self.hidden_size, width or self.intermediate_size
        w = h * f * (3 if self.gated_mlp else 2)
        if self.linear_bias:
            w += f * (2 if self.gated_mlp else 1) + h
        return w

    def moe_params(self) -> tuple[int, int]:
        """(params of one MoE layer's routed experts + router, of its shared experts)."""
        assert self.moe is not None
        h, m = self.hidden_size, self.moe
        routed = m.num_experts * h * m.expert_intermediate_size * (3 if self.gated_mlp else 2)
        router = h * m.num_experts
        shared = m.num_shared_experts * h * m.shared_intermediate_size * (3 if self.gated_mlp else 2)
        return routed + router, shared

    def layer_params(self, i: int) -> int:
        h = self.hidden_size
        norm = h * (2 if self.norm == "layernorm" else 1)
        attn = self.attention_params(self.layer_attention[i])
        if self.is_moe_layer(i):
            routed, shared = self.moe_params()
            return attn + routed + shared + norm
        return attn + self.dense_mlp_params() + norm

    def layer_param_tensors(self, i: int) -> int:
        """How many separate parameter tensors layer ``i`` holds, in Megatron-Core's
        layout (fused QKV and fused gate/up, one bias tensor per biased linear, two
        tensors per LayerNorm). Collectives issued per tensor (DeepSpeed ZeRO-3)
        pay one launch latency each."""
        norms = 2 * (2 if self.norm == "layernorm" else 1)
        kind = self.layer_attention[i]
        if kind == "linear":
            attn = 7  # in-projection, (beta, alpha) projection, conv, out, norm, A, dt bias
        elif self.mla:
            attn = (3 if self.mla.q_lora_rank else 1) + 3 + 1  # q (a, norm, b), kv (a, norm, b), out
        else:
            attn = 2 + int(self.qkv_bias) + int(self.linear_bias)
        if self.is_moe_layer(i):
            assert self.moe is not None
            mlp = 1 + 2 * self.moe.num_experts + (2 if self.moe.num_shared_experts else 0)
        else:
            mlp = 2 + (2 if self.linear_bias else 0)
        return norms + attn + mlp

    @cached_property
    def embedding_params(self) -> int:
        pos = self.max_seq_len * self.hidden_size if self.learned_positions else 0
        return self.vocab_size * self.hidden_size + pos

    @cached_property
    def lm_head_params(self) -> int:
        return 0 if self.tie_embeddings else self.vocab_size * self.hidden_size

    @cached_property
    def final_norm_params(self) -> int:
        return self.hidden_size * (2 if self.norm == "layernorm" else 1)

    @cached_property
    def total_params(self) -> int:
        """All weights (MTP modules excluded), counting every expert."""
        return (
            sum(self.layer_params(i) for i in range(self.num_layers))
            + self.embedding_params
            + self.lm_head_params
            + self.final_norm_params
        )

    @cached_property
    def active_params(self) -> int:
        """Weights one token touches (routed experts counted top_k times out of num_experts)."""
        if not self.moe:
            return self.total_params
        routed, _ = self.moe_params()
        unused = routed - self.hidden_size * self.moe.num_experts
        unused = unused * (1 - self.moe.top_k / self.moe.num_experts)
        return int(self.total_params - unused * self.num_moe_layers)

    # ---- KV cache -------------------------------------------------------------
    def kv_bytes_per_token_per_layer(self, bytes_per_elem: float) -> float:
        """K and V (MHA/GQA: 2 * kv_heads * head_dim) or the MLA latent (kv_lora_rank + rope dim)."""
        if self.mla:
            return (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim) * bytes_per_elem
        return 2 * self.kv_dim * bytes_per_elem

    def kv_cache_bytes_per_token(self, bytes_per_elem: float = 2.0) -> float:
        """KV-cache bytes one token adds across the layers that keep a growing cache
        (full and sliding-window attention; linear-attention layers keep a fixed state).

        Llama-3.1-70B in bf16: 2 * 8 * 128 * 80 * 2 = 327,680 B; DeepSeek-V3 (MLA):
        (512 + 64) * 61 * 2 = 70,272 B.
        """
        n = sum(1 for k in self.layer_attention if k in ("full", "sliding"))
        return n * self.kv_bytes_per_token_per_layer(bytes_per_elem)

    def kv_cache_bytes(self, seq_len: int, bytes_per_elem: float = 2.0) -> float:
        """Cache of one sequence of ``seq_len`` tokens: sliding-window layers keep at most
        ``sliding_window`` tokens; linear-attention layers keep a fixed recurrent state."""
        per_layer = self.kv_bytes_per_token_per_layer(bytes_per_elem)
        total = 0.0
        for kind in self.layer_attention:
            if kind == "full":
                total += per_layer * seq_len
            elif kind == "sliding":
                total += per_layer * min(seq_len, self.sliding_window or seq_len)
            else:
                la = self.linear_attention
                assert la is not None
                state = la.num_value_heads * la.key_head_dim * la.value_head_dim * 4  # fp32 state
                conv = (2 * la.num_key_heads * la.key_head_dim + la.num_value_heads * la.value_head_dim) * la.conv_kernel
                total += state + conv * bytes_per_elem
        return total


# ---------------------------------------------------------------------------
# Hugging Face config.json -> ModelSpec
# ---------------------------------------------------------------------------

_DENSE_ROPE = {"llama", "mistral", "qwen2", "qwen3", "mimo", "qwen3_vl_text", "llama4_text_dense"}
_MLA_TYPES = {"deepseek_v3", "deepseek_v32", "kimi_k2", "glm_moe_dsa", "deepseek_v2"}
_SUPPORTED = sorted(
    _DENSE_ROPE
    | _MLA_TYPES
    | {"gpt2", "mixtral", "qwen2_moe", "qwen3_moe", "qwen3_vl_moe_text", "minimax_m2", "gpt_oss", "llama4_text", "qwen3_5_text", "qwen3_5_moe_text"}
)


def _req(cfg: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    raise ValueError(f"config.json is missing {' / '.join(keys)}")


def _quant(cfg: dict[str, Any]) -> str | None:
    q = cfg.get("quantization_config")
    if not isinstance(q, dict):
        return None
    method = str(q.get("quant_method", "")).lower()
    if method == "fp8" or q.get("fmt") in ("e4m3", "e5m2"):
        return "fp8"
    algo = str(q.get("quant_algo", "")).lower()
    if method in ("mxfp4",):
        return "mxfp4"
    if "nvfp4" in algo or method == "modelopt" and "fp4" in algo:
        return "nvfp4"
    if "fp8" in algo:
        return "fp8"
    if method in ("awq", "gptq"):
        return "int4"
    return method or None


def from_hf_config(cfg: dict[str, Any], name: str | None = None) -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` dictionary."""
    if not isinstance(cfg, dict):
        raise ValueError("config.json must hold a JSON object")
    top = cfg
    if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "quantization_config": top.get("quantization_config")}
    mt = str(cfg.get("model_type") or top.get("model_type") or "")
    if not mt and not top.get("architectures"):
        raise UnsupportedArchitecture("no model_type or architectures: not a Hugging Face config.json")
    arch = (top.get("architectures") or [mt or "unknown"])[0]
    # Wrappers whose text model is a known family.
    alias = {
        "qwen3_vl_text": "qwen3",
        "qwen3_vl_moe_text": "qwen3_moe",
        "qwen3_5_moe_text": "qwen3_5_moe",
        "qwen3_5_text": "qwen3_5",
        "kimi_k25": "deepseek_v3",
    }
    family = alias.get(mt, mt)
    if family == "kimi_k2":
        family = "deepseek_v3"
    hf_id = top.get("_name_or_path") or None
    name = name or (hf_id.split("/")[-1].lower() if hf_id else arch.lower())
    common: dict[str, Any] = dict(name=name, hf_id=hf_id, model_type=mt or family, weight_quantization=_quant(cfg))

    if family == "gpt2":
        h = _req(cfg, "n_embd", "hidden_size")
        drop = float(cfg.get("resid_pdrop", 0.1) or 0.0)
        return ModelSpec(
            **common,
            hidden_size=h,
            num_layers=_req(cfg, "n_layer", "num_hidden_layers"),
            num_heads=_req(cfg, "n_head", "num_attention_heads"),
            num_kv_heads=_req(cfg, "n_head", "num_attention_heads"),
            head_dim=h // _req(cfg, "n_head", "num_attention_heads"),
            intermediate_size=cfg.get("n_inner") or 4 * h,
            vocab_size=_req(cfg, "vocab_size"),
            max_seq_len=_req(cfg, "n_positions", "max_position_embeddings"),
            tie_embeddings=cfg.get("tie_word_embeddings", True),
            gated_mlp=False,
            norm="layernorm",
            learned_positions=True,
            qkv_bias=True,
            linear_bias=True,
            dropout=drop,
        )

    if family not in {"llama", "mistral", "qwen2", "qwen3", "mimo", "mixtral", "qwen2_moe", "qwen3_moe", "minimax_m2",
                      "gpt_oss", "llama4_text", "qwen3_5", "qwen3_5_moe"} | _MLA_TYPES | {"deepseek_v3"}:
        raise UnsupportedArchitecture(
            f"unsupported architecture {arch} (model_type {mt!r}); supported model types: {', '.join(_SUPPORTED)}"
        )

    h = _req(cfg, "hidden_size")
    L = _req(cfg, "num_hidden_layers")
    heads = _req(cfg, "num_attention_heads")
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or h // heads
    spec: dict[str, Any] = dict(
        common,
        hidden_size=h,
        num_layers=L,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=cfg.get("intermediate_size") or 4 * h,
        vocab_size=_req(cfg, "vocab_size"),
        max_seq_len=cfg.get("max_position_embeddings") or 4096,
        tie_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qkv_bias=bool(cfg.get("attention_bias", family == "qwen2")),
        dropout=float(cfg.get("attention_dropout", 0.0) or 0.0),
    )

    if family in _MLA_TYPES or family == "deepseek_v3":
        spec["mla"] = MLAConfig(
            q_lora_rank=cfg.get("q_lora_rank") or None,
            kv_lora_rank=_req(cfg, "kv_lora_rank"),
            qk_nope_head_dim=_req(cfg, "qk_nope_head_dim"),
            qk_rope_head_dim=_req(cfg, "qk_rope_head_dim"),
            v_head_dim=_req(cfg, "v_head_dim"),
        )
        spec["num_kv_heads"] = heads
        spec["head_dim"] = spec["mla"].qk_nope_head_dim + spec["mla"].qk_rope_head_dim
        first_dense = int(cfg.get("first_k_dense_replace", 0) or 0)
        freq = int(cfg.get("moe_layer_freq", 1) or 1)
        if cfg.get("n_routed_experts"):
            spec["moe"] = MoEConfig(
                num_experts=cfg["n_routed_experts"],
                top_k=_req(cfg, "num_experts_per_tok"),
                expert_intermediate_size=_req(cfg, "moe_intermediate_size"),
                num_shared_experts=int(cfg.get("n_shared_experts") or 0),
                shared_intermediate_size=_req(cfg, "moe_intermediate_size"),
                moe_layers=tuple(i for i in range(first_dense, L) if (i - first_dense) % freq == 0),
            )
        spec["num_mtp_layers"] = int(cfg.get("num_nextn_predict_layers") or 0)
    elif family == "mixtral" or family == "minimax_m2":
        spec["moe"] = MoEConfig(
            num_experts=_req(cfg, "num_local_experts"),
            top_k=_req(cfg, "num_experts_per_tok"),
            expert_intermediate_size=_req(cfg, "intermediate_size"),
            num_shared_experts=1 if cfg.get("shared_intermediate_size") else 0,
            shared_intermediate_size=int(cfg.get("shared_intermediate_size") or 0),
            moe_layers=tuple(range(L)),
        )
    elif family in ("qwen2_moe", "qwen3_moe", "qwen3_5_moe"):
        step = int(cfg.get("decoder_sparse_step", 1) or 1)
        dense_only = set(cfg.get("mlp_only_layers") or [])
        shared = int(cfg.get("shared_expert_intermediate_size") or 0)
        spec["moe"] = MoEConfig(
            num_experts=_req(cfg, "num_experts"),
            top_k=_req(cfg, "num_experts_per_tok"),
            expert_intermediate_size=_req(cfg, "moe_intermediate_size"),
            num_shared_experts=1 if shared else 0,
            shared_intermediate_size=shared,
            moe_layers=tuple(i for i in range(L) if i not in dense_only and (i + 1) % step == 0),
        )
    elif family == "gpt_oss":
        spec["moe"] = MoEConfig(
            num_experts=_req(cfg, "num_local_experts"),
            top_k=_req(cfg, "num_experts_per_tok", "experts_per_token"),
            expert_intermediate_size=_req(cfg, "intermediate_size"),
            moe_layers=tuple(range(L)),
        )
        spec["qkv_bias"] = bool(cfg.get("attention_bias", True))
    elif family == "llama4_text":
        step = int(cfg.get("interleave_moe_layer_step", 1) or 1)
        spec["intermediate_size"] = cfg.get("intermediate_size_mlp") or spec["intermediate_size"]
        spec["moe"] = MoEConfig(
            num_experts=_req(cfg, "num_local_experts"),
            top_k=_req(cfg, "num_experts_per_tok"),
            expert_intermediate_size=_req(cfg, "intermediate_size"),
            num_shared_experts=1,
            shared_intermediate_size=_req(cfg, "intermediate_size"),
            moe_layers=tuple(i for i in range(L) if (i + 1) % step == 0),
        )

    if family in ("qwen3_5", "qwen3_5_moe"):
        spec["linear_attention"] = LinearAttentionConfig(
            num_key_heads=_req(cfg, "linear_num_key_heads"),
            num_value_heads=_req(cfg, "linear_num_value_heads"),
            key_head_dim=_req(cfg, "linear_key_head_dim"),
            value_head_dim=_req(cfg, "linear_value_head_dim"),
            conv_kernel=int(cfg.get("linear_conv_kernel_dim", 4)),
        )
        spec["attn_output_gate"] = bool(cfg.get("attn_output_gate", False))
        spec["layer_attention"] = tuple("linear" if t == "linear_attention" else "full" for t in _req(cfg, "layer_types"))

    if family == "gpt_oss" or (cfg.get("layer_types") and family not in ("qwen3_5", "qwen3_5_moe")):
        types = cfg.get("layer_types") or []
        if types:
            spec["layer_attention"] = tuple("sliding" if t == "sliding_attention" else "full" for t in types)
            spec["sliding_window"] = cfg.get("sliding_window")
    elif cfg.get("sliding_window") and cfg.get("use_sliding_window"):
        spec["layer_attention"] = ("sliding",) * L
        spec["sliding_window"] = cfg["sliding_window"]

    return ModelSpec(**spec)
