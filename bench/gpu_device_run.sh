#!/usr/bin/env bash
# One device session on a GPU machine (its own python3: numba, numba-cuda, PyTorch; no install step).
#   bash bench/gpu_device_run.sh OUTDIR [PHASE1_S] [CHECK_BUDGET_S]
# Environment: TESTS (comma-separated test paths, default tests/cuda), SKIP_DOCS=1 (not the docs' GPU
# blocks), CPU_TESTS=1 (on an AVX-512 host, the CPU matmul/conv/elementary tests on that path, which no
# AVX2 development machine can run), CPU_BENCH=1 (the CPU GEMM against NumPy on 1 thread), PY.
# Phase 1, side by side: the CPU kernel cache (python -m jitgrad.compile; the error table runs the CPU
# kernels), the CUDA tests on the device (pytest-xdist). Phase 2, alone on the machine: the host cost
# of launches and allocations (bench/gpu_overhead.py, with Numba's launch and allocator, then
# jitgrad's), then bench/gpu_check.py's errors, timings and end-to-end steps. Every phase is under `timeout` and writes into OUTDIR as it goes (8 files at most
# come back from the device tool: env.txt console.log cpu.log overhead-numba.txt overhead.txt summary.md
# results.jsonl tests.log).
set -u
OUT=${1:?usage: gpu_device_run.sh OUTDIR [PHASE1_S] [CHECK_BUDGET_S]}
P1=${2:-150}
BUDGET=${3:-240}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export JITGRAD_CACHE_DIR=${JITGRAD_CACHE_DIR:-/tmp/jitgrad-cache}
PY=${PY:-python3}
{
  date -u; nvidia-smi; nproc; grep -m1 "model name" /proc/cpuinfo
  echo "avx512f: $(grep -c -m1 avx512f /proc/cpuinfo)"
  $PY -m pip list 2>/dev/null | grep -iE "^(numba|numba-cuda|numpy|llvmlite|torch|pytest|pytest-xdist|hypothesis) "
  $PY -c 'from jitgrad.kernels.cpu import _isa; print("jitgrad CPU path:", _isa.describe())' 2>&1
} > "$OUT/env.txt" 2>&1

t0=$SECONDS
timeout "$P1" $PY -m jitgrad.compile --quiet --jobs 4 > "$OUT/cpu.log" 2>&1 &
if [ "${CPU_TESTS:-0}" = 1 ] && grep -q -m1 avx512f /proc/cpuinfo; then
  (sleep 1; timeout $((P1 - 5)) $PY -m pytest -q -p no:cacheprovider -n 4 tests/kernels/test_matmul.py \
     tests/kernels/test_conv.py tests/kernels/test_elementary.py tests/kernels/test_isa.py >> "$OUT/cpu.log" 2>&1) &
fi
timeout "$P1" $PY bench/gpu_check.py "$OUT" --only tests --tests "${TESTS:-tests/cuda}" ${SKIP_DOCS:+--skip-docs} \
  --workers 12 --tests-timeout $((P1 - 10)) > "$OUT/console.log" 2>&1
wait
echo "phase 1: $((SECONDS - t0)) s" >> "$OUT/console.log"

# The host costs with Numba's own launch and allocator, then with jitgrad's (the defaults).
JITGRAD_CUDA_POOL=0 JITGRAD_CUDA_FAST_LAUNCH=0 timeout 60 $PY bench/gpu_overhead.py > "$OUT/overhead-numba.txt" 2>&1
timeout 90 $PY bench/gpu_overhead.py > "$OUT/overhead.txt" 2>&1
if [ $? -eq 3 ]; then  # the fast launch computed a wrong result: the check runs without it
  export JITGRAD_CUDA_FAST_LAUNCH=0
  echo "fast launch OFF for the check (gpu_overhead.py found a wrong result)" >> "$OUT/console.log"
fi
timeout $((BUDGET + 60)) $PY bench/gpu_check.py "$OUT" --only errors,timings,e2e --budget-s "$BUDGET" >> "$OUT/console.log" 2>&1
echo "phase 2: $((SECONDS - t0)) s" >> "$OUT/console.log"

if [ "${CPU_BENCH:-0}" = 1 ]; then
  THREADS=1 REPS=5 timeout 60 $PY bench/matmul_side_by_side.py sq lenet keras-fc >> "$OUT/cpu.log" 2>&1
  echo "phase 3: $((SECONDS - t0)) s" >> "$OUT/console.log"
fi
