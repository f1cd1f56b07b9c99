# Two entry points do all setup on a fresh machine (see README.md):
#   make book   - create/reuse .venv, execute every chapter (ci profile), build _build/html
#   make test   - create/reuse .venv, run the test suite
# Extras: make chapter NAME=dsf PROFILE=paper, make clean.
VENV    ?= .venv
PYTHON  ?= python3
PROFILE ?= ci
# torch is installed first, only where none is present; override for another build, e.g.
#   make book TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
TORCH_SPEC ?= torch==2.13.0
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.dsflib-installed

.PHONY: book test chapter list clean env

env: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH_SPEC)
	$(PY) -m pip install -e ".[kernels,book,test]"
	@touch $(STAMP)

book: $(STAMP)
	$(PY) -m dsflib.chapters build --profile $(PROFILE)

test: $(STAMP)
	TRITON_INTERPRET=1 $(PY) -m pytest

chapter: $(STAMP)
	@test -n "$(NAME)" || (echo "usage: make chapter NAME=<chapter> [PROFILE=ci|paper]"; exit 2)
	$(PY) -m dsflib.chapters execute $(NAME) --profile $(PROFILE) --force

list: $(STAMP)
	$(PY) -m dsflib.chapters list

clean:
	rm -rf _build .pytest_cache
