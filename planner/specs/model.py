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

Every field read has a domain, checked before anything is built (so
``num_hidden_layers: 1000000000`` is refused before a list of a billion layers
is allocated): counts and widths are whole numbers (not bools, not strings),
at least 1 (0 where "none" is meaningful: shared experts, leading dense layers,
MTP layers) and at most the bounds of :mod:`planner.limits`; ``num_key_value_heads``
divides ``num_attention_heads``; without an explicit ``head_dim`` the hidden
size divides by the heads; ``num_experts_per_tok`` is at most the experts; a
given ``sliding_window`` is positive (``null`` is how Hugging Face says "no
window": Mistral, Qwen2/3 with ``use_sliding_window: false``; no supported
family documents 0 or -1 as "off"); layer indices (``mlp_only_layers``) lie in
``[0, num_hidden_layers)`` and ``layer_types`` has one known entry per layer.
A field outside its domain raises :class:`ModelConfigError`, one line
``field: what was expected, got value``.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import PlannerError
from ..limits import MAX_EXPERTS, MAX_HEADS, MAX_HIDDEN, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB
from .text import MAX_LABEL_CHARS, MAX_TEXT_CHARS, check_line, line_problem
from .units import show, whole_number

LayerAttention = Literal["full", "sliding", "linear"]

MAX_WIDTH = 4 * MAX_HIDDEN  # an MLP width (GPT-2 defaults to 4 x hidden)


class UnsupportedArchitecture(PlannerError):
    """A config.json whose architecture the planner cannot model."""


class ModelConfigError(PlannerError):
    """A config.json field outside its domain: one line ``field: what was expected, got value``."""




class MLAConfig(BaseModel):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank compressed KV."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    q_lora_rank: int | None = Field(gt=0, le=MAX_HIDDEN)  # None: queries projected directly (DeepSeek-V2-Lite)
    kv_lora_rank: int = Field(gt=0, le=MAX_HIDDEN)
    qk_nope_head_dim: int = Field(gt=0, le=MAX_HIDDEN)
    qk_rope_head_dim: int = Field(ge=0, le=MAX_HIDDEN)
    v_head_dim: int = Field(gt=0, le=MAX_HIDDEN)

    _ints = field_validator("*", mode="before")(whole_number)


class MoEConfig(BaseModel):
    """Mixture of experts: routed experts (top-k) plus optional shared experts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_experts: int = Field(gt=0, le=MAX_EXPERTS)
    top_k: int = Field(gt=0, le=MAX_EXPERTS)
    expert_intermediate_size: int = Field(gt=0, le=MAX_WIDTH)
    num_shared_experts: int = Field(default=0, ge=0, le=MAX_EXPERTS)
    shared_intermediate_size: int = Field(default=0, ge=0, le=MAX_WIDTH)  # per shared expert
    moe_layers: tuple[int, ...] = Field(min_length=1, max_length=MAX_LAYERS)  # indices of layers whose MLP is MoE

    _ints = field_validator("num_experts", "top_k", "expert_intermediate_size", "num_shared_experts",
                            "shared_intermediate_size", mode="before")(whole_number)

    @model_validator(mode="after")
    def _topk(self) -> "MoEConfig":
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} exceeds num_experts {self.num_experts}")
        return self


class LinearAttentionConfig(BaseModel):
    """Gated DeltaNet linear attention (Qwen3.5): a fixed-size recurrent state."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    num_key_heads: int = Field(gt=0, le=MAX_HEADS)
    num_value_heads: int = Field(gt=0, le=MAX_HEADS)
    key_head_dim: int = Field(gt=0, le=MAX_HIDDEN)
    value_head_dim: int = Field(gt=0, le=MAX_HIDDEN)
    conv_kernel: int = Field(default=4, ge=1, le=MAX_HIDDEN)

    _ints = field_validator("*", mode="before")(whole_number)


class ModelSpec(BaseModel):
    """Architecture facts of a decoder-only transformer, as the cost model needs them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    hf_id: str | None = None
    model_type: str
    hidden_size: int = Field(gt=0, le=MAX_HIDDEN)
    num_layers: int = Field(gt=0, le=MAX_LAYERS)
    num_heads: int = Field(gt=0, le=MAX_HEADS)
    num_kv_heads: int = Field(gt=0, le=MAX_HEADS)
    head_dim: int = Field(gt=0, le=MAX_HIDDEN)
    intermediate_size: int = Field(gt=0, le=MAX_WIDTH, description="dense MLP width")
    vocab_size: int = Field(gt=0, le=MAX_VOCAB)
    max_seq_len: int = Field(gt=0, le=MAX_POSITIONS)
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
    layer_attention: tuple[LayerAttention, ...] = Field(default=(), max_length=MAX_LAYERS)
    sliding_window: int | None = Field(default=None, gt=0, le=MAX_POSITIONS)
    num_mtp_layers: int = Field(default=0, ge=0, le=MAX_LAYERS)
    weight_quantization: str | None = Field(default=None, max_length=MAX_LABEL_CHARS)  # fp8, nvfp4, mxfp4...

    _ints = field_validator("hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "intermediate_size",
                            "vocab_size", "max_seq_len", "sliding_window", "num_mtp_layers", mode="before")(whole_number)

    @field_validator("name", "model_type")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return check_line(v, MAX_LABEL_CHARS)

    @field_validator("hf_id")
    @classmethod
    def _one_line_id(cls, v: str | None) -> str | None:
        return None if v is None else check_line(v, MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if not self.layer_attention:
            object.__setattr__(self, "layer_attention", ("full",) * self.num_layers)
        if len(self.layer_attention) != self.num_layers:
            raise ValueError(f"layer_attention has {len(self.layer_attention)} entries for {self.num_layers} layers")
        if self.mla is None and self.num_heads % self.num_kv_heads:
            raise ValueError(f"num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}")
        if self.moe:
            bad = next((i for i in self.moe.moe_layers if not 0 <= i < self.num_layers), None)
            if bad is not None:
                raise ValueError(f"moe_layers index {bad} out of range [0, {self.num_layers - 1}]")
        if "linear" in self.layer_attention and self.linear_attention is None:
            raise ValueError("linear attention layers need linear_attention settings")
        if "sliding" in self.layer_attention and self.sliding_window is None:
            raise ValueError("sliding-window attention layers need a sliding_window")
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
#: the families from_hf_config models beyond gpt2 (after the wrapper aliases below)
_ROPE_FAMILIES = {"llama", "mistral", "qwen2", "qwen3", "mimo", "mixtral", "qwen2_moe", "qwen3_moe", "minimax_m2",
                  "gpt_oss", "llama4_text", "qwen3_5", "qwen3_5_moe"} | _MLA_TYPES
#: Hugging Face ``layer_types`` entries -> the planner's layer kinds. DeepSeek sparse attention (GLM-5) keeps a
#: full cache; ``linear_attention`` only exists in the Qwen3.5 families.
_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding", "deepseek_sparse_attention": "full"}
_LINEAR_LAYER_TYPES = {"full_attention": "full", "linear_attention": "linear"}

_REQUIRED: Any = object()


class _Fields:
    """Checked reads of one config.json dictionary: each value in its domain, each error naming its key.

    ``null`` (or a missing key) takes the documented default; any other value must be right.
    """

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def pick(self, keys: tuple[str, ...]) -> tuple[str, Any]:
        """The first of ``keys`` holding a value (not null), else ``(keys[0], None)``."""
        for k in keys:
            if self.cfg.get(k) is not None:
                return k, self.cfg[k]
        return keys[0], None

    def int(self, *keys: str, lo: int = 1, hi: int, default: Any = _REQUIRED) -> Any:
        """A whole number in ``[lo, hi]`` (``default`` when null; required without one)."""
        key, v = self.pick(keys)
        if v is None:
            if default is _REQUIRED:
                raise ModelConfigError(f"{' / '.join(keys)}: missing (a whole number is required)")
            return default
        return _whole(v, key, lo, hi)

    def flag(self, key: str, default: bool) -> bool:
        v = self.cfg.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise ModelConfigError(f"{key}: must be true or false, got {show(v)}")
        return v

    def fraction(self, key: str, default: float) -> float:
        v = self.cfg.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 1:
            raise ModelConfigError(f"{key}: must be a number between 0 and 1, got {show(v)}")
        return float(v)

    def layer_indices(self, key: str, num_layers: int) -> set[int]:
        """A list of layer indices, each in ``[0, num_layers)``."""
        v = self.cfg.get(key)
        if v is None:
            return set()
        if not isinstance(v, list):
            raise ModelConfigError(f"{key}: must be a list of layer indices, got {show(v)}")
        if len(v) > num_layers:
            raise ModelConfigError(f"{key}: {len(v)} entries for {num_layers} layers")
        out = set()
        for j, x in enumerate(v):
            if isinstance(x, bool) or not isinstance(x, int) or not 0 <= x < num_layers:
                raise ModelConfigError(f"{key}[{j}]: a layer index must be a whole number in [0, {num_layers - 1}], "
                                       f"got {show(x)}")
            out.add(x)
        return out

    def layer_types(self, key: str, num_layers: int, known: dict[str, str]) -> tuple[str, ...]:
        """One known entry per layer, mapped to the planner's kinds."""
        v = self.cfg.get(key)
        if not isinstance(v, list):
            raise ModelConfigError(f"{key}: must be a list with one entry per layer, got {show(v)}")
        if len(v) != num_layers:
            raise ModelConfigError(f"{key}: {len(v)} entries for num_hidden_layers {num_layers}")
        for j, t in enumerate(v):
            if not isinstance(t, str) or t not in known:
                raise ModelConfigError(f"{key}[{j}]: unknown layer type {show(t)}; known: {', '.join(known)}")
        return tuple(known[t] for t in v)


def _whole(v: Any, key: str, lo: int, hi: int) -> int:
    """``v`` as an int in ``[lo, hi]``: an int or an integral float; never a bool or a string."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (isinstance(v, float) and not
                                                                   (math.isfinite(v) and v == int(v))):
        raise ModelConfigError(f"{key}: must be a whole number, got {show(v)}")
    n = int(v)
    if n < lo:
        raise ModelConfigError(f"{key}: must be at least {lo}, got {n}")
    if n > hi:
        raise ModelConfigError(f"{key}: must be at most {hi:,}, got {show(n) if n > 10**30 else f'{n:,}'}")
    return n


def _label(v: Any, key: str, max_chars: int = MAX_LABEL_CHARS) -> str:
    problem = line_problem(v, max_chars)
    if problem:
        raise ModelConfigError(f"{key}: {problem}")
    return v


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
    return _label(method, "quantization_config.quant_method") if method else None


def from_hf_config(cfg: dict[str, Any], name: str | None = None) -> ModelSpec:
    """Build a :class:`ModelSpec` from a Hugging Face ``config.json`` dictionary.

    Raises :class:`UnsupportedArchitecture` for a family it cannot model and :class:`ModelConfigError`
    (one line, naming the field) for a value outside its domain; nothing else for any input.
    """
    if not isinstance(cfg, dict):
        raise ModelConfigError(f"config.json must hold a JSON object, got {type(cfg).__name__}")
    try:
        return _from_hf_config(cfg, name)
    except ValidationError as err:
        e = err.errors()[0]
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = str(e["msg"]).removeprefix("Value error, ")
        raise ModelConfigError(f"{loc}: {msg}") from None


def _from_hf_config(cfg: dict[str, Any], name: str | None) -> ModelSpec:
    top = cfg
    if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "quantization_config": top.get("quantization_config")}
    mt = cfg.get("model_type") or top.get("model_type") or ""
    _label(mt, "model_type")
    archs = top.get("architectures")
    if archs is not None and not (isinstance(archs, list) and all(isinstance(a, str) for a in archs)):
        raise ModelConfigError(f"architectures: must be a list of class names, got {show(archs)}")
    if not mt and not archs:
        raise UnsupportedArchitecture("no model_type or architectures: not a Hugging Face config.json")
    arch = _label((archs or [mt or "unknown"])[0], "architectures[0]")
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
    if family != "gpt2" and family not in _ROPE_FAMILIES:
        raise UnsupportedArchitecture(
            f"unsupported architecture {arch} (model_type {mt!r}); supported model types: {', '.join(_SUPPORTED)}"
        )
    hf_id = top.get("_name_or_path") or None
    if hf_id is not None:
        _label(hf_id, "_name_or_path", MAX_TEXT_CHARS)
    if name is not None:
        _label(name, "name")
    name = name or (hf_id.split("/")[-1].lower() if hf_id else arch.lower())
    common: dict[str, Any] = dict(name=name, hf_id=hf_id, model_type=mt or family, weight_quantization=_quant(cfg))
    f = _Fields(cfg)

    if family == "gpt2":
        h = f.int("n_embd", "hidden_size", hi=MAX_HIDDEN)
        L = f.int("n_layer", "num_hidden_layers", hi=MAX_LAYERS)
        heads = f.int("n_head", "num_attention_heads", hi=MAX_HEADS)
        if h % heads:
            key = f.pick(("n_embd", "hidden_size"))[0]
            raise ModelConfigError(f"{key}: {h} is not divisible by the {heads} attention heads")
        return ModelSpec(
            **common,
            hidden_size=h,
            num_layers=L,
            num_heads=heads,
            num_kv_heads=heads,
            head_dim=h // heads,
            intermediate_size=f.int("n_inner", hi=MAX_WIDTH, default=4 * h),
            vocab_size=f.int("vocab_size", hi=MAX_VOCAB),
            max_seq_len=f.int("n_positions", "max_position_embeddings", hi=MAX_POSITIONS),
            tie_embeddings=f.flag("tie_word_embeddings", True),
            gated_mlp=False,
            norm="layernorm",
            learned_positions=True,
            qkv_bias=True,
            linear_bias=True,
            dropout=0.1 if "resid_pdrop" not in cfg else f.fraction("resid_pdrop", 0.0),  # GPT-2's default; null: none
        )

    # the layer count first: nothing per layer is built before it is known to be sane
    L = f.int("num_hidden_layers", hi=MAX_LAYERS)
    h = f.int("hidden_size", hi=MAX_HIDDEN)
    heads = f.int("num_attention_heads", hi=MAX_HEADS)
    kv = f.int("num_key_value_heads", hi=MAX_HEADS, default=heads)
    if heads % kv:
        raise ModelConfigError(f"num_key_value_heads: {kv} does not divide num_attention_heads {heads}")
    mla = family in _MLA_TYPES
    head_dim = f.int("head_dim", hi=MAX_HIDDEN, default=None)
    if head_dim is None:
        if h % heads and not mla:
            raise ModelConfigError(f"hidden_size: {h} is not divisible by num_attention_heads {heads} "
                                   "(and no head_dim is given)")
        head_dim = max(1, h // heads)
    sliding_window = f.int("sliding_window", hi=MAX_POSITIONS, default=None)  # null: no window
    spec: dict[str, Any] = dict(
        common,
        hidden_size=h,
        num_layers=L,
        num_heads=heads,
        num_kv_heads=kv,
        head_dim=head_dim,
        intermediate_size=f.int("intermediate_size", hi=MAX_WIDTH, default=4 * h),
        vocab_size=f.int("vocab_size", hi=MAX_VOCAB),
        max_seq_len=f.int("max_position_embeddings", hi=MAX_POSITIONS, default=4096),
        tie_embeddings=f.flag("tie_word_embeddings", False),
        qkv_bias=f.flag("attention_bias", family == "qwen2"),
        dropout=f.fraction("attention_dropout", 0.0),
    )

    def experts(key: str, top_k_keys: tuple[str, ...] = ("num_experts_per_tok",)) -> tuple[int, int]:
        n = f.int(key, hi=MAX_EXPERTS)
        k = f.int(*top_k_keys, hi=MAX_EXPERTS)
        if k > n:
            raise ModelConfigError(f"{f.pick(top_k_keys)[0]}: {k} exceeds {key} {n}")
        return n, k

    def moe_layers(layers: tuple[int, ...], why: str) -> tuple[int, ...]:
        if not layers:
            raise ModelConfigError(f"{why}: no layer of the {L} is a MoE layer")
        return layers

    if mla:
        spec["mla"] = MLAConfig(
            q_lora_rank=f.int("q_lora_rank", hi=MAX_HIDDEN, default=None),  # null: no query compression
            kv_lora_rank=f.int("kv_lora_rank", hi=MAX_HIDDEN),
            qk_nope_head_dim=f.int("qk_nope_head_dim", hi=MAX_HIDDEN),
            qk_rope_head_dim=f.int("qk_rope_head_dim", lo=0, hi=MAX_HIDDEN),
            v_head_dim=f.int("v_head_dim", hi=MAX_HIDDEN),
        )
        spec["num_kv_heads"] = heads
        spec["head_dim"] = spec["mla"].qk_nope_head_dim + spec["mla"].qk_rope_head_dim
        first_dense = f.int("first_k_dense_replace", lo=0, hi=MAX_LAYERS, default=0)
        freq = f.int("moe_layer_freq", hi=MAX_LAYERS, default=1)
        if f.int("n_routed_experts", hi=MAX_EXPERTS, default=None) is not None:  # null: a dense model
            n, k = experts("n_routed_experts")
            width = f.int("moe_intermediate_size", hi=MAX_WIDTH)
            spec["moe"] = MoEConfig(
                num_experts=n,
                top_k=k,
                expert_intermediate_size=width,
                num_shared_experts=f.int("n_shared_experts", lo=0, hi=MAX_EXPERTS, default=0),
                shared_intermediate_size=width,
                moe_layers=moe_layers(tuple(i for i in range(first_dense, L) if (i - first_dense) % freq == 0),
                                      "first_k_dense_replace"),
            )
        spec["num_mtp_layers"] = f.int("num_nextn_predict_layers", lo=0, hi=MAX_LAYERS, default=0)
    elif family == "mixtral" or family == "minimax_m2":
        n, k = experts("num_local_experts")
        shared = f.int("shared_intermediate_size", lo=0, hi=MAX_WIDTH, default=0)
        spec["moe"] = MoEConfig(
            num_experts=n,
            top_k=k,
            expert_intermediate_size=f.int("intermediate_size", hi=MAX_WIDTH),
            num_shared_experts=1 if shared else 0,
            shared_intermediate_size=shared,
            moe_layers=tuple(range(L)),
        )
    elif family in ("qwen2_moe", "qwen3_moe", "qwen3_5_moe"):
        step = f.int("decoder_sparse_step", hi=MAX_LAYERS, default=1)
        dense_only = f.layer_indices("mlp_only_layers", L)
        shared = f.int("shared_expert_intermediate_size", lo=0, hi=MAX_WIDTH, default=0)
        n, k = experts("num_experts")
        spec["moe"] = MoEConfig(
            num_experts=n,
            top_k=k,
            expert_intermediate_size=f.int("moe_intermediate_size", hi=MAX_WIDTH),
            num_shared_experts=1 if shared else 0,
            shared_intermediate_size=shared,
            moe_layers=moe_layers(tuple(i for i in range(L) if i not in dense_only and (i + 1) % step == 0),
                                  "mlp_only_layers / decoder_sparse_step"),
        )
    elif family == "gpt_oss":
        n, k = experts("num_local_experts", ("num_experts_per_tok", "experts_per_token"))
        spec["moe"] = MoEConfig(
            num_experts=n,
            top_k=k,
            expert_intermediate_size=f.int("intermediate_size", hi=MAX_WIDTH),
            moe_layers=tuple(range(L)),
        )
        spec["qkv_bias"] = f.flag("attention_bias", True)
    elif family == "llama4_text":
        step = f.int("interleave_moe_layer_step", hi=MAX_LAYERS, default=1)
        spec["intermediate_size"] = f.int("intermediate_size_mlp", hi=MAX_WIDTH, default=spec["intermediate_size"])
        n, k = experts("num_local_experts")
        width = f.int("intermediate_size", hi=MAX_WIDTH)
        spec["moe"] = MoEConfig(
            num_experts=n,
            top_k=k,
            expert_intermediate_size=width,
            num_shared_experts=1,
            shared_intermediate_size=width,
            moe_layers=moe_layers(tuple(i for i in range(L) if (i + 1) % step == 0), "interleave_moe_layer_step"),
        )

    if family in ("qwen3_5", "qwen3_5_moe"):
        spec["linear_attention"] = LinearAttentionConfig(
            num_key_heads=f.int("linear_num_key_heads", hi=MAX_HEADS),
            num_value_heads=f.int("linear_num_value_heads", hi=MAX_HEADS),
            key_head_dim=f.int("linear_key_head_dim", hi=MAX_HIDDEN),
            value_head_dim=f.int("linear_value_head_dim", hi=MAX_HIDDEN),
            conv_kernel=f.int("linear_conv_kernel_dim", hi=MAX_HIDDEN, default=4),
        )
        spec["attn_output_gate"] = f.flag("attn_output_gate", False)
        spec["layer_attention"] = f.layer_types("layer_types", L, _LINEAR_LAYER_TYPES)
    elif cfg.get("layer_types") is not None:
        spec["layer_attention"] = f.layer_types("layer_types", L, _LAYER_TYPES)
        if "sliding" in spec["layer_attention"]:
            if sliding_window is None:
                raise ModelConfigError("sliding_window: missing (layer_types has sliding_attention layers)")
            spec["sliding_window"] = sliding_window
    elif sliding_window is not None and f.flag("use_sliding_window", False):
        spec["layer_attention"] = ("sliding",) * L
        spec["sliding_window"] = sliding_window

    return ModelSpec(**spec)
