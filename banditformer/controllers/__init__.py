"""Architecture controllers (the DHT controller and the baselines)."""

from banditformer.controllers.baselines import LayerDropController, RandomController, StaticSmall, budget_shape
from banditformer.controllers.dht import DHTController
from banditformer.controllers.static import StaticFull

__all__ = ["DHTController", "LayerDropController", "RandomController", "StaticFull", "StaticSmall", "budget_shape"]
