import pytest
import torch

from banditformer import BackendUnavailableError, list_backends, make_backend
from banditformer.backends import CUDABackend


def test_cpu_backend() -> None:
    b = make_backend("cpu")
    assert b.device == torch.device("cpu") and b.autocast_dtype == torch.bfloat16
    with b.timer() as t:
        torch.ones(1000).cumsum(0)
    assert t.seconds >= 0
    with b.autocast():
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    mem = b.memory_stats()
    assert mem["peak_allocated"] > 0 and "allocated" in mem
    assert "cpu" in list_backends(available_only=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(
        BackendUnavailableError, match=r"expected a CUDA device .* got torch.cuda.is_available\(\) = False"
    ):
        make_backend("cuda")
    assert "cuda" in list_backends() and "cuda" not in list_backends(available_only=True)


@pytest.mark.cuda
def test_cuda_backend_times_with_events_and_reports_memory() -> None:
    b = make_backend("cuda")
    x = torch.randn(2048, 2048, device=b.device)
    with b.timer() as t:
        for _ in range(10):
            x = x @ x
            x = x / x.norm()
    assert t.seconds > 0
    with b.autocast():
        assert (x @ x).dtype == b.autocast_dtype
    assert b.memory_stats()["peak_allocated"] >= x.numel() * 4
    with pytest.raises(BackendUnavailableError, match="device index"):
        CUDABackend(index=torch.cuda.device_count())
