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

.PHONY: train test test-cpu test-cuda bench bench-compare bench-report docs clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,plot,docs]'
	$(PY) -m jitgrad.compile
	touch $(STAMP)

train: $(STAMP)
	$(PY) examples/mnist_cnn.py --epochs $(EPOCHS) $(TRAIN_ARGS)

test: test-cpu test-cuda

test-cpu: $(STAMP)
	$(PY) -m pytest tests --ignore=tests/cuda -q

# The CUDA simulator must be switched on before numba is imported: its own process.
test-cuda: $(STAMP)
	NUMBA_ENABLE_CUDASIM=1 $(PY) -m pytest tests/cuda -q

# asv runs in this environment (--python=same): it never builds the project.
# ASV_ARGS passes options through, e.g. ASV_ARGS="--quick -b Conv2d".
ASV := ../$(VENV)/bin/asv
ASV_ARGS ?=
bench: $(STAMP)
	cd bench && $(ASV) machine --yes && \
	  $(ASV) run --python=same --set-commit-hash=$$(git rev-parse HEAD) $(ASV_ARGS) && \
	  $(ASV) publish
	@echo "dashboard: bench/html/index.html (or: cd bench && $(ASV) preview)"

# Each commit's jitgrad/ is exported to bench/.asv/trees/<sha> (a stable path,
# so Numba's cache is reused on a re-run) and put first on the benchmarks'
# path; the suite itself is the working tree's.
BASE ?= HEAD~1
FACTOR ?= 1.1
bench-compare: $(STAMP)
	set -e; cd bench && $(ASV) machine --yes; \
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
# The stamp installs the docs extra into a .venv made before it joined $(STAMP)'s install.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict
	@echo "site: build/site/index.html (or: $(VENV)/bin/mkdocs serve)"

clean:
	test ! -x $(PY) || $(PY) -m jitgrad.compile --clear
	rm -rf .numba_cache .pytest_cache .hypothesis bench/results bench/html build/site
