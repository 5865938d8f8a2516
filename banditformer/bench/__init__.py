"""The benchmark harness: bandit policies on problems, controllers on tasks, results folders that
resume (``-> plugins, training, model``)."""
