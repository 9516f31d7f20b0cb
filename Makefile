# AI Multi-Comms Engine. `make local` runs it on this machine, `make test` proves it.
SHELL := /bin/bash
.DEFAULT_GOAL := help

WORKSPACE ?= dev
TF_DIR := terraform
VENV := .venv
PY := $(VENV)/bin/python
CHECKOV_VENV := .venv-checkov
LOCAL_DIR := .local

# The Lambda runtime is python3.12: prefer it (directly or through pyenv), fall back with a warning.
PYTHON_BOOT := $(shell \
  if command -v python3.12 >/dev/null 2>&1 && python3.12 -c '' >/dev/null 2>&1; then command -v python3.12; \
  elif command -v pyenv >/dev/null 2>&1 && v=$$(pyenv versions --bare 2>/dev/null | grep '^3\.12' | tail -n1) && [ -n "$$v" ]; then PYENV_VERSION=$$v pyenv which python3.12; \
  else command -v python3; fi)

# Providers come from a filesystem mirror when the machine ships one, else from the public registry.
TF_MIRROR := $(shell find / -maxdepth 2 -type d -name tf-plugins 2>/dev/null | head -n1)
export TF_CLI_CONFIG_FILE := $(abspath $(LOCAL_DIR)/terraform.rc)
export TF_IN_AUTOMATION := 1

.PHONY: help setup build test test-all test-unit test-e2e lint local bench plan apply destroy clean tf-config

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

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

tf-config: ## write the Terraform CLI config (provider mirror when present)
	@mkdir -p $(LOCAL_DIR)
	@if [ -n "$(TF_MIRROR)" ]; then \
	  printf 'provider_installation {\n  filesystem_mirror {\n    path    = "%s"\n    include = ["registry.terraform.io/*/*"]\n  }\n}\n' "$(TF_MIRROR)" > $(LOCAL_DIR)/terraform.rc; \
	else printf '# public registry\n' > $(LOCAL_DIR)/terraform.rc; fi
	@terraform -chdir=$(TF_DIR) init -input=false >/dev/null || terraform -chdir=$(TF_DIR) init -input=false

setup: $(VENV)/.installed $(CHECKOV_VENV)/.installed tf-config ## venvs, pinned packages, Terraform providers

build: $(VENV)/.installed ## zip the layer and the functions into build/
	$(PY) scripts/build.py

test: setup build lint test-unit test-e2e ## every suite: lint, unit, e2e (real terraform apply on the emulator)

test-all: ## every suite with the full load run: 1,000 webhooks from 50 customers
	AI_COMMS_LOAD_MESSAGES=1000 AI_COMMS_LOAD_SECONDS=60 $(MAKE) test

test-unit: $(VENV)/.installed
	$(PY) -m pytest tests/unit -q -n 2 --dist loadfile

test-e2e: $(VENV)/.installed build tf-config
	$(PY) -m pytest tests/e2e -q

lint: setup ## ruff, mypy, terraform fmt/validate, checkov
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) scripts/conversations_api_doc.py --check
	terraform -chdir=$(TF_DIR) fmt -check -recursive
	terraform -chdir=$(TF_DIR) validate
	$(CHECKOV_VENV)/bin/checkov --quiet --compact -d $(TF_DIR) --framework terraform --download-external-modules false --skip-download

local: setup build ## run the engine locally: emulator + terraform apply + runner + fakes
	$(PY) -m local_cloud up

bench: setup build ## benchmarks, JSON in bench/results.json
	$(PY) scripts/bench.py

plan apply destroy: tf-config ## terraform plan/apply/destroy WORKSPACE=<name>
	terraform -chdir=$(TF_DIR) workspace select -or-create $(WORKSPACE)
	terraform -chdir=$(TF_DIR) $@ -input=false -var-file=workspaces/$(WORKSPACE).tfvars

clean: ## remove venvs, builds and local state
	rm -rf $(VENV) $(CHECKOV_VENV) build $(LOCAL_DIR)
