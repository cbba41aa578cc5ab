#!/usr/bin/env bash
# One device session on a GPU machine (its own python3: numba, numba-cuda, PyTorch; no install step).
#   bash bench/gpu_device_run.sh OUTDIR [PHASE1_S] [CHECK_BUDGET_S] [END_S]
# Environment: TESTS (comma-separated test paths, default tests/cuda), SKIP_DOCS=1 (not the docs' GPU
# blocks), CPU_TESTS=1 (on an AVX-512 host, the CPU matmul/conv/elementary tests on that path, which no
# AVX2 development machine can run), CPU_BENCH=1 (the CPU GEMM against NumPy on 1 thread), REPORT=1 (on
# an AVX-512 host, bench/report.py's doc block for that path on 2 threads, into OUTDIR/performance.md),
# PY.
# The GPU side and the CPU side run on separate physical cores (taskset): the GPU tests, host-cost
# bench and check on the first half, the CPU kernel cache (python -m jitgrad.compile), the CPU tests
# and the report on the second. Phase 1, side by side: the CPU cache, the CUDA tests on the device
# (pytest-xdist). Phase 2: the host cost of launches and allocations (bench/gpu_overhead.py, with
# Numba's launch and allocator, then jitgrad's), then bench/gpu_check.py's errors, timings and
# end-to-end steps. Every part is under `timeout`, ends by END_S seconds (default 560), and writes into
# OUTDIR as it goes.
set -u
OUT=${1:?usage: gpu_device_run.sh OUTDIR [PHASE1_S] [CHECK_BUDGET_S] [END_S]}
P1=${2:-150}
BUDGET=${3:-240}
END=${4:-560}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
export JITGRAD_CACHE_DIR=${JITGRAD_CACHE_DIR:-/tmp/jitgrad-cache}
PY=${PY:-python3}
left() { echo $((END - SECONDS)); }
AVX512=$(grep -c -m1 avx512f /proc/cpuinfo)

# Physical cores (sibling sets), first half for the GPU side, second half for the CPU side; the report
# takes the last cores of the CPU side (at least 3 logical CPUs), the CPU tests the rest.
read -r GPU_CPUS CPU_CPUS TEST_CPUS REPORT_CPUS < <($PY - <<'PYEOF'
import glob, os
def ids(text):
    out = []
    for part in text.strip().split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out
allowed = os.sched_getaffinity(0)
cores = sorted({tuple(c for c in ids(open(p).read()) if c in allowed)
                for p in glob.glob("/sys/devices/system/cpu/cpu[0-9]*/topology/thread_siblings_list")} - {()})
if len(cores) < 4:  # too few to split: everything shares
    cpus = ",".join(map(str, sorted(allowed)))
    print(cpus, cpus, cpus, cpus)
else:
    half = (len(cores) + 1) // 2
    gpu, cpu = cores[:half], cores[half:]
    report = []
    while sum(map(len, report)) < 3 and len(report) < len(cpu) - 1:
        report.insert(0, cpu[-1 - len(report)])
    tests = [c for c in cpu if c not in report]
    j = lambda cs: ",".join(str(c) for core in cs for c in core)
    print(j(gpu), j(cpu), j(tests), j(report))
PYEOF
)
NCPU_SIDE=$(echo "$CPU_CPUS" | tr , '\n' | wc -l)
NTEST=$(echo "$TEST_CPUS" | tr , '\n' | wc -l)
NGPU=$(echo "$GPU_CPUS" | tr , '\n' | wc -l)

{
  date -u; nvidia-smi; nproc; grep -m1 "model name" /proc/cpuinfo; lscpu 2>/dev/null | grep -E "^(Thread|Core|Socket|L[23])"
  echo "avx512f: $AVX512"
  echo "CPUs: GPU side $GPU_CPUS; CPU side $CPU_CPUS (tests $TEST_CPUS, report $REPORT_CPUS)"
  $PY -m pip list 2>/dev/null | grep -iE "^(numba|numba-cuda|numpy|llvmlite|torch|pytest|pytest-xdist|hypothesis) "
  $PY -c 'import numpy; print("numpy in use:", numpy.__version__, numpy.__file__)' 2>&1
  $PY -c 'from jitgrad.kernels.cpu import _isa; print("jitgrad CPU path:", _isa.describe())' 2>&1
} > "$OUT/env.txt" 2>&1

t0=$SECONDS
# The CPU side: the kernel cache first (the error table runs the CPU kernels), then tests and report.
(
  timeout "$P1" taskset -c "$CPU_CPUS" $PY -m jitgrad.compile --quiet --jobs "$NCPU_SIDE" > "$OUT/cpu.log" 2>&1
  echo "CPU cache: $((SECONDS - t0)) s" >> "$OUT/cpu.log"
  if [ "${CPU_TESTS:-0}" = 1 ] && [ "$AVX512" = 1 ]; then
    timeout $(($(left) - 20)) taskset -c "$TEST_CPUS" $PY -m pytest -q -p no:cacheprovider -n "$NTEST" \
      tests/kernels/test_matmul.py tests/kernels/test_conv.py tests/kernels/test_elementary.py \
      tests/kernels/test_isa.py >> "$OUT/cpu.log" 2>&1
    echo "CPU tests done: $((SECONDS - t0)) s" >> "$OUT/cpu.log"
  fi &
  if [ "${REPORT:-0}" = 1 ] && [ "$AVX512" = 1 ]; then
    cp docs/performance.md "$OUT/performance.md"
    timeout $(($(left) - 10)) taskset -c "$REPORT_CPUS" $PY bench/report.py --threads 2 \
      --doc "$OUT/performance.md" --json "$OUT/report.json" > "$OUT/report.log" 2>&1
    echo "report: exit $? at $((SECONDS - t0)) s" >> "$OUT/report.log"
  fi
  wait
) &
CPU_SIDE=$!

# The GPU side.
timeout "$P1" taskset -c "$GPU_CPUS" $PY bench/gpu_check.py "$OUT" --only tests --tests "${TESTS:-tests/cuda}" \
  ${SKIP_DOCS:+--skip-docs} --workers "$NGPU" --tests-timeout $((P1 - 10)) > "$OUT/console.log" 2>&1
echo "phase 1: $((SECONDS - t0)) s" >> "$OUT/console.log"

# The host costs with Numba's own launch and allocator, then with jitgrad's (the defaults).
JITGRAD_CUDA_POOL=0 JITGRAD_CUDA_FAST_LAUNCH=0 timeout 60 taskset -c "$GPU_CPUS" $PY bench/gpu_overhead.py \
  > "$OUT/overhead-numba.txt" 2>&1
timeout 90 taskset -c "$GPU_CPUS" $PY bench/gpu_overhead.py > "$OUT/overhead.txt" 2>&1
if [ $? -eq 3 ]; then  # the fast launch computed a wrong result: the check runs without it
  export JITGRAD_CUDA_FAST_LAUNCH=0
  echo "fast launch OFF for the check (gpu_overhead.py found a wrong result)" >> "$OUT/console.log"
fi
budget=$(( $(left) - 70 < BUDGET ? $(left) - 70 : BUDGET ))
timeout $((budget + 60)) taskset -c "$GPU_CPUS" $PY bench/gpu_check.py "$OUT" --only errors,timings,e2e \
  --budget-s "$budget" >> "$OUT/console.log" 2>&1
echo "phase 2: $((SECONDS - t0)) s" >> "$OUT/console.log"

if [ "${CPU_BENCH:-0}" = 1 ]; then
  THREADS=1 REPS=5 timeout 60 $PY bench/matmul_side_by_side.py sq lenet keras-fc >> "$OUT/cpu.log" 2>&1
  echo "phase 3: $((SECONDS - t0)) s" >> "$OUT/console.log"
fi
wait "$CPU_SIDE"
echo "all: $((SECONDS - t0)) s" >> "$OUT/console.log"
