# Two commands do all the set-up on a fresh clone:
#   make demo   creates .venv, installs what is missing, runs the main job
#   make test   the same, then lint and the test suite (what CI runs)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this project's machines; users elsewhere get torch from pyproject.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test lint bench venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

venv: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_PIN)"
	@$(BIN)/python -c "import banditformer, pytest, hypothesis, ruff" 2>/dev/null || \
		$(BIN)/python -m pip install -q -e ".[dev,bench]"

demo: venv
	$(BIN)/banditformer demo

lint: venv
	$(BIN)/ruff check .

test: venv lint
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python benchmarks/policy_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
