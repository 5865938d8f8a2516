"""Off-policy evaluation: a target policy's value estimated from a log another policy wrote
(:mod:`banditformer.ope.estimators`: the log and the IPS, SNIPS, direct-method and doubly robust
estimators, ``-> core``)."""

from banditformer.ope.estimators import (
    ESTIMATORS,
    BanditLog,
    Estimate,
    direct_method,
    doubly_robust,
    estimate_all,
    fit_reward_model,
    ips,
    snips,
)

__all__ = [
    "ESTIMATORS",
    "BanditLog",
    "Estimate",
    "direct_method",
    "doubly_robust",
    "estimate_all",
    "fit_reward_model",
    "ips",
    "snips",
]
