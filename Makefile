# Set-up and run in one command each: `make serve`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test lint bench system-deps clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

# Debian packages the tests need: Chromium for the browser tests (never a downloaded
# browser), a CJK font so PDFs show Chinese, ip/tc and nft for the weak-link test's
# network namespace (tests/test_browser_weak_link.py), nginx and coturn for the
# deployment tests (tests/test_deploy_*.py; started from generated files, never the
# system services), certutil to put the lab CA in a test browser's profile.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/sbin/tc || missing="$$missing iproute2"; \
	test -x /usr/sbin/nft || missing="$$missing nftables"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	test -x /usr/bin/turnserver || missing="$$missing coturn"; \
	test -x /usr/bin/certutil || missing="$$missing libnss3-tools"; \
	fc-list :lang=zh-cn 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

serve: $(VENV)/.installed
	mkdir -p var
	$(BIN)/dispatch demo load --if-empty --history-weeks 8
	$(BIN)/dispatch serve

# The PostgreSQL tests run against a local server that .ci/postgres.sh installs and
# starts; without root or sudo they skip and say so.
test: $(VENV)/.installed-test system-deps
	$(BIN)/ruff check .
	DISPATCH_TEST_PG_URL="$${DISPATCH_TEST_PG_URL:-$$(bash .ci/postgres.sh)}" $(BIN)/python -m pytest

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

bench: $(VENV)/.installed-test
	for b in tests/bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
