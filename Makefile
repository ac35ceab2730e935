# rke2-rancher: the two commands a user needs are `make preview` and `make test`.
# Everything else is bootstrapped on demand: the Python venvs, the Pulumi toolchain
# (cached under ~/.cache/rke2-rancher), a local state backend in .state/.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

STACK ?= dev
PYTHON ?= python3
VENV := .venv
POLICY_VENV := policy/venv
STATE_DIR := $(CURDIR)/.state
# release: official archives; go: build from Go modules; auto: release, else go.
TOOLCHAIN_SOURCE ?= auto
export TOOLCHAIN_SOURCE
# A local file backend unless the user points PULUMI_BACKEND_URL at their own.
export PULUMI_BACKEND_URL ?= file://$(STATE_DIR)/backend
# The sample stacks' secrets are encrypted with this documented passphrase. Real stacks
# should use their own passphrase or another secrets provider.
export PULUMI_CONFIG_PASSPHRASE ?= rke2-rancher-sample
export PULUMI_SKIP_UPDATE_CHECK := true
# Every plugin comes from the pinned toolchain; never fetch others behind our back.
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_HOME ?= $(STATE_DIR)/pulumi-home
PYTEST_ARGS ?=
# Test modules run in parallel workers (pytest-xdist), a module's tests on one worker (its
# module fixtures, e.g. one HA cluster, are built once). The host lab mostly waits (SSH,
# service starts), so 3 workers pay off on 2 cores; TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 3
PYTEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)

TOOLCHAIN_BIN_FILE := $(STATE_DIR)/toolchain-bin
# Provider plugins are found on PATH (the engine notes each one it uses). Every run gets a
# private TMPDIR, removed afterwards: the kubernetes provider leaves a copy of its kubeconfig,
# the admin's client key included, in TMPDIR (toolchain/private-tmp.sh).
PRIVATE_TMP := bash toolchain/private-tmp.sh
PULUMI = PATH="$$(cat $(TOOLCHAIN_BIN_FILE)):$$PATH" $(PRIVATE_TMP) pulumi

.PHONY: help venv toolchain host-deps preview plan up destroy test test-fast bench clean stack

help:
	@echo "make preview [STACK=dev]  pulumi preview --diff with the rke2-guard policy pack (no host contacted)"
	@echo "make plan [STACK=dev]     impact plan per host: steps, causes, effects, totals, policies (no host contacted)"
	@echo "make test                 unit, mock, script, policy, engine and host-lab tests"
	@echo "make up STACK=<name>      deploy a stack for real"
	@echo "make toolchain            install or reuse the Pulumi CLI and plugins; prints their directory last"
	@echo "make bench                host-lab benchmarks"

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

$(POLICY_VENV)/.installed: policy/requirements.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install -q --disable-pip-version-check -r policy/requirements.txt
	touch $@

venv: $(VENV)/.installed $(POLICY_VENV)/.installed

# The bootstrap prints progress on stderr and the bin directory as its last line.
toolchain:
	@mkdir -p $(STATE_DIR)
	@bash toolchain/bootstrap.sh | tee $(STATE_DIR)/toolchain.out | tail -n 1 > $(TOOLCHAIN_BIN_FILE).tmp
	@mv $(TOOLCHAIN_BIN_FILE).tmp $(TOOLCHAIN_BIN_FILE)
	@cat $(TOOLCHAIN_BIN_FILE)

# Debian packages the tests use (real sshd, HAProxy, keepalived, shellcheck, openssl).
host-deps:
	@bash tests/install-host-deps.sh

stack: venv toolchain
	@mkdir -p $(STATE_DIR)/backend $(PULUMI_HOME)
	@$(PULUMI) stack select --create $(STACK) --non-interactive >/dev/null

preview: stack
	$(PULUMI) preview --diff --non-interactive --stack $(STACK) --policy-pack policy

# The impact plan (components/plan.py): per host in execution order, each changing step, the
# config keys behind it, its effect on the host, totals and policy violations. Runs only
# `pulumi preview` and `pulumi stack export`; PLAN_ARGS="--format markdown|json -o markdown=FILE".
plan: stack
	@PATH="$$(cat $(TOOLCHAIN_BIN_FILE)):$$PATH" $(PRIVATE_TMP) $(VENV)/bin/python -m components.plan --stack $(STACK) $(PLAN_ARGS) -- --policy-pack policy

up: stack
	$(PULUMI) up --diff --non-interactive --stack $(STACK) --policy-pack policy

destroy: stack
	$(PULUMI) destroy --non-interactive --stack $(STACK)

# pytest exits 5 when a selection (PYTEST_ARGS=-k ...) collects nothing: say so, don't fail.
test: venv host-deps toolchain
	@rc=0; PATH="$$(cat $(TOOLCHAIN_BIN_FILE)):$$PATH" RKE2_RANCHER_TOOLCHAIN_BIN="$$(cat $(TOOLCHAIN_BIN_FILE))" \
		$(VENV)/bin/python -m pytest tests $(PYTEST_PARALLEL) $(PYTEST_ARGS) || rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; rc=0; fi; exit $$rc

# Without the engine and the host lab: seconds.
test-fast: venv
	$(VENV)/bin/python -m pytest tests/unit tests/components tests/scripts tests/policy $(PYTEST_PARALLEL) $(PYTEST_ARGS)

bench: venv host-deps toolchain
	PATH="$$(cat $(TOOLCHAIN_BIN_FILE)):$$PATH" RKE2_RANCHER_TOOLCHAIN_BIN="$$(cat $(TOOLCHAIN_BIN_FILE))" \
		$(VENV)/bin/python -m bench

clean:
	rm -rf $(STATE_DIR) $(VENV) $(POLICY_VENV)

# Real upstream etcd/kube-apiserver/kubectl/kwok for the host lab, built from Go modules
# and cached (tests/lab/realparts/build.sh); prints the cache's bin directory last.
.PHONY: lab-parts
lab-parts:
	@bash tests/lab/realparts/build.sh
