"""On a CUDA device (skipped without one): the fast path equals the reference path, in float32
and under bf16 and fp16 autocast, gradients included, through the CUDA backend's kernel; DHT
trains under autocast (fp16 with a loss scaler) with its policies' statistics on the GPU, in
float64."""

from __future__ import annotations

import pytest
import torch

import banditformer as bf
from banditformer import Decision
from banditformer.backends import CUDABackend
from banditformer.model import DynamicTransformer, TransformerConfig

pytestmark = pytest.mark.cuda


def _model(backend: object) -> DynamicTransformer:
    torch.manual_seed(0)
    cfg = TransformerConfig(input="sequence", num_classes=5, seq_len=16, d_model=64, num_layers=4, num_heads=4)
    return DynamicTransformer(cfg, backend=backend).cuda()


def _decision(n: int) -> Decision:
    g = torch.Generator().manual_seed(1)
    d = Decision.full(n, num_layers=4, num_heads=4)
    d.depth[:] = torch.randint(1, 5, (n,), generator=g)
    d.heads[:, 1:] = torch.rand(n, 3, 4, generator=g) < 0.6
    d.heads[:, 1:, 0] = True  # at least one head in every block
    return d.to("cuda")


@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
def test_fast_path_equals_reference_on_cuda(dtype: torch.dtype | None) -> None:
    calls = []

    class Spy(CUDABackend):  # the CUDA backend, counting its kernel's calls
        def routed_attention(self, *args, **kwargs):
            calls.append(1)
            return super().routed_attention(*args, **kwargs)

    model = _model(Spy())
    x = torch.randn(32, 16, device="cuda")
    d = _decision(32)
    assert d.depth.device.type == "cuda" and d.heads.device.type == "cuda"
    outs, grads = [], []
    for path in ("fast", "reference"):
        model.zero_grad()
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            h, _ = model.stem(x)
            logits = model.run(h, d, path=path)
        logits.float().square().mean().backward()
        outs.append(logits.float())
        # a block no sample reaches gets no gradient on the fast path and a zero one on the reference
        grads.append(
            torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in model.parameters()])
        )
        if path == "fast":
            assert calls, "the fast path did not run the backend's routed kernel"
    tol = {None: 1e-4, torch.bfloat16: 5e-2, torch.float16: 1e-2}[dtype]
    torch.testing.assert_close(outs[0], outs[1], rtol=tol, atol=tol)
    torch.testing.assert_close(grads[0], grads[1], rtol=tol * 10, atol=tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_dht_trains_under_autocast_on_cuda(dtype: torch.dtype) -> None:
    from banditformer.tasks import pointer_chasing
    from banditformer.training import TrainConfig, Trainer

    backend = bf.make_backend("cuda")
    data = pointer_chasing(num_samples=600, seed=0)
    torch.manual_seed(0)
    model = DynamicTransformer(TransformerConfig.for_task(data, d_model=32, num_layers=3, num_heads=2), backend=backend)
    ctrl = bf.make_controller("dht", num_layers=3, num_heads=2, context_dim=32, full_flops=model.cost_table().full)
    name = "bfloat16" if dtype == torch.bfloat16 else "float16"
    config = TrainConfig(epochs=4, batch_size=64, autocast=True, autocast_dtype=name, progress=False)
    trainer = Trainer(model, ctrl, data, config)
    assert trainer.backend is backend and next(model.parameters()).device.type == "cuda"
    assert (trainer.scaler is not None) == (dtype == torch.float16)
    x, y = data.train.x[:64].to(backend.device), data.train.y[:64].to(backend.device)
    assert trainer.steps_per_epoch == 7
    losses = [trainer.train_step(x, y)["loss"] for _ in range(12)]  # one batch, again and again: it learns
    assert sum(losses[-3:]) < sum(losses[:3])
    trainer.fit()  # the rest of the schedule, from the middle of epoch 2
    assert trainer.step == trainer.total_steps and [r["epoch"] for r in trainer.history] == [2, 3, 4]
    assert int(ctrl.feedback_calls) + trainer.skipped_feedback == trainer.total_steps
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    test = trainer.evaluate(data.test)
    assert test["flops"].shape == (len(data.test),) and bool((test["flops"] <= trainer.full_flops).all())
    assert test["flops_per_sample"] == pytest.approx(float(test["flops"].double().mean()))
    stats = [(n, b) for n, b in ctrl.named_buffers() if n.endswith(("counts", "sums", "successes", "failures"))]
    assert len(stats) >= 10
    for name, buf in stats:
        assert buf.device.type == "cuda" and buf.dtype == torch.float64, name
        assert bool(torch.isfinite(buf).all()), name
    assert float(ctrl.get_buffer("head_policy.successes").sum() + ctrl.get_buffer("head_policy.failures").sum()) > 0
