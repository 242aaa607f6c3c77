"""Predicted vs measured: the reference suites the planner is checked against.

* :mod:`.training` - the Megatron-LM 2021 runs (Tables 1 and 2) and the search on each Table 1 job
* :mod:`.serving_rows` - one row of ``measured_serving.csv`` -> model, system, plan -> estimate or a reason
* :mod:`.serving` - MAPE of TTFT / TPOT by split, system, mode, backend and kind

Only this package (and the fitting scripts) read ``../shared/reference``.
"""

from __future__ import annotations

from .serving import ServingValidation, validate_serving
from .training import DEFAULT_REFERENCE, TrainingValidation, validate_training, validate_training_search

__all__ = ["DEFAULT_REFERENCE", "ServingValidation", "TrainingValidation", "validate_serving", "validate_training",
           "validate_training_search"]
