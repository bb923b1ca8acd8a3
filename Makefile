# Two commands after cloning: `make run` (execute every lesson, write build/results.md) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# nbval compares only cells tagged nbval-check-output (lax mode); each cell gets at most this many seconds.
CELL_TIMEOUT ?= 1200
# make test runs its files on this many pytest-xdist workers; --dist loadscope keeps each notebook whole on one
# worker (nbval runs its cells in order in one kernel) and tests/conftest.py starts the longest lessons first
# (--no-loadscope-reorder: xdist would otherwise re-sort the files by their number of tests, which put the unit
# tests first and the two longest lessons, 04 and 10, last).
# Lessons can run in any order and at the same time: every artefact is built on demand and written atomically.
# Each worker's kernels get one BLAS/OpenMP thread (THREADS), so two workers fill two cores: with torch's
# default of one thread per core in each, the spinning OpenMP threads of the two kernels stall each other and a
# lesson runs up to 8x slower (measured: 02's LM profiles 158 s alone, over 1,200 s beside 09). The checked
# outputs hold on one thread (../shared/tools/portability-check runs that variant).
WORKERS ?= 2
THREADS ?= 1
PARALLEL := -n $(WORKERS) --dist loadscope --no-loadscope-reorder
SITE_DIR ?= build/site
THREAD_ENV := OMP_NUM_THREADS=$(THREADS) MKL_NUM_THREADS=$(THREADS) OPENBLAS_NUM_THREADS=$(THREADS)

.PHONY: venv katex browser run test unit nbtest lab serve bench site clean lock

venv: $(STAMP)

# KaTeX (npm, versions and hashes locked in tests/katex/package-lock.json): tests/test_prose_verdicts.py checks with it
# that every formula of the lessons and the README renders. Needs Node.js.
KATEX := tests/katex/node_modules/katex/package.json
katex: $(KATEX)

$(KATEX): tests/katex/package.json tests/katex/package-lock.json
	@command -v npm >/dev/null || { echo "make test needs Node.js and npm (apt-get install nodejs npm) to check the formulas"; exit 1; }
	cd tests/katex && npm ci --silent --no-audit --no-fund
	touch $(KATEX)

# pip byte-compiles what it installs on one core; compileall does it on every core (a fresh venv in ~90 s, not
# ~120 s). Its exit status is ignored because a few packages ship templates and Python-2 examples that do not
# compile (pip skips those the same way); a module that fails to compile still fails loudly when imported.
$(STAMP): pyproject.toml constraints.txt requirements-nodeps.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"recsuite needs Python 3.11, $(PYTHON) is {sys.version.split()[0]}; run make PYTHON=python3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet --no-compile -c constraints.txt -e ".[course,dev,site]"
	$(PY) -m pip install --quiet --no-compile --no-deps -r requirements-nodeps.txt
	$(PY) -m compileall -q -j 0 $$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))') >/dev/null 2>&1 || true
	touch $(STAMP)

run: venv
	$(PY) -m recsuite.course.runner

# The browser test (tests/test_site.py) opens every page of the site in Debian's chromium through chromium-driver:
# installed here when missing and this is root with apt, otherwise make stops and names the command. Never skipped.
browser:
	@{ command -v chromium || command -v chromium-browser; } >/dev/null && command -v chromedriver >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "make test needs Chromium and its driver for the browser test: sudo apt-get install -y chromium chromium-driver"\
	    "(Debian; Ubuntu: chromium-browser chromium-chromedriver)"; exit 1; fi; }

test: venv katex site browser
	set -o pipefail; $(THREAD_ENV) TQDM_DISABLE=1 HF_HUB_OFFLINE=1 RECSUITE_SITE=$(SITE_DIR) $(PY) -m pytest tests notebooks $(PARALLEL) \
	  --nbval-lax --nbval-current-env --nbval-cell-timeout=$(CELL_TIMEOUT) \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

unit: venv katex site browser
	TQDM_DISABLE=1 HF_HUB_OFFLINE=1 RECSUITE_SITE=$(SITE_DIR) $(PY) -m pytest tests -p no:cacheprovider

nbtest: venv katex
	$(THREAD_ENV) TQDM_DISABLE=1 HF_HUB_OFFLINE=1 $(PY) -m pytest notebooks $(PARALLEL) --nbval-lax --nbval-current-env \
	  --nbval-cell-timeout=$(CELL_TIMEOUT) --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider

lab: venv
	$(VENV)/bin/jupyter lab notebooks

# The fused recommender over HTTP on 127.0.0.1:$(PORT) (recsuite.serving.service; notebook 11); needs the artefacts of make run.
PORT ?= 8000
serve: venv
	$(PY) -m recsuite.course.serve --host 127.0.0.1 --port $(PORT)

# Every benchmark, each printing its ratio against a named peer measured in the same run; run after `make run` (the
# LM benchmarks read its cached artefacts). Stops at the first that fails; prints each one's seconds.
bench: venv
	for b in benchmarks/bench_*.py; do echo "== $$b"; start=$$(date +%s); $(PY) $$b || exit 1; \
	  echo "== $$b: $$(( $$(date +%s) - start )) s"; done

# The course as a website in build/site (docs/conf.py): README as the landing page, every lesson from its committed,
# executed notebook (nothing is executed), the leaderboard read from the notebooks' metadata and the API reference
# from the docstrings. Every warning fails it (-W; --keep-going reports them all first); a second run rebuilds only
# what changed. KaTeX's stylesheet and fonts come from tests/katex (make katex), so the site loads nothing from outside.
# A failed build forgets its saved state, or the next run would skip the pages that warned and pass.
site: venv katex
	$(VENV)/bin/sphinx-build -b html -W --keep-going -q -c docs -d build/site-doctrees . $(SITE_DIR) \
	  || { rm -rf build/site-doctrees; exit 1; }
	@echo "Built $(SITE_DIR); open it with: $(PY) -m http.server -d $(SITE_DIR) 8000, then http://127.0.0.1:8000"

# Re-lock the transitive versions after changing a pin in pyproject.toml (a local "+cpu" build tag is dropped,
# so the lock also installs from PyPI elsewhere).
lock: venv
	$(PY) -m pip freeze --exclude-editable | grep -v '^recsuite' | sed -E 's/^(torch==[^+]+)\+cpu$$/\1/' > constraints.txt

clean:
	rm -rf build $(VENV) tests/katex/node_modules
