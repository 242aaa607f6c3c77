"""Plan documents: every answer the planner gives, as a versioned, checked JSON object.

* :mod:`.training` - the training plan document (``planner.training-plan``)
"""

from __future__ import annotations

from .training import SCHEMA_ID, SCHEMA_VERSION, check_plan_document, load_plan_document, plan_document, plan_of, schema

__all__ = ["SCHEMA_ID", "SCHEMA_VERSION", "check_plan_document", "load_plan_document", "plan_document", "plan_of",
           "schema"]
