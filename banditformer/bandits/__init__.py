"""Built-in bandit policies, one per module, each module named after the policy's registry name
(``lin_thompson`` is :class:`LinThompson` in :mod:`banditformer.bandits.lin_thompson`). They are
registered through the plugin hooks (:mod:`banditformer.builtin`), the same door third-party
policies use.

:func:`compiled_rounds` turns the compiled CPU rounds of the count policies (numba kernels, see
:mod:`banditformer.bandits._compiled`) off or on inside a block; they change speed only."""

from banditformer.bandits._compiled import compiled_available, compiled_rounds, compiled_rounds_enabled
from banditformer.bandits.bayes_ucb import BayesUCB
from banditformer.bandits.bucketed import Bucketed
from banditformer.bandits.bucketed_combinatorial import BucketedCombinatorial
from banditformer.bandits.cts import CTS
from banditformer.bandits.cucb import CUCB
from banditformer.bandits.epsilon_greedy import EpsilonGreedy
from banditformer.bandits.exp3_ix import EXP3IX
from banditformer.bandits.kl_ucb import KLUCB
from banditformer.bandits.lin_thompson import LinThompson
from banditformer.bandits.linucb import LinUCB
from banditformer.bandits.m_ucb import MUCB
from banditformer.bandits.moss import MOSS
from banditformer.bandits.sw_kl_ucb import SlidingWindowKLUCB
from banditformer.bandits.sw_ucb import SlidingWindowUCB
from banditformer.bandits.thompson_beta import ThompsonBeta
from banditformer.bandits.thompson_gaussian import ThompsonGaussian
from banditformer.bandits.ucb1 import UCB1

__all__ = [
    "CTS",
    "CUCB",
    "EXP3IX",
    "KLUCB",
    "MOSS",
    "MUCB",
    "UCB1",
    "BayesUCB",
    "Bucketed",
    "BucketedCombinatorial",
    "EpsilonGreedy",
    "LinThompson",
    "LinUCB",
    "SlidingWindowKLUCB",
    "SlidingWindowUCB",
    "ThompsonBeta",
    "ThompsonGaussian",
    "compiled_available",
    "compiled_rounds",
    "compiled_rounds_enabled",
]
