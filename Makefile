# The front door. `make demo` and `make test` each run whatever setup they still need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONPATH := $(CURDIR)

.PHONY: setup up down status demo test test-unit bench lint lint-cycles dist dist-env cluster-up cluster-down

# The venv is rebuilt only when requirements.txt changes; the JVM parts are fetched only
# when their cache stamps are missing, so a warm `make setup` touches no registry.
DISTRIBUTIONS := message_model connectors bridge

$(VENV)/.installed: requirements.txt $(foreach d,$(DISTRIBUTIONS),$(d)/pyproject.toml)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Python 3.10+ is needed as $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet pip wheel setuptools
	$(PY) -m pip install --progress-bar off -r requirements.txt
	# The project's own distributions, editable: what users install as wheels (make dist).
	$(PY) -m pip install --progress-bar off $(foreach d,$(DISTRIBUTIONS),-e ./$(d))
	@$(PY) -c 'import proton, sys; sys.exit(0 if proton.SSL.present() else "python-qpid-proton was built without TLS: install OpenSSL headers and pkg-config (apt-get install libssl-dev pkg-config), then rm -rf $(VENV) and run make setup again")'
	touch $@

setup: $(VENV)/.installed
	@$(PY) -m services fetch

up: setup
	$(PY) -m services up

down:
	@if [ -x $(PY) ]; then $(PY) -m services down; fi

status:
	@$(PY) -m services status

demo: setup
	$(PY) -m demo $(if $(DURATION),--duration $(DURATION))

test: setup lint-cycles
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

bench: setup
	$(PY) -m bench --json $(or $(BENCH_JSON),.run/bench.json) $(BENCH_ARGS)

lint: setup lint-cycles
	$(PY) -m ruff check .

# Fails on an import cycle inside an installed package, or the connector and the bridge importing each other (.importlinter).
lint-cycles: setup
	$(VENV)/bin/lint-imports --config .importlinter --no-cache

dist: setup
	$(PY) -m deploy.package --out-dir dist

# The executors' environment for a cluster (spark-submit --archives dist/env.tar.gz#environment).
dist-env: dist
	$(PY) -m deploy.executor_env --wheels dist

cluster-up: setup
	$(PY) -m deploy.standalone start

cluster-down:
	@if [ -x $(PY) ]; then $(PY) -m deploy.standalone stop; fi
