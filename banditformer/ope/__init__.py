"""Off-policy evaluation: a target policy's value estimated from a log another policy wrote
(:mod:`banditformer.ope.estimators`: the log and the IPS, SNIPS, direct-method and doubly robust
estimators, ``-> core``)."""

from banditformer.ope.estimators import (
    ESTIMATORS,
    BanditLog,
    Estimate,
    check_policy_fits,
    direct_method,
    doubly_robust,
    effective_sample_size,
    estimate_all,
    fit_reward_model,
    ips,
    snips,
    target_probabilities,
)

__all__ = [
    "ESTIMATORS",
    "BanditLog",
    "Estimate",
    "check_policy_fits",
    "direct_method",
    "doubly_robust",
    "effective_sample_size",
    "estimate_all",
    "fit_reward_model",
    "ips",
    "snips",
    "target_probabilities",
]
