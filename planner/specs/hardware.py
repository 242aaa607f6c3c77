"""Hardware specs: accelerator, node (scale-up domain + NIC), system file, cluster.

A hardware spec file (``hardware_specs/*.yaml``) describes one *system*: the
accelerator and the node it sits in. Quantities are written with units
(``80 GiB``, ``3.35 TB/s``, ``989.5 TFLOPS``) and parsed by
:mod:`planner.specs.units`. Bandwidths are *per direction, per accelerator*
(vendors' NVLink headline numbers are both directions summed: halve them).
Peak FLOP/s are dense (no 2:4 sparsity). Every file lists its ``sources``.

Every number has a domain: finite, and inside a range no real device leaves
(so no real spec is refused) that keeps every time, cost and ratio computed
from it finite (so ``1e-30 GB`` of memory or ``nan`` FLOP/s cannot slip
through):

========================================  ======================  ==========================
field                                      range                   real devices
========================================  ======================  ==========================
accelerator ``memory_bytes``               1 GB .. 100 TB          16 GB (T4) .. 288 GB (B300)
``hbm_bandwidth_bytes_per_s``              1 GB/s .. 1 PB/s        0.3 .. 8 TB/s
``peak_flops`` (each dtype)                1 GFLOP/s .. 1 EFLOP/s  ~20 TFLOP/s fp32 .. 15 PFLOP/s fp4
``tdp_w``                                  1 W .. 100 kW           70 W .. 1.4 kW
``price_per_hour_usd``                     0 .. 1,000,000          0.5 .. 15
``launch_year``                            1990 .. 2100
scale-up, NIC and PCIe bandwidths          100 MB/s .. 1 PB/s      12.5 GB/s (100 Gb/s) .. 900 GB/s
latencies                                  0 .. 1 s                1 .. 10 us
``host_memory_bytes``                      1 GB .. 1 PB            0.5 .. 4 TB
``accelerators_per_node``, domain          1 .. MAX_GPUS (2^20)    1 .. 72
========================================  ======================  ==========================

Counts are whole numbers (``true`` or ``8.5`` are refused). Names and aliases
are one printable line (:mod:`planner.specs.text`).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ..errors import PlannerError
from ..limits import MAX_GPUS
from .text import MAX_LABEL_CHARS, MAX_TEXT_CHARS, check_line
from .units import Bytes, BytesPerSecond, FlopsPerSecond, Seconds, Watts, whole_number


def _within(lo: float, hi: float, show: Callable[[float], str]) -> Callable[[float], float]:
    """An after-validator: the value (already finite, SI) must lie in ``[lo, hi]``."""

    def check(v: float) -> float:
        if not math.isfinite(v):
            raise ValueError(f"must be a finite number, got {v!r}")
        if not lo <= v <= hi:
            raise ValueError(f"must be between {show(lo)} and {show(hi)}, got {show(v)}")
        return v

    return check


def _rate(unit: str) -> Callable[[float], str]:
    """``1.5e12`` -> ``1.5 TB/s`` (decimal prefixes); tiny values as they are (``1e-30 B/s``)."""

    def show(v: float) -> str:
        for prefix, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.4g} {prefix}{unit}"
        return f"{v:.4g} {unit}"

    return show


HBMBytes = Annotated[Bytes, AfterValidator(_within(1e9, 1e14, _rate("B")))]
HostBytes = Annotated[Bytes, AfterValidator(_within(1e9, 1e15, _rate("B")))]
HBMBandwidth = Annotated[BytesPerSecond, AfterValidator(_within(1e9, 1e15, _rate("B/s")))]
LinkBandwidth = Annotated[BytesPerSecond, AfterValidator(_within(1e8, 1e15, _rate("B/s")))]
PeakFlops = Annotated[FlopsPerSecond, AfterValidator(_within(1e9, 1e18, _rate("FLOP/s")))]
Latency = Annotated[Seconds, AfterValidator(_within(0.0, 1.0, _rate("s")))]
Power = Annotated[Watts, AfterValidator(_within(1.0, 1e5, _rate("W")))]
Count = Annotated[int, BeforeValidator(whole_number), Field(ge=1, le=MAX_GPUS)]
Text = Annotated[str, AfterValidator(lambda v: check_line(v, MAX_TEXT_CHARS))]

Dtype = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
DTYPES: tuple[str, ...] = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")

Family = Literal["ampere", "ada", "hopper", "blackwell", "cdna2", "cdna3", "cdna4", "tpu", "gaudi"]


class StrictModel(BaseModel):
    """Base for user-facing specs: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Accelerator(StrictModel):
    """One accelerator (GPU / TPU chip) as its datasheet describes it."""

    name: str
    vendor: Literal["nvidia", "amd", "google", "intel"]
    family: Family = Field(description="architecture family; selects the fitted efficiency constants")
    memory_bytes: HBMBytes = Field(description="memory usable by programs (see datasheet pitfalls: GB vs GiB)")
    hbm_bandwidth_bytes_per_s: HBMBandwidth
    peak_flops: dict[Dtype, PeakFlops] = Field(description="dense peak FLOP/s (or OP/s) per dtype")
    tdp_w: Power
    price_per_hour_usd: float | None = Field(default=None, ge=0, le=1e6, allow_inf_nan=False,
                                             description="on-demand $/GPU-hour, dated in sources")
    launch_year: Annotated[int, BeforeValidator(whole_number), Field(ge=1990, le=2100)] | None = None

    @field_validator("name")
    @classmethod
    def _one_line(cls, v: str) -> str:
        return check_line(v, MAX_LABEL_CHARS)

    @field_validator("price_per_hour_usd", mode="before")
    @classmethod
    def _price_is_a_number(cls, v: Any) -> Any:
        if isinstance(v, (bool, str)):  # "3.99" or true: a typo, not a price
            raise ValueError(f"must be a number of US dollars per hour, got {v!r}")
        return v

    @field_validator("peak_flops")
    @classmethod
    def _needs_16bit(cls, v: dict[str, float]) -> dict[str, float]:
        if "bf16" not in v and "fp16" not in v:
            raise ValueError("peak_flops needs at least bf16 or fp16")
        return v

    def flops(self, dtype: str) -> float:
        """Dense peak for ``dtype``; a dtype the part lacks falls back to the
        nearest wider one it has (fp8 -> bf16 on A100: no FP8 tensor cores)."""
        if dtype not in DTYPES:
            raise PlannerError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
        order = {
            "fp4": ["fp4", "fp8", "bf16", "fp16"],
            "int4": ["int4", "int8", "fp8", "bf16", "fp16"],
            "fp8": ["fp8", "bf16", "fp16"],
            "int8": ["int8", "fp8", "bf16", "fp16"],
            "bf16": ["bf16", "fp16"],
            "fp16": ["fp16", "bf16"],
            "tf32": ["tf32", "fp32"],
            "fp32": ["fp32", "tf32"],
        }[dtype]
        for d in order:
            if d in self.peak_flops:
                return self.peak_flops[d]
        raise ValueError(f"{self.name} has no peak FLOP/s for {dtype}")

    def has_native(self, dtype: str) -> bool:
        return dtype in self.peak_flops


class Node(StrictModel):
    """A server (or rack-scale domain) holding accelerators.

    ``scale_up_domain`` is how many accelerators share the fast fabric (NVLink
    8 on HGX, 72 on NVL72, 1 for PCIe-only cards). ``nic_bandwidth_bytes_per_s``
    is the scale-out network per accelerator, per direction.
    """

    accelerators_per_node: Count
    scale_up_domain: Count
    scale_up_bandwidth_bytes_per_s: LinkBandwidth = Field(description="per accelerator, per direction")
    scale_up_latency_s: Latency
    nic_bandwidth_bytes_per_s: LinkBandwidth = Field(description="per accelerator, per direction")
    network_latency_s: Latency
    pcie_bandwidth_bytes_per_s: LinkBandwidth = Field(description="host link per accelerator, per direction")
    host_memory_bytes: HostBytes = Field(description="CPU memory of the node")
    scale_up_kind: Literal["nvswitch", "nvlink_bridge", "mesh", "torus", "pcie", "ethernet"] = "nvswitch"
    network_efficiency: float | None = Field(
        default=None, gt=0, le=1, allow_inf_nan=False,
        description="measured fraction of the NIC bandwidth collectives reach on this system (cite it); "
        "default: the fitted constant of the accelerator family",
    )


class System(StrictModel):
    """One hardware spec file: an accelerator in a node, with sources."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=MAX_LABEL_CHARS)
    aliases: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=MAX_LABEL_CHARS)]] = Field(
        default=[], max_length=256)
    description: Text = ""
    sources: list[Text] = Field(min_length=1, max_length=256, description="datasheets and pages each number comes from")
    accelerator: Accelerator
    node: Node

    @model_validator(mode="after")
    def _domain_fits(self) -> "System":
        n = self.node
        if n.scale_up_domain < n.accelerators_per_node and n.scale_up_domain != 1 and n.accelerators_per_node % n.scale_up_domain:
            raise ValueError("scale_up_domain must divide accelerators_per_node")
        return self


class Cluster(StrictModel):
    """A number of identical systems: ``num_accelerators`` GPUs of ``system``."""

    system: System
    num_accelerators: Count

    @property
    def num_nodes(self) -> int:
        per = self.system.node.accelerators_per_node
        return -(-self.num_accelerators // per)
