# jitgrad: every target creates .venv and installs the project on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Numba's on-disk cache lives in the checkout, so runs never share it by accident.
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
EPOCHS ?= 10
TRAIN_ARGS ?=

.PHONY: train test test-cpu test-cuda bench bench-compare bench-report docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,plot]'
	touch $(STAMP)

train: $(STAMP)
	$(PY) examples/mnist_cnn.py --epochs $(EPOCHS) $(TRAIN_ARGS)

test: test-cpu test-cuda

test-cpu: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/cuda -q

# The CUDA simulator must be switched on before numba is imported: its own process.
test-cuda: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest tests/cuda -q

bench: $(STAMP)
	cd bench && ../$(VENV)/bin/asv machine --yes && \
	  ../$(VENV)/bin/asv run --python=same --set-commit-hash=$$(git rev-parse HEAD) && \
	  ../$(VENV)/bin/asv publish
	@echo "dashboard: bench/html/index.html (or: cd bench && ../$(VENV)/bin/asv preview)"

BASE ?= HEAD~1
bench-compare: $(STAMP)
	cd bench && ../$(VENV)/bin/asv machine --yes && \
	  ../$(VENV)/bin/asv continuous --python=same $(BASE) HEAD

bench-report: $(STAMP)
	$(PY) bench/report.py

clean:
	rm -rf .numba_cache .pytest_cache .hypothesis bench/results bench/html docs/site
