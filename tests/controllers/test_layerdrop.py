"""The LayerDrop baseline: random depth cuts in training, a fixed pruned depth at inference."""

from __future__ import annotations

import torch

from banditformer.controllers import LayerDropController


def test_layerdrop_drops_in_training_and_prunes_at_inference() -> None:
    c = LayerDropController(6, 4, drop=0.3, inference_depth=4, seed=0)
    train = c.decide(torch.zeros(5000, 1), explore=True)
    # P(depth = L) = (1 - drop)^(L - 1)
    assert abs(float((train.depth == 6).double().mean()) - 0.7**5) < 0.03
    assert bool(train.heads.all())
    assert c.decide(torch.zeros(3, 1), explore=False).depth.tolist() == [4, 4, 4]
