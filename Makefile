# Everything a fresh machine needs: `make demo` and `make test` create the
# virtualenv and install the project themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SCALE ?= small
PYTEST_ARGS ?=

.PHONY: venv test lint protos demo bench clean compat

# The independent SOPS implementation (npm) the sealed-secret compatibility tests run; the age CLI
# comes from Debian (.ci/run installs it).
tests/compat/node_modules/.package-lock.json: tests/compat/package-lock.json
	npm ci --prefix tests/compat --no-audit --no-fund --silent

compat: tests/compat/node_modules/.package-lock.json

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check hub spoke protos kubesim tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects nothing; that is a failure here, not a pass.
test: lint compat
	$(VENV)/bin/pytest -q -p no:cacheprovider $(PYTEST_ARGS)

protos: venv
	$(PY) -m grpc_tools.protoc -I . --python_out=. --pyi_out=. --grpc_python_out=. protos/convoy/v1/convoy.proto

demo: venv
	$(VENV)/bin/convoy sandbox up $(DEMO_ARGS)

bench: venv
	$(PY) -m bench --scale $(SCALE)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
