# Every target sets up its own virtualenv first, so each works on a fresh clone.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo lint format bench soak clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# tests/test_ha.py puts HAProxy in front of three instances: as root with apt, it is installed
# here; otherwise that test fails saying how to install it.
HAPROXY := command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy) >/dev/null 2>&1; } || echo "haproxy not installed: tests/test_ha.py will fail (apt-get install haproxy)"

# tests/test_report_browser.py opens `smswatch report`'s page in headless Chromium: as root
# with apt, it is installed here; otherwise that test fails saying how to install it.
CHROMIUM := [ -x /usr/lib/chromium/chromium ] || command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || echo "chromium not installed: tests/test_report_browser.py will fail (apt-get install chromium)"

test: $(STAMP)
	@$(HAPROXY)
	@$(CHROMIUM)
	$(BIN)/python -m pytest -n auto --dist worksteal

demo: $(STAMP)
	exec $(BIN)/smswatch --demo

# wrk is the load generator; without it (not root, no apt) the built-in asyncio client is used.
bench: $(STAMP)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1; } || echo "wrk not installed: using the asyncio client"
	$(BIN)/python -m benchmarks.run --out benchmarks/RESULTS.md

soak: $(STAMP)
	@$(HAPROXY)
	$(BIN)/python -m pytest -m soak -v

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts benchmarks
	$(BIN)/ruff format --check src tests scripts benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests scripts benchmarks
	$(BIN)/ruff check --fix src tests scripts benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
