# Two commands do all set-up on a fresh Debian machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup data demo test test-slow clean

setup: $(VENV)/.installed data

$(VENV)/.installed: pyproject.toml
	scripts/check-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
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

clean:
	rm -rf $(VENV) runs .pytest_cache
