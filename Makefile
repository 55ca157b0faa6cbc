# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.vcn-installed

.PHONY: setup demo test bench clean

$(STAMP): pyproject.toml scripts/setup_env.sh scripts/check_env.py
	VENV=$(VENV) bash scripts/setup_env.sh
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(PY) -m vcn_plugin.cli.demo

test: $(STAMP)
	$(PY) -m pytest -q tests

bench: $(STAMP)
	$(PY) benchmarks/stage1.py

clean:
	rm -rf $(VENV) .pytest_cache
