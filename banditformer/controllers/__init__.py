"""Architecture controllers, one module per registry name: ``dht`` (and ``dht_integrated``), and the
baselines it is compared with, ``static`` and ``static_small``, ``random``, ``layerdrop`` (``-> core``)."""

from banditformer.controllers.dht import DHTController, DHTRecord
from banditformer.controllers.layerdrop import LayerDropController
from banditformer.controllers.random import RandomController
from banditformer.controllers.static import Fixed, Static, StaticSmall, budget_shape

__all__ = [
    "DHTController",
    "DHTRecord",
    "Fixed",
    "LayerDropController",
    "RandomController",
    "Static",
    "StaticSmall",
    "budget_shape",
]
