"""The Triton gather-GEMM kernels: checked in Triton's CPU interpreter where Triton is installed,
and on the GPU where there is one (both skipped otherwise). bfloat16 is checked on the GPU only:
the interpreter's bf16 `tl.dot` is broken (Triton 3.9), whatever the kernel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from banditformer import BackendUnavailableError, InputValidationError
from banditformer.backends import kernels
from banditformer.backends.cuda import resolve_routed_kernel
from banditformer.core.backend import AttentionWeights

HAS_TRITON = importlib.util.find_spec("triton") is not None
REPO = Path(__file__).resolve().parents[2]

CHECK = textwrap.dedent(
    """
    import torch
    from banditformer.backends.triton_kernels import triton_routed_attention
    from banditformer.backends import kernels
    from banditformer.core.backend import AttentionWeights

    g = torch.Generator().manual_seed(0)
    for n, t, d, h, bias, dtype in [
        (3, 5, 16, 2, True, torch.float32), (4, 70, 128, 4, False, torch.float32),
        (2, 9, 64, 8, True, torch.float32), (3, 20, 64, 4, True, torch.float16),
    ]:
        x = torch.randn(n, t, d, generator=g).requires_grad_()
        w_in = (torch.randn(3 * d, d, generator=g) * 0.1).requires_grad_()
        b_in = torch.randn(3 * d, generator=g).requires_grad_() if bias else None
        w_out = (torch.randn(d, d, generator=g) * 0.1).requires_grad_()
        b_out = torch.randn(d, generator=g).requires_grad_() if bias else None
        heads = torch.rand(n, h, generator=g) < 0.5
        heads[:, 0] |= ~heads.any(1)
        with torch.autocast("cpu", dtype=dtype, enabled=dtype != torch.float32):
            ref = kernels.masked_attention(x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h))
            got = triton_routed_attention(x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h))
        tol = 1e-4 if dtype == torch.float32 else 2e-2
        torch.testing.assert_close(got.float(), ref.float(), rtol=tol, atol=tol)
        if dtype == torch.float32:
            params = [p for p in (x, w_in, b_in, w_out, b_out) if p is not None]
            upstream = torch.randn_like(ref)
            for a, b in zip(torch.autograd.grad(ref, params, upstream), torch.autograd.grad(got, params, upstream)):
                torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    print("triton kernels match")
    """
)


def test_kernel_choice_falls_back_to_torch_without_triton() -> None:
    assert resolve_routed_kernel("auto", has_triton=False) == "torch"
    assert resolve_routed_kernel("auto", has_triton=True) == "triton"
    assert resolve_routed_kernel("torch", has_triton=True) == "torch"
    with pytest.raises(BackendUnavailableError, match="Triton"):
        resolve_routed_kernel("triton", has_triton=False)
    with pytest.raises(InputValidationError, match="kernel"):
        resolve_routed_kernel("cutlass", has_triton=True)


@pytest.mark.skipif(HAS_TRITON, reason="checks the error where Triton is missing")
def test_the_triton_kernels_without_triton_are_a_clear_error() -> None:
    from banditformer.backends.triton_kernels import triton_routed_attention

    x, w = torch.zeros(1, 2, 4), AttentionWeights(torch.zeros(12, 4), None, torch.zeros(4, 4), None, 2)
    with pytest.raises(BackendUnavailableError, match="expected an importable `triton` package"):
        triton_routed_attention(x, torch.ones(1, 2, dtype=torch.bool), w)


@pytest.mark.skipif(not HAS_TRITON, reason="needs the triton package (its CPU interpreter runs the kernels)")
@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs the kernels for real (the test below)")
def test_triton_kernels_match_the_torch_kernel_in_the_interpreter() -> None:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": path}
    proc = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "triton kernels match" in proc.stdout


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_TRITON, reason="needs the triton package")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_kernels_on_the_gpu(dtype: torch.dtype) -> None:
    from banditformer.backends.triton_kernels import triton_routed_attention

    g = torch.Generator(device="cuda").manual_seed(0)
    n, t, d, h = 8, 130, 256, 8
    x = torch.randn(n, t, d, generator=g, device="cuda")
    w_in, b_in = torch.randn(3 * d, d, generator=g, device="cuda") * 0.05, torch.randn(3 * d, device="cuda")
    w_out, b_out = torch.randn(d, d, generator=g, device="cuda") * 0.05, torch.randn(d, device="cuda")
    heads = torch.rand(n, h, generator=g, device="cuda") < 0.5
    heads[:, 0] = True
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        ref = kernels.masked_attention(x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h))
        got = triton_routed_attention(x, heads, AttentionWeights(w_in, b_in, w_out, b_out, h))
    tol = 1e-4 if dtype == torch.float32 else 3e-2
    torch.testing.assert_close(got.float(), ref.float(), rtol=tol, atol=tol)
