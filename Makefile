# Set-up and run in one command each: `make serve`, `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test lint bench native build-deps system-deps clean lock wheelhouse

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Installing compiles media/_rtpsend.c (the forwarding send path): `build-deps` first.
$(VENV)/.installed: pyproject.toml media/_rtpsend.c | build-deps $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml media/_rtpsend.c | build-deps $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

# The compiled module sits in the source tree (an editable install builds it in place):
# built again when it is missing though the install stamp is newer (a `git clean`).
native: $(VENV)/.installed
	@ls media/_rtpsend*.so > /dev/null 2>&1 || $(BIN)/pip install -q --no-deps -e .

# Debian packages the install needs: a C compiler and the headers of the Python the
# virtualenv is made from (python3-dev for Debian's python3).
build-deps:
	@missing=""; \
	command -v gcc > /dev/null || missing="$$missing gcc"; \
	test -f "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" \
	  || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Debian packages the tests need: Chromium for the browser tests (never a downloaded
# browser), a CJK font so PDFs show Chinese, ip for the tests' network namespaces (the
# weak-link test's link emulator, tests/linkemu.py, also needs /dev/net/tun and makes
# the node if it is missing), nft to block UDP in one (tests/test_deploy_browser.py),
# nginx and coturn for the
# deployment tests (tests/test_deploy_*.py; started from generated files, never the
# system services), certutil to put the lab CA in a test browser's profile, ffprobe and
# ffmpeg to read recordings back (tests/test_recorder.py, tests/test_recording.py),
# HarfBuzz's subsetter for WeasyPrint's PDF fonts (without it WeasyPrint 70 warns at
# import, and the tests turn warnings into errors).
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	test -x /usr/sbin/ip || test -x /usr/bin/ip || missing="$$missing iproute2"; \
	test -x /usr/sbin/nft || missing="$$missing nftables"; \
	test -x /usr/sbin/nginx || missing="$$missing nginx"; \
	test -x /usr/bin/turnserver || missing="$$missing coturn"; \
	test -x /usr/bin/certutil || missing="$$missing libnss3-tools"; \
	test -x /usr/bin/ffprobe || missing="$$missing ffmpeg"; \
	fc-list :lang=zh-cn 2>/dev/null | grep -q . || missing="$$missing fonts-wqy-microhei"; \
	ls /usr/lib/*/libharfbuzz-subset.so.0 > /dev/null 2>&1 || missing="$$missing libharfbuzz-subset0"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

# Offline install (README "Offline install"). The lock pins every package `dispatch serve`
# needs, each with its hashes, for CPython 3.11 on Linux x86-64 (Debian 12's python3);
# re-lock after changing pyproject's dependencies.
LOCK       := requirements.lock
WHEELHOUSE ?= wheelhouse

lock: | $(BIN)/python
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --generate-hashes --python-version 3.11 -o $(LOCK)

# Every wheel into $(WHEELHOUSE)/: the locked packages (hash-checked, built here when PyPI
# has no wheel; wheels already there are reused: when all are, PyPI is not asked), this
# project's wheel, the lock, and SHA256SUMS to check the folder after carrying it
# (sha256sum -c SHA256SUMS).
wheelhouse: | build-deps $(BIN)/python
	mkdir -p $(WHEELHOUSE)
	$(BIN)/pip wheel -q --require-hashes -r $(LOCK) --no-index --find-links $(WHEELHOUSE) \
	  -w $(WHEELHOUSE) 2>/dev/null || \
	$(BIN)/pip wheel -q --require-hashes -r $(LOCK) --find-links $(WHEELHOUSE) -w $(WHEELHOUSE)
	rm -rf $(WHEELHOUSE)/pingan_dispatch-*.whl build
	$(BIN)/pip wheel -q --no-deps -w $(WHEELHOUSE) .
	cp $(LOCK) $(WHEELHOUSE)/requirements.lock
	cd $(WHEELHOUSE) && sha256sum *.whl requirements.lock > SHA256SUMS

serve: $(VENV)/.installed native
	mkdir -p var
	$(BIN)/dispatch demo load --if-empty --history-weeks 8
	$(BIN)/dispatch serve

# The PostgreSQL tests run against a local server that .ci/postgres.sh installs and
# starts; without root or sudo they skip and say so.
# Two passes: the self-contained files (marker `parallel`, listed in tests/conftest.py:
# no media peers or network namespace; browser pages without media, subprocess servers
# and the PostgreSQL cases, each worker on a database of its own, may be there) on two
# workers, then every other test alone, so media tests never share the two cores with
# another test. `--dist worksteal`: a worker that runs out takes half of the other's
# queue, so one slow file no longer holds a worker while the other waits.
# `--durations=15` names the slowest tests of each pass.
# mypy reads its settings (which packages, how strict) from pyproject.toml.
test: $(VENV)/.installed-test native system-deps
	$(BIN)/ruff check .
	$(BIN)/mypy
	export DISPATCH_TEST_PG_URL="$${DISPATCH_TEST_PG_URL:-$$(bash .ci/postgres.sh)}"; \
	$(BIN)/python -m pytest -m parallel -n 2 --dist worksteal --durations=15 && \
	$(BIN)/python -m pytest -m "not parallel" --durations=15

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(VENV)/.installed-test native
	for b in tests/bench/[!_]*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info wheelhouse build media/_rtpsend*.so
