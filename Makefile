# MNIST Lightning template. `make help` lists targets and variables.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_SYS ?= python3#     interpreter that creates the venv
VENV       ?= .venv#       virtual environment folder
PY         := $(VENV)/bin/python

## Variables for `make train` (each optional; configs/defaults.yaml's value when unset)
MODEL      ?= mlp#            network: configs/net/$(MODEL).yaml (mlp | cnn), then configs/recipes/$(MODEL).yaml if any
PRESET     ?=#                presets stacked on it, before the variables below: configs/<preset>.yaml, e.g. PRESET='regularised debug'
ACT        ?=#                activation name (relu, leaky_relu, elu, sigmoid, maxout, ...)
ACT_ARGS   ?=#                activation parameters, e.g. ACT_ARGS='{negative_slope: 0.1}'
INIT       ?=#                weight init (kaiming_normal, xavier_uniform, zeros, ...)
INIT_ARGS  ?=#                weight-init parameters, e.g. INIT=normal INIT_ARGS='{std: 1.0}'
DROPOUT    ?=#                dropout probability in [0, 1)
BN         ?=#                batch norm: true | false
EPOCHS     ?=#                max epochs
LR         ?=#                learning rate
BATCH      ?=#                training batch size
SEED       ?=#                seed for everything
DEPTH      ?=#                MLP hidden layers (MODEL=mlp only)
WIDTH      ?=#                MLP hidden units per layer (MODEL=mlp only)
DATASET    ?=#                mnist (default) | fashion_mnist | kmnist: files in DATA_DIR/<MNIST|FashionMNIST|KMNIST>/raw
DATA_DIR   ?= data/#          torchvision root holding MNIST/raw (FashionMNIST/raw, KMNIST/raw)
EXPERIMENT ?=#                MLflow experiment name (default: mnist)
RESUME     ?=#                continue a run: last (the newest KILLED/FAILED one) | <checkpoint path> | <MLflow run id>
ARGS       ?=#                any further LightningCLI arguments (given last, so they win)
PORT       ?= 5000#           port of `make ui` (and `make serve`)
NAME       ?=#                `make rename`: the new package name, e.g. digit_lab
PART       ?=#                `make drop`: the optional part to remove (`make drop` lists them; all: every one)

# The CLI loads configs/defaults.yaml and configs/net/mlp.yaml itself; then, in this order, the
# network, its recipe, the presets, the variables and ARGS: the later wins, so a variable beats a preset.
MODELS := $(basename $(notdir $(wildcard configs/net/*.yaml)))
PRESETS := $(filter-out defaults,$(basename $(notdir $(wildcard configs/*.yaml))))
MLP_ONLY := DEPTH WIDTH
preset_net = $(shell sed -n 's/^\# network: *//p' configs/$(1).yaml)#  a preset's `# network: <model>` line
MODEL := $(strip $(MODEL))
CONFIG := configs/net/$(MODEL).yaml
RECIPE := $(wildcard configs/recipes/$(MODEL).yaml)#  how that network trains, if it has its own recipe
NET := --model.net.init_args
q = '$(subst ','\'',$(1))'#  one shell word, whatever the value holds (spaces, quotes, non-ASCII)
opt = $(if $(strip $(2)),$(call q,$(1)=$(2)))#  `--arg=value` when the variable is set
TRAIN_ARGS = --config $(CONFIG) $(if $(RECIPE),--config $(RECIPE)) \
	$(foreach p,$(PRESET),--config configs/$(p).yaml) \
	$(call opt,$(NET).activation,$(ACT)) $(call opt,$(NET).activation_args,$(ACT_ARGS)) \
	$(call opt,$(NET).weight_init,$(INIT)) $(call opt,$(NET).weight_init_args,$(INIT_ARGS)) \
	$(call opt,$(NET).dropout,$(DROPOUT)) $(call opt,$(NET).batch_norm,$(BN)) \
	$(call opt,$(NET).depth,$(DEPTH)) $(call opt,$(NET).width,$(WIDTH)) \
	$(call opt,--trainer.max_epochs,$(EPOCHS)) $(call opt,--model.optimizer.init_args.lr,$(LR)) \
	$(call opt,--data.batch_size,$(BATCH)) $(call opt,--seed_everything,$(SEED)) \
	$(call opt,--data.data_dir,$(DATA_DIR)) $(call opt,--data.dataset,$(DATASET)) \
	$(call opt,--trainer.logger.init_args.experiment_name,$(EXPERIMENT)) \
	$(call opt,--ckpt_path,$(RESUME)) $(LAB_ARGS) $(ARGS)
# This command as typed, without RESUME: what the CLI prints as the command that goes on after a stop.
TYPED = $(foreach v,$(sort $(.VARIABLES)),$(if $(and $(filter command line,$(origin $(v))),$(filter-out RESUME,$(v))),$(v)=$(call q,$($(v)))))
STORE = "$$($(PY) -m mnist_lab.names uri)"#  $MLFLOW_TRACKING_URI, else the local store (names.py says which)

.PHONY: help install check-model train fit-only ui test test-fast lint format rename drop drop-lab fork-check clean

help: ## Show targets and variables
	@echo "Targets:"
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "Variables (make train VAR=value ...):"
	@grep -E '^[A-Z_]+ +\?=' $(MAKEFILE_LIST) | sed -E 's/ *\?= *([^#]*)# */\t\1\t/' \
		| awk -F'\t' '{printf "  %-10s %-8s %s\n", $$1, $$2, $$3}'

install: ## Create .venv and install the project (editable) with its dev extras
	test -x $(PY) || $(PYTHON_SYS) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"

check-model:
	@$(if $(and $(filter 1,$(words $(MODEL))),$(filter $(MODEL),$(MODELS))),true,echo "error: unknown MODEL '$(MODEL)'; choose one of: $(MODELS)" >&2; exit 2)
	@$(foreach p,$(PRESET),$(if $(filter $(p),$(PRESETS)),,echo "error: unknown PRESET '$(p)'; choose from: $(PRESETS)" >&2; exit 2;)) true
	@$(foreach p,$(filter $(PRESETS),$(PRESET)),$(if $(filter-out $(MODEL),$(call preset_net,$(p))),echo "error: PRESET=$(p) is for MODEL=$(call preset_net,$(p)) (MODEL=$(MODEL))" >&2; exit 2;)) true
	@$(foreach v,$(MLP_ONLY),$(if $(and $(strip $($(v))),$(filter-out mlp,$(MODEL))),echo "error: $(v) applies to MODEL=mlp only (MODEL=$(MODEL))" >&2; exit 2;)) true

train: check-model ## Fit (MNIST unless DATASET=), then test the best checkpoint (one MLflow run)
	$(PY) -m mnist_lab fit $(TRAIN_ARGS)

fit-only: check-model ## Fit without the final test
	$(PY) -m mnist_lab fit $(TRAIN_ARGS) --run_test=false

train fit-only: export TEMPLATE_COMMAND = make $@ $(TYPED)

fashion-data: ## Fashion-MNIST into DATA_DIR/FashionMNIST/raw from Debian's package (no internet needed)
	scripts/get_fashion_mnist.sh "$(DATA_DIR)"

.PHONY: check-port
check-port:  # a busy PORT is one error line, not a traceback (serve) or an exit code 0 (ui)
	@$(PY) -c 'import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
		s.bind(("127.0.0.1", int("$(PORT)")))' 2>/dev/null \
		|| { echo "error: cannot listen on port $(PORT) (in use?): choose another with PORT=, e.g. PORT=5001" >&2; exit 2; }

# MLflow 3's server also starts a job runner for its GenAI features (8 processes, about 1.7 GB and 30 s of CPU),
# which nothing here uses: off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true is set.
NO_JOBS := MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
ui: check-port ## Serve the MLflow UI over the store (mlruns/, or MLFLOW_TRACKING_URI) on PORT (default 5000)
	$(NO_JOBS) PYTHONWARNINGS='ignore:starlette.middleware.wsgi is deprecated' $(VENV)/bin/mlflow server --host 127.0.0.1 --port $(PORT) --backend-store-uri $(STORE) \
		--artifacts-destination "$$($(PY) -m mnist_lab.names artifacts)"

TEST_JOBS ?= 3#  `make test`: pytest-xdist processes (1: one process, in order); README says why 3
test: ## The whole test suite, TEST_JOBS processes (real-MNIST tests need DATA_DIR)
	DATA_DIR=$(call q,$(DATA_DIR)) $(PY) -m pytest -q $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadgroup)

test-fast: ## Tests that start no process or server and need no real MNIST
	$(PY) -m pytest -q -m "not slow and not subprocess and not server and not browser"

LINTED := src tests scripts

lint: ## Check lint, formatting, import directions and public APIs only (ruff, import-linter); CI runs it
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports
	$(PY) scripts/public_api.py src scripts

format: ## Format, then fix what ruff can fix
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

rename: ## Rename the package, its imports, configs and docs: make rename NAME=<new_package>
	@test -n "$(NAME)" || { echo "error: give the new package name: make rename NAME=<new_package>" >&2; exit 2; }
	$(PYTHON_SYS) scripts/rename.py "$(NAME)"

drop: ## Remove an optional part (code, configs, targets, tests, docs): make drop PART=<name>; `make drop` lists them
	@$(PYTHON_SYS) scripts/drop.py $(PART)

drop-lab: ## Remove the lab (the study, diagnostics, bench): make drop PART=lab
	@$(PYTHON_SYS) scripts/drop.py lab

fork-check: ## A fork's path on a copy: make drop PART (default all), rename, lint, test, a debug train
	VENV=$(abspath $(VENV)) DATA_DIR=$(call q,$(DATA_DIR)) $(PYTHON_SYS) scripts/fork_check.py $(PART)

clean: ## Remove outputs/ and caches (keeps mlruns/)
	rm -rf outputs .pytest_cache .ruff_cache

# stale:begin  (make drop PART=stale deletes this block) ---------------------------------------------
.PHONY: runs-clean
runs-clean: ## Mark KILLED the RUNNING runs whose process on this machine is gone (kill -9, out of memory)
	@$(PY) -m mnist_lab.parts.stale

ui: runs-clean
train fit-only: $(if $(filter last,$(strip $(RESUME))),runs-clean)#  RESUME=last may pick a run killed with -9
# stale:end

# serve:begin  (make drop PART=serve deletes this block) ---------------------------------------------
RUN        ?=#                `make serve`/`register`: an MLflow run id (serve: or MODEL=models:/<name>@champion)
.PHONY: serve register
serve: check-port ## Serve a run's logged model over REST: make serve RUN=<run id> | MODEL=models:/<name>@<alias> [PORT=]
	@local=$$($(PY) -m mnist_lab.parts.serve $(call q,$(or $(RUN),$(filter models:/%,$(MODEL))))) && \
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/mlflow models serve -m "$$local" --env-manager local \
		-h 127.0.0.1 -p $(PORT)

register: ## A run's model -> next version of NAME (mnist-classifier), alias @champion: RUN=<id> (or STUDY=<sweep>)
	@run=$(call q,$(RUN)); $(BEST_RUN) $(PY) -m mnist_lab.parts.serve.registry "$$run" $(call opt,--name,$(NAME))
# serve:end

# export:begin  (make drop PART=export deletes this block) -------------------------------------------
.PHONY: export
export: ## A run's best network -> outputs/onnx/<id>/model.onnx, logged to it, checked (needs the export extra)
	@$(PY) -m mnist_lab.parts.export $(call q,$(RUN)) $(call opt,--data-dir,$(DATA_DIR))
# export:end

# predict:begin  (make drop PART=predict deletes this block) -----------------------------------------
CKPT       ?=#                `make predict`: a checkpoint file, an MLflow run id or models:/<name>@<alias>
INPUT      ?=#                `make predict`: an image file (PNG/JPG) or a folder of them
OUT        ?=#                `make predict`: the CSV to write, or a folder (default outputs/image_predictions.csv)
.PHONY: predict
predict: ## Classify digit images: make predict CKPT=<checkpoint | run id> INPUT=<image | folder> [OUT=csv]
	@test -n "$(CKPT)" -a -n "$(INPUT)" || { echo "error: make predict CKPT=<checkpoint or run id> INPUT=<image or folder>" >&2; exit 2; }
	@$(PY) -m mnist_lab.parts.predict $(call q,$(CKPT)) $(call q,$(INPUT)) $(call opt,--out,$(OUT))
# predict:end

# sweep:begin  (make drop PART=sweep deletes this block) ---------------------------------------------
QUICK      ?=#                `make sweep QUICK=1`: a few tiny trials (the study <name>-quick)
JOBS       ?=#                `make sweep`: parallel processes
SWEEP      ?= configs/sweeps/mlp.yaml#  `make sweep`: the sweep file (search space, base args, n_trials)
TRIALS     ?=#                `make sweep`: n_trials, the complete + pruned trials the study should hold
STORAGE    ?=#                `make sweep`: Optuna storage URL (default sqlite:///mlruns/optuna.db)
STUDY      ?=#                `make sweep`: the study (default the sweep file's); `make register STUDY=`: its best trial
.PHONY: sweep
SWEEP_ARGS = $(call opt,--sweep,$(SWEEP)) $(call opt,--name,$(STUDY)) $(if $(QUICK),--quick) \
	$(call opt,--storage,$(STORAGE)) $(call opt,--experiment,$(EXPERIMENT))
sweep: ## Optuna sweep of SWEEP, trials as child MLflow runs (TRIALS=, JOBS=, RESUME=1, STORAGE=, STUDY=, QUICK=1)
	$(PY) -m mnist_lab.parts.sweep $(SWEEP_ARGS) $(call opt,--trials,$(TRIALS)) $(call opt,--jobs,$(JOBS)) \
		$(if $(strip $(RESUME)),--resume) $(call opt,--data-dir,$(DATA_DIR)) $(if $(strip $(ARGS)),-- $(ARGS))
sweep: export TEMPLATE_COMMAND = make $@ $(TYPED)
BEST_RUN = $(if $(STUDY),run=$$($(PY) -m mnist_lab.parts.sweep $(SWEEP_ARGS) --best-run) || exit 2;)
# sweep:end

# team:begin  (make drop PART=team deletes this block) -----------------------------------------------
.PHONY: team-up team-down
team-up: ## PostgreSQL + mlflow server here, on free ports (.team/); eval "$(make -s team-up)" points targets there
	@PY=$(PY) scripts/team.sh up

team-down: ## Stop what team-up started (its data stays in .team/)
	@PY=$(PY) scripts/team.sh down
# team:end

# lab:begin  (make drop-lab deletes this block) -----------------------------------------------------
## Variables of the lab's targets
DIAG       ?=#                `make train DIAG=false`: no diagnostics (the last callback of configs/defaults.yaml)
SEEDS      ?=#                `make compare`: seeds per configuration, 42, 43, ... (default 5; QUICK: 1)
CLAIM      ?=#                `make compare`: claims to run (default all), e.g. CLAIM='saturation init'; `--claim` lists them
REPORT     ?=#                `make compare`: where the report goes (default reports/activation_study.md; QUICK: outputs/study/)
BENCH_ARGS ?=#                `make bench`: e.g. BENCH_ARGS='--quick' or '--models mlp --threads 1'
LAB_ARGS = $(call opt,--trainer.callbacks.init_args.enabled,$(DIAG))

JOBS       ?=#                `make compare`: worker processes
QUICK      ?=#                `make compare QUICK=1`: one seed of tiny runs (a smoke test)
.PHONY: compare bench

compare: ## The study: each claim's grid x SEEDS, nested MLflow runs -> reports/activation_study.md (CLAIM=, QUICK=1, JOBS=)
	$(PY) scripts/activation_study.py $(if $(QUICK),--quick) $(call opt,--seeds,$(SEEDS)) \
		$(if $(strip $(CLAIM)),--claim $(strip $(CLAIM))) $(call opt,--jobs,$(JOBS)) \
		$(call opt,--data-dir,$(DATA_DIR)) $(call opt,--out,$(REPORT)) $(if $(strip $(ARGS)),-- $(ARGS))

bench: ## Per-epoch time: hand loop, Lightning floor, template lean/default, torchvision -> reports/bench.{json,md}
	$(PY) scripts/bench.py $(call opt,--data-dir,$(DATA_DIR)) $(BENCH_ARGS)
# lab:end
