# Dispa: `make demo` and `make test` work on a fresh machine (they install what they need).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SYSTEM_STAMP := .system-packages.installed
SYSTEM_PACKAGES := curl nginx-light haproxy wrk etcd-server etcd-client dnsmasq pebble systemd nghttp2-client nghttp2-server openssl iproute2 nftables

.PHONY: setup system-packages demo test test-slow lint format bench bench-cluster drill clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -d $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

# System packages the tests and benchmarks drive for real (installed with apt-get, as root).
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: setup
	$(VENV)/bin/dispa demo

test: setup system-packages
	$(VENV)/bin/ruff check dispa tests bench chaos
	$(PY) -m pytest -n 2 --dist loadfile --cov=dispa --cov-report=term:skip-covered --cov-fail-under=85 -q

test-slow: setup system-packages
	$(PY) -m pytest -m slow -q

lint: setup
	$(VENV)/bin/ruff check dispa tests bench chaos
	$(VENV)/bin/ruff format --check dispa tests bench chaos

format: setup
	$(VENV)/bin/ruff format dispa tests bench chaos
	$(VENV)/bin/ruff check --fix dispa tests bench chaos

bench: setup system-packages
	$(PY) bench/run.py $(ARGS)

bench-cluster: setup system-packages
	$(PY) bench/cluster.py $(ARGS)

# Every chaos drill, longer than in `make test`, one after another, then a summary table
# (reports in drill-reports/). Needs root for the network namespaces. DURATION=60s to change.
DURATION ?= 30s
drill: setup system-packages
	$(VENV)/bin/dispa drill run all --duration $(DURATION) --report-dir drill-reports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .coverage *.egg-info
