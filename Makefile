# Every target sets itself up first (scripts/setup.sh is idempotent).
VENV := .venv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
ARGS ?=
PYTEST_ARGS ?=

LAUNCHER ?= /usr/local/bin/ipft-tui

.PHONY: setup run test check bench screenshots clean uninstall-launcher

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

clean: uninstall-launcher
	rm -rf $(VENV) .pytest_cache

# The launcher scripts/setup.sh put on root's PATH, when it runs this checkout.
uninstall-launcher:
	@if grep -qsF "$(CURDIR)/$(VENV)/bin/ipft-tui" "$(LAUNCHER)"; then $(SUDO) rm -f "$(LAUNCHER)" && echo "removed $(LAUNCHER)"; fi
