"""The built-in bandit problems: known expected rewards, batched and seeded (``-> core``)."""

from banditformer.problems.instances import (
    BERNOULLI_INSTANCES,
    BernoulliProblem,
    ClassificationProblem,
    GaussianProblem,
    LinearContextualProblem,
    SeedStreams,
    SwitchingBernoulliProblem,
    TopKSemiBanditProblem,
    classification_problem,
)

__all__ = [
    "BERNOULLI_INSTANCES",
    "BernoulliProblem",
    "ClassificationProblem",
    "GaussianProblem",
    "LinearContextualProblem",
    "SeedStreams",
    "SwitchingBernoulliProblem",
    "TopKSemiBanditProblem",
    "classification_problem",
]
