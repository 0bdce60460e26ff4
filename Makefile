.PHONY: run test lint
run:   ## everything: venv, Redis if none answers, migrations, demo data, web and workers
	@bin/run
test:  ## the whole test suite against PostgreSQL and Redis
	@bin/test
lint:
	@bin/setup && .venv/bin/ruff check .
