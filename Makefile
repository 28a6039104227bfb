# Two commands on a fresh machine with Python 3.11: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 19000

.PHONY: run test bench bench-dashboard venv cluster cluster-stop

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

var/env:
	mkdir -p var
	$(PY) -c "import secrets; print('SECRET_KEY=' + secrets.token_urlsafe(50))" > var/env

run: venv var/env
	$(PY) manage.py quickstart --base-url http://$(HOST):$(PORT)
	LOG_FORMAT=$${LOG_FORMAT:-plain} $(PY) manage.py serve --host $(HOST) --port $(PORT)

test: venv
	$(PY) -m pytest -q $(ARGS)

bench: venv var/env
	$(PY) -m tests.bench.run $(ARGS)

# A year of hourly roll-ups (about 5 million rows) in PostgreSQL and the time of each dashboard page.
bench-dashboard: venv
	$(PY) -m tests.bench.dashboard $(ARGS)

# The production topology locally (deploy/cluster.sh): nginx on 127.0.0.1:$(CLUSTER_PORT) in front
# of instances on 19000 and 19002, a Celery worker and beat, on this machine's PostgreSQL and Redis.
CLUSTER_PORT ?= 8080
cluster: venv var/env
	CLUSTER_PORT=$(CLUSTER_PORT) deploy/cluster.sh start

cluster-stop:
	deploy/cluster.sh stop
