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
	$(PY) -m pip install -q -e '.[dev,plot,docs]'
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

# The site goes to build/site: MkDocs refuses a site_dir inside docs_dir.
# The stamp installs the docs extra into a .venv made before it joined $(STAMP)'s install.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m mkdocs build --strict
	@echo "site: build/site/index.html (or: $(VENV)/bin/mkdocs serve)"

clean:
	rm -rf .numba_cache .pytest_cache .hypothesis bench/results bench/html docs/site
