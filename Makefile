# The README's two commands. `make demo` needs no Azure and no Pulumi CLI.
PYTHON ?= python3.11
VENV := .venv
SAMPLE ?= churn-train

.PHONY: venv demo test lint

$(VENV)/.installed: requirements.txt constraints.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed

# Validate every definition, draw the sample's DAG, build the training image and run the sample end
# to end in it (see scripts/demo.sh; EXECUTOR=process runs it with local python3 and Rscript).
demo: venv
	scripts/demo.sh $(SAMPLE)

test: venv
	$(VENV)/bin/python -m pytest

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
