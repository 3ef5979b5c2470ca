# Two commands do all set-up on a fresh Debian machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup data demo test test-slow lint typecheck docs wheel-check clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	scripts/check-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,executorch,tensorboard,wandb,mlflow,docs]'
	touch $@

data:
	scripts/ensure-data.sh

# The main job: S3 search of the s3-vit space under a 4 GFLOPs budget, default preset, Fashion-MNIST.
demo: setup
	$(BIN)/nascomp search --space s3-vit --budget 4gflops

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

# Lint: the import layering (contracts in pyproject.toml: each package imports only the ones below it, no cycles),
# ruff's rules and its formatter's check ([tool.ruff] in pyproject.toml; `ruff format nascomp tests benchmarks` applies it).
lint: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check nascomp tests benchmarks
	$(BIN)/ruff format --check nascomp tests benchmarks

# Static types of nascomp/ ([tool.mypy] in pyproject.toml).
typecheck: setup
	$(BIN)/mypy

# The API reference site (mkdocs.yml, docs/) into site/; any warning (a docstring naming a missing argument...) fails it.
docs: setup
	$(BIN)/mkdocs build --strict

# Build the wheel, install it into a fresh venv, run the smoke search and a cost count outside the source tree.
wheel-check: setup
	PYTHON=$(PYTHON) scripts/check-wheel.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
