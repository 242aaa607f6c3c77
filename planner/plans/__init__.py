"""Plan documents: every answer the planner gives, as a versioned, checked JSON object, and the gate.

* :mod:`.training`  - the training plan document (``planner.training-plan`` 1.1; 1.0 still read)
* :mod:`.documents` - the serving, expert placement and fleet documents (pydantic models)
* :mod:`.placement` - the expert placement document's builder and rules; :mod:`.fleet` the fleet's
* :mod:`.serving_rules` - the serving document's rules and the per-worker memory they use
* :mod:`.gate`      - :func:`check`: schema, then semantics; the one gate every answer and every re-imported
  document passes
* ``schemas/``      - the JSON Schemas generated from the models (``python -m planner.plans.schemas``
  regenerates them)
"""

from __future__ import annotations

from .documents import (
                        SLO,
                        Engine,
                        FleetDocument,
                        FleetPool,
                        ModelRef,
                        PlacementDocument,
                        PoolPrediction,
                        ServingDocument,
                        ServingPool,
                        ServingPrediction,
                        SystemRef,
                        Traffic,
)
from .fleet import fleet_document
from .gate import (
                        Document,
                        GateFailure,
                        check,
                        check_file,
                        check_plan_document,
                        did_you_mean,
                        gated,
                        load_plan_document,
                        summary,
                        unwrap,
)
from .placement import placement_document
from .refs import PlanCheckError
from .serving_rules import pool_memory
from .training import (
                        SCHEMA_ID,
                        SCHEMA_VERSION,
                        TrainingDocument,
                        plan_document,
                        plan_of,
                        schema,
                        training_document,
)

__all__ = [
                        "SCHEMA_ID",
                        "SCHEMA_VERSION",
                        "SLO",
                        "Document",
                        "Engine",
                        "FleetDocument",
                        "FleetPool",
                        "GateFailure",
                        "ModelRef",
                        "PlacementDocument",
                        "PlanCheckError",
                        "PoolPrediction",
                        "ServingDocument",
                        "ServingPool",
                        "ServingPrediction",
                        "SystemRef",
                        "Traffic",
                        "TrainingDocument",
                        "check",
                        "check_file",
                        "check_plan_document",
                        "did_you_mean",
                        "fleet_document",
                        "gated",
                        "load_plan_document",
                        "placement_document",
                        "plan_document",
                        "plan_of",
                        "pool_memory",
                        "schema",
                        "summary",
                        "training_document",
                        "unwrap",
]
