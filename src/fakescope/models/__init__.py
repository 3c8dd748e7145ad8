"""Model registry: ``create_model(name)`` builds a one-logit (p(fake)) image classifier."""

from __future__ import annotations

# Imported for their side effect: each module registers its models.
from fakescope.models import backbones as backbones
from fakescope.models import npr as npr
from fakescope.models import resnet_se as resnet_se
from fakescope.models.registry import (
    LoadReport,
    ModelDefaults,
    backbone_parameters,
    classifier_parameters,
    create_model,
    embed,
    feature_module_names,
    list_models,
    load_weights,
    model_defaults,
    register_model,
)

__all__ = [
    "LoadReport",
    "ModelDefaults",
    "backbone_parameters",
    "classifier_parameters",
    "create_model",
    "embed",
    "feature_module_names",
    "list_models",
    "load_weights",
    "model_defaults",
    "register_model",
]
