PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-fast install install-test lint types catalogs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'

run: install
	mkdir -p data
	BEACON_SIMULATOR=on $(BIN)/beacon serve

lint: install-test
	$(BIN)/ruff check domain bot channels registry campaigns beacon tests bench
	$(BIN)/lint-imports

types: install-test
	$(BIN)/mypy --strict domain bot channels registry campaigns
	$(BIN)/mypy beacon

test: lint types
	$(BIN)/python -m pytest -q -n 2; code=$$?; if [ $$code -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$code

# Installed once per change of pyproject.toml, so that test-fast spends its minute on tests.
$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

# Everything but the slow (subprocess, kill -9, load, over about a second) and Chromium tests: under a minute.
test-fast: $(VENV)/.test-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 -m "not slow and not browser"

catalogs: install-test
	$(BIN)/pybabel extract --no-default-keywords -k N_ --no-location --omit-header -o bot/locales/beacon.pot bot/texts.py channels/telegram.py
	$(BIN)/pybabel update --no-fuzzy-matching -i bot/locales/beacon.pot -d bot/locales -D beacon
	@# pybabel drops unknown headers: put back the review marker of catalogs no native speaker has checked.
	for f in bot/locales/*/LC_MESSAGES/beacon.po; do case $$f in */en/*) continue;; esac; \
	  grep -q X-Native-Review $$f || sed -i 's/^"Generated-By: \(.*\)\\n"$$/"Generated-By: \1\\n"\n"X-Native-Review: none\\n"/' $$f; done
	$(BIN)/pybabel extract -F beacon/console/babel.cfg -k translate:2 -k N_ --no-location --omit-header \
	  -o beacon/console/locales/console.pot .
	for lang in fr ar; do po=beacon/console/locales/$$lang/LC_MESSAGES/console.po; \
	  if [ -f $$po ]; then $(BIN)/pybabel update --no-fuzzy-matching -i beacon/console/locales/console.pot -o $$po -l $$lang; \
	  else $(BIN)/pybabel init -i beacon/console/locales/console.pot -o $$po -l $$lang; fi; \
	  grep -q X-Native-Review $$po || sed -i 's/^"Generated-By: \(.*\)\\n"$$/"Generated-By: \1\\n"\n"X-Native-Review: none\\n"/' $$po; done

bench: install-test
	$(BIN)/python bench/bot_throughput.py

clean:
	rm -rf $(VENV) data .pytest_cache
