# The two commands: `make run` and `make test`. `make bench` runs the benchmarks.
.PHONY: run test lint bench setup-run setup-test serve

FLASK := .venv/bin/flask --app wsgi
HOST ?= 127.0.0.1
PORT ?= 5000

run: setup-run
	$(FLASK) db upgrade
	$(FLASK) demo load --if-empty
	@scripts/serve.sh $(HOST) $(PORT)

test: setup-test lint
	scripts/test.sh

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: setup-test
	.venv/bin/python -m bench.assignment
	.venv/bin/python -m bench.rewards
	.venv/bin/python -m bench.targets

setup-run:
	@scripts/setup.sh run

setup-test:
	@scripts/setup.sh test
