"""timm's VisionTransformer (banditformer/adapters/timm_vit.py): the variants whose forward the
family does not describe are refused with what differs, and nothing is changed; the supported
one is recognised by class. The equality and path tests of ``test_equality.py`` and
``test_paths.py`` run on it through ``tests/adapters/models.py`` ("timm_vit"). Every test here
skips without timm, which needs torchvision (not in the dev extra)."""

from __future__ import annotations

import pytest
import torch

from banditformer.adapters import TIMM_VIT, adapt, supported
from banditformer.core.errors import InputValidationError
from tests.adapters.models import HEADS, D

timm = pytest.importorskip("timm", reason="timm is not installed (it needs a torchvision built for this torch)")


def _vit(**kwargs):
    options = dict(img_size=8, patch_size=4, in_chans=2, num_classes=3, embed_dim=D, depth=2, num_heads=HEADS)
    return timm.models.VisionTransformer(**{**options, **kwargs}).eval()


def test_the_standard_vit_is_recognised_by_class() -> None:
    model = _vit()
    adapted = adapt(model)
    assert adapted.family is TIMM_VIT and "VisionTransformer" in supported()
    assert (adapted.num_layers, adapted.num_heads, adapted.cfg.seq_len) == (2, HEADS, 5)  # 4 patches + class token


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qk_norm": True}, "without q_norm"),
        ({"global_pool": "avg", "class_token": False, "fc_norm": True}, "global_pool='token'"),
        ({"global_pool": "map"}, "global_pool='token'"),
    ],
)
def test_variants_the_family_does_not_describe_are_refused(kwargs, message) -> None:
    model = _vit(**kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InputValidationError, match=message):
        adapt(model)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_a_distilled_vit_is_refused() -> None:
    from timm.models.deit import VisionTransformerDistilled

    model = VisionTransformerDistilled(
        img_size=8, patch_size=4, in_chans=2, num_classes=3, embed_dim=D, depth=2, num_heads=HEADS
    )
    with pytest.raises(InputValidationError, match="distillation head"):
        adapt(model)
