#!/usr/bin/env bash
# The GPU checks of a release, in one go: the whole test suite (CUDA tests included) and the policy
# throughput benchmark on CPU and CUDA. Writes logs to $OUT (or ./gpu-checks).
# Needs torch with CUDA, pluggy, hypothesis, pytest, scipy; MABWiser optional.
set -uo pipefail
out="${OUT:-gpu-checks}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider -rs tests 2>&1 | tee "$out/pytest-all.txt" | tail -5
python3 benchmarks/policy_throughput.py --batches 1 256 4096 65536 --seconds 0.3 --json "$out/throughput.json" \
    2>&1 | tee "$out/throughput.txt"
python3 benchmarks/policy_throughput.py --batches 1 256 4096 65536 --seconds 0.3 --devices cuda --no-mabwiser \
    --no-value-checks --json "$out/throughput-nochecks.json" 2>&1 | tee "$out/throughput-nochecks.txt" | tail -25
# the dynamic-execution benchmark on the GPU (issue 6: CUDA figures with the card's name)
python3 benchmarks/dynamic_execution.py --device cuda --dtype bfloat16 --batch 64 --seq 256 --width 1024 --layers 12 \
    --heads 16 --json "$out/dynamic-bf16.json" 2>&1 | tee "$out/dynamic-bf16.txt" | tail -25
python3 benchmarks/dynamic_execution.py --device cuda --dtype float16 --batch 64 --seq 256 --width 1024 --layers 12 \
    --heads 16 --kinds depth heads --json "$out/dynamic-fp16.json" 2>&1 | tee "$out/dynamic-fp16.txt" | tail -15
# the CUDA tests alone, verbose, for the record
python3 -m pytest -q -p no:cacheprovider -rs -m cuda tests 2>&1 | tee "$out/pytest-cuda.txt" | tail -5
