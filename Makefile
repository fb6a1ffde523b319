# The front door. `make demo` and `make test` each run whatever setup they still need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export SPARK_LOCAL_IP ?= 127.0.0.1
export PYTHONPATH := $(CURDIR)

.PHONY: system-packages proton-check lane-check setup up down status demo test test-brokers test-unit bench lint lint-cycles dist dist-env cluster-up cluster-down cluster-test cluster-clean

# The venv is rebuilt only when requirements.txt changes; the JVM parts are fetched only
# when their cache stamps are missing, so a warm `make setup` touches no registry.
DISTRIBUTIONS := message_model connectors bridge

# The native lane's C sources too: an editable install compiles them only when installed.
LANE_SOURCES := $(wildcard bridge/src/amqp_kafka_bridge/*.c bridge/src/amqp_kafka_bridge/*.h)

$(VENV)/.installed: requirements.txt $(foreach d,$(DISTRIBUTIONS),$(d)/pyproject.toml) $(LANE_SOURCES)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Python 3.10+ is needed as $(PYTHON)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(MAKE) --no-print-directory system-packages
	$(PY) -m pip install --upgrade --quiet pip wheel setuptools
	$(PY) -m pip install --progress-bar off -r requirements.txt
	# The project's own distributions, editable: what users install as wheels (make dist).
	$(PY) -m pip install --progress-bar off $(foreach d,$(DISTRIBUTIONS),-e ./$(d))
	@$(MAKE) --no-print-directory proton-check
	touch $@

# python-qpid-proton compiles TLS and Cyrus SASL (PLAIN, SCRAM, EXTERNAL for the bridge)
# only when their headers are present at build time. On Debian/Ubuntu, as root, install
# what is missing; elsewhere say what to install.
SYSTEM_PACKAGES := build-essential pkg-config libssl-dev libsasl2-dev libsasl2-2 libsasl2-modules sasl2-bin
system-packages:
	@missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done 2>/dev/null); \
	if ! command -v dpkg >/dev/null; then \
	  echo "not Debian: make sure OpenSSL and Cyrus SASL headers, pkg-config and saslpasswd2 are installed"; \
	elif [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing $$missing"; \
	    apt-get install -y --no-install-recommends $$missing >/dev/null || \
	      { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends $$missing >/dev/null; } || \
	      { echo "could not install: $$missing"; exit 1; }; \
	  else \
	    echo "missing system packages: sudo apt-get install $$missing"; exit 1; \
	  fi; \
	fi

# A proton wheel built before the headers were there (pip's wheel cache keeps it) lacks
# Cyrus: rebuild it from source, bypassing the cache, only when SASL.extended() is false.
PROTON_REQ := $(shell grep -E '^python-qpid-proton==' requirements.txt)
PROTON_OK := import proton, sys; sys.exit(0 if proton.SSL.present() and proton.SASL.extended() else 1)
proton-check:
	@$(PY) -c '$(PROTON_OK)' || { \
	  echo "python-qpid-proton lacks TLS or Cyrus SASL: rebuilding it from source"; \
	  $(PY) -m pip install --progress-bar off --force-reinstall --no-deps --no-binary python-qpid-proton --no-cache-dir '$(PROTON_REQ)'; }
	@$(PY) -c '$(PROTON_OK)' || { echo "python-qpid-proton was built without TLS or Cyrus SASL: install libssl-dev, libsasl2-dev, libsasl2-modules, sasl2-bin and pkg-config (Debian: apt-get install build-essential pkg-config libssl-dev libsasl2-dev libsasl2-modules sasl2-bin), then run make setup again"; exit 1; }

setup: $(VENV)/.installed
	@$(MAKE) --no-print-directory proton-check
	@$(MAKE) --no-print-directory lane-check
	@$(PY) -m services fetch

# The bridge's native lane is compiled when the bridge is installed (bridge/hatch_build.py); without
# a C compiler or Python's headers the bridge runs on its Python producer, slower: say so here.
LANE_OK := from amqp_kafka_bridge import producer_lane as p; import sys; sys.exit(0 if p.load() else 1)
lane-check:
	@$(PY) -c '$(LANE_OK)' 2>/dev/null || echo "warning: the bridge's native lane was not built (a C compiler and Python's headers are needed: Debian python3-dev); the bridge works without it, at about half the capacity, and its lane tests fail. Install them and run: $(PY) -m pip install -e ./bridge"

# BROKER=artemis|activemq|rabbitmq chooses the AMQP broker (artemis by default); `down` stops any.
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

# The broker matrix (tests/brokers) on the brokers other than Artemis; `make test` runs it on Artemis.
test-brokers: setup
	@for broker in activemq rabbitmq; do \
	  echo "== tests/brokers on $$broker"; \
	  BROKER=$$broker $(PY) -m pytest tests/brokers $(PYTEST_ARGS) || exit $$?; \
	done

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

# The story on a cluster of hosts (network namespaces: needs root): a clean run and one run per fault.
# Removes what a crashed earlier run left first; the scenarios' summary prints at the end.
cluster-test: setup cluster-clean
	CLUSTER_TEST=1 $(PY) -m pytest tests/cluster -p no:cacheprovider $(PYTEST_ARGS)

# Processes, namespaces and the bridge a crashed `make cluster-test` left behind.
cluster-clean:
	@if [ -x $(PY) ]; then $(PY) -m cluster clean; fi
