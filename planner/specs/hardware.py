"""Hardware specs: accelerator, node (scale-up domain + NIC), system file, cluster.

A hardware spec file (``hardware_specs/*.yaml``) describes one *system*: the
accelerator and the node it sits in. Quantities are written with units
(``80 GiB``, ``3.35 TB/s``, ``989.5 TFLOPS``) and parsed by
:mod:`planner.specs.units`. Bandwidths are *per direction, per accelerator*
(vendors' NVLink headline numbers are both directions summed: halve them).
Peak FLOP/s are dense (no 2:4 sparsity). Every file lists its ``sources``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator, model_validator

from .units import Bytes, BytesPerSecond, FlopsPerSecond, Seconds, Watts

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
    memory_bytes: Bytes = Field(gt=0, description="memory usable by programs (see datasheet pitfalls: GB vs GiB)")
    hbm_bandwidth_bytes_per_s: BytesPerSecond = Field(gt=0)
    peak_flops: dict[Dtype, FlopsPerSecond] = Field(description="dense peak FLOP/s (or OP/s) per dtype")
    tdp_w: Watts = Field(gt=0)
    price_per_hour_usd: float | None = Field(default=None, ge=0, description="on-demand $/GPU-hour, dated in sources")
    launch_year: int | None = None

    @field_validator("peak_flops")
    @classmethod
    def _needs_16bit(cls, v: dict[str, float]) -> dict[str, float]:
        if "bf16" not in v and "fp16" not in v:
            raise ValueError("peak_flops needs at least bf16 or fp16")
        if any(x <= 0 for x in v.values()):
            raise ValueError("peak_flops values must be positive")
        return v

    def flops(self, dtype: str) -> float:
        """Dense peak for ``dtype``; a dtype the part lacks falls back to the
        nearest wider one it has (fp8 -> bf16 on A100: no FP8 tensor cores)."""
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

    accelerators_per_node: PositiveInt
    scale_up_domain: PositiveInt
    scale_up_bandwidth_bytes_per_s: BytesPerSecond = Field(gt=0, description="per accelerator, per direction")
    scale_up_latency_s: Seconds = Field(ge=0)
    nic_bandwidth_bytes_per_s: BytesPerSecond = Field(gt=0, description="per accelerator, per direction")
    network_latency_s: Seconds = Field(ge=0)
    pcie_bandwidth_bytes_per_s: BytesPerSecond = Field(gt=0, description="host link per accelerator, per direction")
    host_memory_bytes: Bytes = Field(gt=0, description="CPU memory of the node")
    scale_up_kind: Literal["nvswitch", "nvlink_bridge", "mesh", "torus", "pcie", "ethernet"] = "nvswitch"
    network_efficiency: float | None = Field(
        default=None, gt=0, le=1,
        description="measured fraction of the NIC bandwidth collectives reach on this system (cite it); "
        "default: the fitted constant of the accelerator family",
    )


class System(StrictModel):
    """One hardware spec file: an accelerator in a node, with sources."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    aliases: list[str] = []
    description: str = ""
    sources: list[str] = Field(min_length=1, description="datasheets and pages each number comes from")
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
    num_accelerators: PositiveInt

    @property
    def num_nodes(self) -> int:
        per = self.system.node.accelerators_per_node
        return -(-self.num_accelerators // per)
