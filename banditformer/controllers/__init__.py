"""Architecture controllers (the DHT controller and the baselines)."""

from banditformer.controllers.dht import DHTController
from banditformer.controllers.static import StaticFull

__all__ = ["DHTController", "StaticFull"]
