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

demo: setup
	$(BIN)/nascomp train vit_tiny_patch16_224 --img-size 28 --patch-size 4 --in-chans 1 --embed-dim 96 --depth 6 --num-heads 3 \
		--data fashion-mnist --epochs 5 --lr 2e-3 --out runs/demo-train

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

clean:
	rm -rf $(VENV) runs .pytest_cache
