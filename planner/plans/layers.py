"""The layer split of a training plan, for readers of plan documents (exporters import plans, not cost).

:func:`chunk_sizes` is the split the estimator costs (:func:`planner.cost.training_plan.partition_layers`):
``layers_per_chunk`` when the plan gives it, else as even as possible with the leftover layers in the middle
chunks; chunk ``c`` runs on pipeline stage ``c % pp``.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..cost.training_plan import partition_layers


def chunk_sizes(num_layers: int, pp: int, vpp: int = 1, layers_per_chunk: Sequence[int] | None = None) -> list[int]:
    """Layers of each of the ``pp x vpp`` model chunks."""
    if layers_per_chunk is not None:
        return [int(n) for n in layers_per_chunk]
    return [len(c) for c in partition_layers(int(num_layers), int(pp), int(vpp))]


__all__ = ["chunk_sizes"]
