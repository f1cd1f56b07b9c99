# Two entry points do all setup on a fresh machine (see README.md):
#   make book   - create/reuse .venv and node_modules (MathJax, served offline), execute every chapter
#                 (ci profile), build _build/html
#   make test   - create/reuse .venv, run the test suite
#   make test-numerics - the numerically sensitive tests again under two other MKL code paths and
#                 thread counts (CI runs it after make test)
# Extras: make chapter NAME=dsf PROFILE=paper, make notebook NAME=dsf (a paired book/dsf.ipynb for
# Jupyter), make data NAME=lra (download a dataset into the data root), make browser-test (after
# make book; needs Debian's chromium and chromium-driver), make clean; on a GPU machine make gpu-check and
# make gpu-results PART=kernels|mqar|lra|wikitext|train.
VENV    ?= .venv
PYTHON  ?= python3
PROFILE ?= ci
# torch is installed first, only where none is present; override for another build, e.g.
#   make book TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.dsflib-installed
# MathJax from the npm registry (package-lock.json), copied into the HTML by the book build
MATHJAX := node_modules/mathjax/es5/tex-mml-chtml.js

.PHONY: gpu-check gpu-results book test test-numerics chapter list clean env browser-test data notebook

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[kernels,book,test,cluster]"
	@touch $(STAMP)

$(MATHJAX): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $(MATHJAX)

book: $(STAMP) $(MATHJAX)
	$(PY) -m dsflib.chapters build --profile $(PROFILE)

# Opens every page of the built book in headless Chromium (see browser_tests/); screenshots land
# in _build/screenshots/.
browser-test: $(STAMP)
	$(PY) -m pytest browser_tests -p no:cacheprovider

# MathJax too: the reproducibility chapter, executed by the tests, reports the version the book ships
test: $(STAMP) $(MATHJAX)
	TRITON_INTERPRET=1 $(PY) -m pytest

# The numerically sensitive tests - the DSF and its forms, the scans, every model, the equivalences, the
# properties - once more on two other MKL code paths with 1 and 2 torch threads (make test runs them
# with the machine's defaults): a comparison that holds bit for bit on one CPU only fails here. One
# pytest run per pass, 12-15 s each on 2 cores; explicit files, so a pass always collects tests.
# OMP_WAIT_POLICY=PASSIVE: idle threads sleep instead of spinning (on busy cores the spinning made the
# 2-thread pass 10x slower); it changes no result.
MODEL_TESTS    := $(foreach m,softmax_attention linear_attention normalized_attention lti_ssm s6 ssd qlstm \
                    rglru retnet gla mlstm,tests/test_$(m).py)
NUMERICS_TESTS := tests/test_dsf.py tests/test_scan.py tests/test_equivalences.py tests/test_properties.py \
                  tests/test_verify.py tests/test_mixer_dtypes.py tests/test_network.py $(MODEL_TESTS)

test-numerics: $(STAMP)
	MKL_CBWR=COMPATIBLE OMP_NUM_THREADS=1 TRITON_INTERPRET=1 $(PY) -m pytest -q $(NUMERICS_TESTS)
	MKL_CBWR=AVX2 OMP_NUM_THREADS=2 OMP_WAIT_POLICY=PASSIVE TRITON_INTERPRET=1 $(PY) -m pytest -q $(NUMERICS_TESTS)

chapter: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make chapter NAME=<chapter> [PROFILE=ci|paper]"; exit 2)
	$(PY) -m dsflib.chapters execute $(NAME) --profile $(PROFILE) --force

# A Jupyter notebook of a chapter, paired with its jupytext source (book/<name>.py stays the source of
# truth; with jupytext installed, Jupyter saves both, and `jupytext --sync book/<name>.ipynb` syncs them).
notebook: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make notebook NAME=<chapter>"; exit 2)
	@test -f book/$(NAME).py || (echo "no chapter book/$(NAME).py (make list shows them)"; exit 2)
	$(VENV)/bin/jupytext --to ipynb --set-kernel python3 \
	  --update-metadata '{"jupytext": {"formats": "ipynb,py:percent"}}' book/$(NAME).py
	@echo "wrote book/$(NAME).ipynb (paired with book/$(NAME).py)"

# Downloads a real dataset into the data root (<repo>/data, $$DSF_DATA_DIR or DATA_DIR=...):
#   make data NAME=wikitext-103|imdb|cifar10|lra [DATA_DIR=/big/disk]
data: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make data NAME=<dataset> [DATA_DIR=<dir>]  (datasets: $$($(PY) -c 'from dsflib.data.download import DATASETS; print(*sorted(DATASETS))'))"; exit 2)
	$(PY) -m dsflib.data download $(NAME) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

list: $(STAMP)
	$(PY) -m dsflib.chapters list

# On a machine with a CUDA GPU: a ~2-minute sanity check (kernels vs fp64, 50 training steps of every
# MQAR model, non-finite checks) and the stored GPU results the book shows (tracked in book/results/).
gpu-check: $(STAMP)
	$(PY) -m dsflib.gpu_check --out book/results/gpu_check.csv

gpu-results: $(STAMP)
	@case "$(PART)" in \
	  kernels) $(PY) -m dsflib.kernels.bench --dtype bf16 --out book/results/kernels_bench.csv ;; \
	  mqar) $(PY) -m dsflib.experiments.mqar --profile gpu ;; \
	  lra) $(PY) -m dsflib.experiments.lra --profile gpu ;; \
	  wikitext) $(PY) -m dsflib.experiments.wikitext --profile gpu ;; \
	  train) $(PY) -m dsflib.train_bench --shape gpu --out book/results/train_bench-gpu.csv && \
	         $(PY) -m dsflib.train_bench --shape gpu --amp bf16 --out book/results/train_bench-gpu.csv ;; \
	  *) echo "usage: make gpu-results PART=kernels|mqar|lra|wikitext|train (on a CUDA machine)"; exit 2 ;; \
	esac

clean:
	rm -rf _build .pytest_cache node_modules
