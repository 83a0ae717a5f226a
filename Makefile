# cryptolab developer tasks: `make help` lists them.
#
# Variables: PYTHON=python3 (used to create .venv), PYTEST_ARGS (extra pytest arguments,
# e.g. make test PYTEST_ARGS='-m "not slow"'), BENCH_ARGS (extra arguments of the benchmark
# suite, e.g. make bench BENCH_ARGS='--quick --only consumer,batch').

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.ONESHELL:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: help install demo test lint typecheck check lab bench \
        services-up services-down services-status clean distclean

help: ## List the targets
	@echo "cryptolab: make <target>"
	awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	@if [[ ! -x $(BIN)/python ]]; then
	  $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
	    { echo "make install: cryptolab needs Python >= 3.11 (PYTHON=$(PYTHON) is older)" >&2; exit 1; }
	  echo "+ $(PYTHON) -m venv $(VENV)"
	  $(PYTHON) -m venv $(VENV)
	fi
	echo '+ $(BIN)/python -m pip install -e ".[all]"'
	$(BIN)/python -m pip install --disable-pip-version-check -q -e ".[all]"
	touch $@

install: $(STAMP) ## Create .venv if missing and install cryptolab with all extras (again only when pyproject.toml changed)

demo: install ## Run the end-to-end demo (cryptolab demo)
	$(BIN)/cryptolab demo

test: install ## Lint, type-check and check the layers, start the services, then run unit, integration, doctest and notebook tests
	@echo "+ scripts/services.sh up"
	scripts/services.sh up
	echo "+ scripts/ensure_chromium.sh"
	scripts/ensure_chromium.sh
	echo "+ ruff check, mypy --strict and lint-imports (the layer rule, [tool.importlinter] in pyproject.toml)"
	$(BIN)/ruff check cryptolab tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache
	eval "$$(scripts/services.sh env)"
	mapfile -t notebooks < <(find notebooks -name '*.ipynb' -not -path '*/.ipynb_checkpoints/*' -not -path 'notebooks/benchmarks/*' 2>/dev/null | sort)
	nbval=()
	if (( $${#notebooks[@]} )); then nbval=(--nbval --nbval-current-env "$${notebooks[@]}"); fi
	mkdir -p test-artifacts
	args=(tests cryptolab benchmarks "$${nbval[@]}" --ignore-glob='cryptolab/*.ipynb' --junitxml=test-artifacts/junit.xml)
	echo "+ $(BIN)/python -m pytest $${args[*]} $(PYTEST_ARGS)"
	rc=0
	$(BIN)/python -m pytest "$${args[@]}" $(PYTEST_ARGS) || rc=$$?
	if (( rc == 5 )); then
	  echo "make test: pytest collected no tests: that is a failure" >&2
	  exit 1
	fi
	exit $$rc

lint: install ## Lint the code (ruff; the layer rule with lint-imports; shellcheck on the scripts when installed)
	@echo "+ $(BIN)/ruff check cryptolab tests benchmarks"
	$(BIN)/ruff check cryptolab tests benchmarks
	echo "+ $(BIN)/lint-imports --no-cache"
	$(BIN)/lint-imports --no-cache
	if command -v shellcheck >/dev/null; then
	  echo "+ shellcheck scripts/*.sh .ci/run"
	  shellcheck scripts/*.sh .ci/run
	fi

typecheck: install ## Type-check the package (mypy --strict, configured in pyproject.toml)
	$(BIN)/mypy

check: lint typecheck ## Lint and type-check

lab: install ## Start JupyterLab on notebooks/ (using the services when they are up)
	@if scripts/services.sh status >/dev/null 2>&1; then
	  eval "$$(scripts/services.sh env)"
	  echo "make lab: using the services: $$(scripts/services.sh env | tr '\n' ' ')"
	else
	  echo "make lab: services are not up: cryptolab uses its embedded defaults (make services-up)"
	fi
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (cryptolab)" >/dev/null
	JUPYTER=$(BIN)/jupyter exec scripts/lab.sh  # --allow-root when run as root

bench: install ## Start the services, run the benchmark suite (benchmarks/); figures go to benchmarks/results/latest.json
	@echo "+ scripts/services.sh up"
	scripts/services.sh up
	eval "$$(scripts/services.sh env)"
	mkdir -p benchmarks/results
	echo "+ $(BIN)/python -m benchmarks.run --json benchmarks/results/latest.json $(BENCH_ARGS)"
	$(BIN)/python -m benchmarks.run --json benchmarks/results/latest.json $(BENCH_ARGS)

services-up: ## Start Kafka, PostgreSQL and Redis (scripts/services.sh up)
	scripts/services.sh up

services-down: ## Stop them (data is kept in .services/)
	scripts/services.sh down

services-status: ## Show whether each service is up, and where
	scripts/services.sh status

clean: ## Remove caches and build/test outputs (not .venv, .cache or the services' data)
	rm -rf build dist ./*.egg-info .pytest_cache .mypy_cache .ruff_cache .import_linter_cache .hypothesis test-artifacts
	find . -path ./.venv -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## Also stop the services and remove .venv, .cache and .services
	if [[ -x scripts/services.sh ]]; then scripts/services.sh down; fi
	rm -rf $(VENV) .cache .services
