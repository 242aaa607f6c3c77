"""MoE expert placement: routing traces, a synthetic generator, baselines, and the placer."""

from .placement import ExpertCluster, Evaluation, Placement, PlacementError, Weights, evaluate, greedy, round_robin
from .synthetic import moe_shape, synthetic_trace
from .trace import RoutingStats, RoutingTrace, TraceError, load_routing, save_routing

__all__ = ["ExpertCluster", "Evaluation", "Placement", "PlacementError", "RoutingStats", "RoutingTrace", "TraceError",
           "Weights", "evaluate", "greedy", "load_routing", "moe_shape", "round_robin", "save_routing", "synthetic_trace"]
