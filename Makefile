# Two commands do all the set-up on a fresh clone:
#   make demo   creates .venv, installs what is missing, runs the main job
#   make test   the same, then lint (ruff, import-linter's layer contracts), the test suite and a strict build of the docs site (what CI runs: .ci/run)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch lies on this project's machines; elsewhere pyproject's torch>=2.4 applies.
TORCH_PIN ?= torch==2.13.0

.PHONY: demo test test-timm lint docs docs-serve bench bench-docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# One stamp per set of extras, remade when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[$*]"
	@touch $@

demo: $(VENV)/.installed-dev
	$(BIN)/banditformer demo

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q
	$(MAKE) docs

# timm's adapter tests, in a second venv: timm imports torchvision, which must be built for its
# torch (PyPI's torchvision fails beside the CPU-only torch 2.13.0 of .venv), so this venv takes a
# matching pair, about 5.5 GB (a CUDA build; it runs on the CPU). CI runs it after `make test`.
TIMM_VENV  ?= .venv-timm
TIMM_TORCH ?= torch==2.14.1 torchvision==0.29.1

$(TIMM_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(TIMM_VENV)
	$(TIMM_VENV)/bin/python -m pip install -q $(TIMM_TORCH)
	$(TIMM_VENV)/bin/python -m pip install -q -e ".[timm,hf]" pytest hypothesis
	@touch $@

test-timm: $(TIMM_VENV)/.installed
	$(TIMM_VENV)/bin/python -c "import timm, torchvision; print('timm', timm.__version__, 'torchvision', torchvision.__version__)"
	$(TIMM_VENV)/bin/python -m pytest -q tests/adapters

# The documentation site (mkdocs, material theme, mkdocstrings), built strictly into build/site,
# then checked to load nothing from another host (scripts, styles, the theme's CDN fallbacks).
docs: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet
	$(BIN)/python .ci/check_docs_offline.py build/site

docs-serve: $(VENV)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# Regenerate the harness's figures and example reports shown in docs/benchmarks.md (about 20 min).
bench-docs: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/docs_figures.py

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/policy_throughput.py

clean:
	rm -rf $(VENV) $(TIMM_VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis
