"""Architecture controllers: the DHT controller and the baselines it is compared with (``-> core``)."""

from banditformer.controllers.baselines import LayerDropController, RandomController, StaticSmall, budget_shape
from banditformer.controllers.dht import DHTController, DHTRecord
from banditformer.controllers.static import Fixed, Static

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
