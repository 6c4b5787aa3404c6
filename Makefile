# Everything a fresh machine needs: `make demo` and `make test` create the
# virtualenv and install the project themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
# What the demo's (non-editable) install is built from: a change to any of it reinstalls.
RUNTIME_SOURCES := $(shell find hub spoke protos kubesim fleet-config -type f -not -name '*.pyc' 2>/dev/null)
SCALE ?= small
PYTEST_ARGS ?=

.PHONY: venv test lint protos demo bench clean

# The distribution was called `convoy` before it became `convoy-fleet`: drop the old name's
# metadata so its entry points do not linger next to the new ones.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	@$(PY) -m pip uninstall -q -y convoy 2>/dev/null || true
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# The demo needs only the runtime: the `all` extra, installed as a user installs it (not editable,
# no dev toolchain). A venv that `make test` made (editable, every extra) serves as it is.
$(RUNTIME_STAMP): pyproject.toml $(RUNTIME_SOURCES)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if [ -e $(STAMP) ]; then $(MAKE) --no-print-directory venv; else \
	  $(PY) -m pip install -q --upgrade pip && $(PY) -m pip install -q '.[all]'; fi
	@touch $(RUNTIME_STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check hub spoke protos kubesim tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects nothing; that is a failure here, not a pass.
test: lint
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

protos: venv
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. protos/convoy/v1/convoy.proto

demo: $(RUNTIME_STAMP)
	$(VENV)/bin/convoy sandbox up $(DEMO_ARGS)

bench: venv
	$(PY) -m bench --scale $(SCALE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
