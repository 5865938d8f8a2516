"""Shared by the controller tests: the cost table of a 6-block, 4-head model."""

from __future__ import annotations

import pytest

from banditformer.core.cost import CostTable
from tests.model.test_dynamic import make_model


@pytest.fixture(scope="module")
def table() -> CostTable:
    return make_model(0, num_layers=6, num_heads=4, d_model=32).cost_table()
