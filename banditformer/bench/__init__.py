"""The benchmark harness: bandit policies on problems, controllers on tasks, results folders that
resume (``-> training, model, plugins`` and the implementations it compares). One job per module:

- :mod:`~banditformer.bench.config`: both benches' configurations (what to run), checked;
- :mod:`~banditformer.bench.bandits`: ``bench bandits``, its runner (and configuration);
- :mod:`~banditformer.bench.models`: ``bench model``, its plan and runner (and configuration);
- :mod:`~banditformer.bench.experiment`: one training run of a controller on a task;
- :mod:`~banditformer.bench.quick`: the quick policy table of ``banditformer bandits``;
- :mod:`~banditformer.bench.compat`: which policies can play which problem;
- :mod:`~banditformer.bench.mabwiser`: MABWiser's reference runs (optional package);
- :mod:`~banditformer.bench.results`: what a run produced, and its job records;
- :mod:`~banditformer.bench.stats`: confidence intervals, the Pareto front, the Lai-Robbins bound;
- :mod:`~banditformer.bench.report`: reports as text, JSON and CSV;
- :mod:`~banditformer.bench.plots`: reports as PNGs (optional matplotlib);
- :mod:`~banditformer.bench.runlog`: results folders that record each finished job;
- :mod:`~banditformer.bench.pool`: jobs in worker processes, recorded as they finish.
"""
