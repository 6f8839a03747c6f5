# Every target sets itself up first (scripts/setup.sh is idempotent).
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test check bench screenshots clean

setup:
	@scripts/setup.sh

run: setup
	$(SUDO) $(VENV)/bin/ipft-tui $(ARGS)

test: setup
	$(SUDO) env CI=$(CI) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

check: setup
	$(SUDO) $(VENV)/bin/ipft-tui --check

clean:
	rm -rf $(VENV) .pytest_cache
