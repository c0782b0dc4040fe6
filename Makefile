# The two set-up commands (see README): `make run` starts the whole workbench, `make test` runs
# the whole test suite. Both install what they need on a fresh machine first.
.PHONY: run test lint
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/ruff check .
