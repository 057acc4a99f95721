# Two commands set everything up on a fresh machine:
#   make demo   creates .venv, installs ctqc, runs the main job on the built-in phantom data
#   make test   creates .venv with the dev extras, runs the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# constraints.txt pins every resolved version (torch and torchvision as a matching
# registry pair: the machine's local torch+cpu wheel breaks torchvision's import).
PIP    := $(BIN)/pip install --progress-bar off -c constraints.txt

.PHONY: demo test install install-dev lock clean

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) -q -e '.[fid,features]'
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -q -e '.[dev,fid,features]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The main job on the built-in phantom data: train → generate → filter → qc → selftest →
# compare → report; prints the report's path. Re-running resumes an unfinished run.
demo: $(VENV)/.installed
	$(BIN)/ctqc run --config configs/default.yaml

# pytest's exit code 5 means "no tests collected": a broken setup, never a pass.
test: $(VENV)/.installed-dev
	@$(BIN)/python -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests: the test setup is broken" >&2; fi; \
	exit $$status

# Re-resolve and pin all versions (run after changing dependencies in pyproject.toml).
lock: $(VENV)/.installed-dev
	$(BIN)/pip freeze --exclude-editable | grep -v '^ctqc' > constraints.txt

clean:
	rm -rf $(VENV) runs .pytest_cache
