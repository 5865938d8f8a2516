"""Built-in bandit policies, one per module. They are registered through the plugin hooks
(:mod:`banditformer.builtin`), the same door third-party policies use."""

from banditformer.bandits.bucketed import Bucketed
from banditformer.bandits.bucketed_combinatorial import BucketedCombinatorial
from banditformer.bandits.cts import CTS
from banditformer.bandits.cucb import CUCB
from banditformer.bandits.epsilon_greedy import EpsilonGreedy
from banditformer.bandits.kl_ucb import KLUCB
from banditformer.bandits.lints import LinearThompson
from banditformer.bandits.linucb import LinUCB
from banditformer.bandits.thompson_beta import BetaThompson
from banditformer.bandits.thompson_gaussian import GaussianThompson
from banditformer.bandits.ucb1 import UCB1

__all__ = [
    "CTS",
    "CUCB",
    "KLUCB",
    "UCB1",
    "BetaThompson",
    "Bucketed",
    "BucketedCombinatorial",
    "EpsilonGreedy",
    "GaussianThompson",
    "LinUCB",
    "LinearThompson",
]
