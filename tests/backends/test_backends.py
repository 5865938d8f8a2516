"""The built-in backends (banditformer/backends/cpu.py, cuda.py, __init__.py): device, autocast,
timing, the default backend of a device, and a clear error without a GPU."""

import time

import pytest
import torch

from banditformer import BackendUnavailableError, InputValidationError, list_backends, make_backend
from banditformer.backends import CPUBackend, CUDABackend, default_backend


def test_cpu_backend() -> None:
    b = make_backend("cpu")
    assert b.device == torch.device("cpu") and b.autocast_dtype == torch.bfloat16
    with b.timer() as t:
        time.sleep(0.02)
    assert 0.02 <= t.seconds < 5.0
    with b.autocast():
        y = torch.nn.Linear(4, 4)(torch.ones(2, 4))
    assert y.dtype == torch.bfloat16
    with b.autocast(enabled=False):
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.float32
    assert "cpu" in list_backends(available_only=True)


def test_the_default_backend_of_a_device() -> None:
    assert type(default_backend("cpu")) is CPUBackend
    with pytest.raises(InputValidationError, match="expected a cpu or cuda device for a built-in backend, got meta"):
        default_backend("meta")
    with pytest.raises(InputValidationError, match="`device` to be a torch device"):
        default_backend("nowhere")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(
        BackendUnavailableError, match=r"expected a CUDA device .* got torch.cuda.is_available\(\) = False"
    ):
        make_backend("cuda")
    assert "cuda" in list_backends() and "cuda" not in list_backends(available_only=True)


@pytest.mark.cuda
def test_cuda_backend_times_with_events() -> None:
    b = make_backend("cuda")
    x = torch.randn(2048, 2048, device=b.device)
    with b.timer() as t:
        for _ in range(10):
            x = x @ x
            x = x / x.norm()
    assert t.seconds > 0
    with b.autocast():
        assert (x @ x).dtype == b.autocast_dtype
    assert type(default_backend("cuda")) is CUDABackend and default_backend("cuda:0").device == b.device
    with pytest.raises(BackendUnavailableError, match="device index"):
        CUDABackend(index=torch.cuda.device_count())
