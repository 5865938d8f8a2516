"""Architecture controllers, one module per registry name: ``dht`` (and ``dht_integrated``),
``threshold_bandit``, ``bandit_halting`` (``halting``) and ``stepwise_dht``: bandits that decide up
front and at exit points; and the baselines they are compared with: ``static`` and ``static_small``, ``random``,
``layerdrop``, the early exits
``entropy_exit``, ``confidence_exit`` and ``margin_exit`` (``early_exit``), ``patience_exit``
(``-> core``)."""

from banditformer.controllers.dht import DHTController, DHTRecord
from banditformer.controllers.early_exit import ThresholdExit
from banditformer.controllers.halting import BanditHalting
from banditformer.controllers.layerdrop import LayerDropController
from banditformer.controllers.patience import PatienceExit
from banditformer.controllers.random import RandomController
from banditformer.controllers.static import Fixed, Static, StaticSmall, budget_shape, uniform_shapes
from banditformer.controllers.stepwise_dht import StepwiseDHT, StepwiseRecord
from banditformer.controllers.threshold_bandit import ThresholdBandit, ThresholdRecord

__all__ = [
    "BanditHalting",
    "DHTController",
    "DHTRecord",
    "Fixed",
    "LayerDropController",
    "PatienceExit",
    "RandomController",
    "Static",
    "StaticSmall",
    "StepwiseDHT",
    "StepwiseRecord",
    "ThresholdBandit",
    "ThresholdExit",
    "ThresholdRecord",
    "budget_shape",
    "uniform_shapes",
]
