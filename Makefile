# Every target sets itself up first (scripts/setup.sh is idempotent).
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup run test check bench screenshots clean

setup:
	@scripts/setup.sh

# Without ARGS: the live TUI on built-in demo traffic.
run: setup
	$(SUDO) $(VENV)/bin/ipft-tui $(or $(ARGS),--demo)

test: setup
	$(VENV)/bin/ruff check ipft_tui tests scripts
	$(SUDO) env CI=$(CI) $(VENV)/bin/python -m pytest $(PYTEST_ARGS)

check: setup
	$(SUDO) $(VENV)/bin/ipft-tui --check

# Benchmarks (not part of the tests): all configurations side by side, table + JSON.
bench: setup
	@command -v bpftrace >/dev/null || $(SUDO) apt-get install -y -qq --no-install-recommends bpftrace
	$(SUDO) $(VENV)/bin/python scripts/bench.py $(ARGS)

screenshots: setup
	@command -v rsvg-convert >/dev/null || $(SUDO) apt-get install -y -qq --no-install-recommends librsvg2-bin fonts-dejavu-core
	$(VENV)/bin/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache
