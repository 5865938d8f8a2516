"""A training run that resumes from its checkpoint when one exists (run by test_kill_resume.py).

python tests/training/resumable_run.py CHECKPOINT OUT.json
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

from banditformer.core.random import derive_seed
from banditformer.model import DynamicTransformer, TransformerConfig
from banditformer.plugins import make_controller, make_task
from banditformer.training import TrainConfig, Trainer


def main(checkpoint: str, out: str) -> None:
    torch.set_num_threads(1)
    data = make_task("digits", seed=0)
    torch.manual_seed(derive_seed(0, "init"))
    model = DynamicTransformer(TransformerConfig.for_task(data, d_model=32, num_layers=3, num_heads=2, pooling="cls"))
    controller = make_controller(
        "dht", num_layers=3, num_heads=2, context_dim=32, full_flops=model.cost_table().full, lam=0.2, seed=0
    )
    trainer = Trainer(model, controller, data, TrainConfig(epochs=3, batch_size=32, seed=0, progress=False))
    resumed_at = 0
    if Path(checkpoint).exists():
        trainer.load(checkpoint)
        resumed_at = trainer.step
    trainer.fit(checkpoint=checkpoint, checkpoint_every=5)
    test = trainer.evaluate(data.test)
    digest = hashlib.sha256()
    for value in [*model.state_dict().values(), *controller.state_dict().values()]:
        if isinstance(value, torch.Tensor):
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    result = {
        "resumed_at": resumed_at,
        "accuracy": test["accuracy"],
        "flop_saving": test["flop_saving"],
        "train_flop_saving": 1.0 - trainer.train_flop_ratio,
        "state_sha256": digest.hexdigest(),
    }
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
