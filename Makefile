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
RESUME     ?=#                continue a run: last (the newest KILLED/FAILED one) | <checkpoint path> | <MLflow run id>; `make sweep RESUME=1`: the study
ARGS       ?=#                any further LightningCLI arguments (given last, so they win)
PORT       ?= 5000#           port of `make ui` and `make serve`
RUN        ?=#                `make serve`/`register`/`export`: an MLflow run id (serve: or MODEL=models:/<name>@champion)
CKPT       ?=#                `make predict`: a checkpoint file or an MLflow run id
INPUT      ?=#                `make predict`: an image file (PNG/JPG) or a folder of them
OUT        ?=#                `make predict`: the CSV to write (default outputs/image_predictions.csv)
NAME       ?=#                `make rename`: the new package name, e.g. digit_lab; `make sweep`: the study name
QUICK      ?=#                `make sweep QUICK=1`: a few tiny trials
JOBS       ?=#                `make sweep`: parallel processes
SWEEP      ?= configs/sweeps/mlp.yaml#  `make sweep`: the sweep file (search space, base args, n_trials)
TRIALS     ?=#                `make sweep`: n_trials, the complete + pruned trials the study should hold
STORAGE    ?=#                `make sweep`: Optuna storage URL (default sqlite:///mlruns/optuna.db)
STUDY      ?=#                `make register STUDY=<sweep study>`: register that sweep's best trial (its best checkpoint)

# The CLI loads configs/defaults.yaml and configs/net/mlp.yaml itself; then, in this order, the
# network, its recipe, the presets, the variables and ARGS: the later wins, so a variable beats a preset.
MODELS := $(basename $(notdir $(wildcard configs/net/*.yaml)))
PRESETS := $(filter-out defaults,$(basename $(notdir $(wildcard configs/*.yaml))))
MLP_ONLY := DEPTH WIDTH
preset_net = $(shell sed -n 's/^\# network: *//p' configs/$(1).yaml)#  a preset's `# network: <model>` line, if any
MODEL := $(strip $(MODEL))
CONFIG := configs/net/$(MODEL).yaml
RECIPE := $(wildcard configs/recipes/$(MODEL).yaml)#  how that network trains, if it has its own recipe
NET := --model.net.init_args
opt = $(if $(strip $(2)),$(1)=$(strip $(2)))
TRAIN_ARGS = --config $(CONFIG) $(if $(RECIPE),--config $(RECIPE)) \
	$(foreach p,$(PRESET),--config configs/$(p).yaml) \
	$(call opt,$(NET).activation,$(ACT)) \
	$(if $(strip $(ACT_ARGS)),'$(NET).activation_args=$(strip $(ACT_ARGS))') \
	$(call opt,$(NET).weight_init,$(INIT)) \
	$(if $(strip $(INIT_ARGS)),'$(NET).weight_init_args=$(strip $(INIT_ARGS))') \
	$(call opt,$(NET).dropout,$(DROPOUT)) \
	$(call opt,$(NET).batch_norm,$(BN)) \
	$(call opt,$(NET).depth,$(DEPTH)) \
	$(call opt,$(NET).width,$(WIDTH)) \
	$(call opt,--trainer.max_epochs,$(EPOCHS)) \
	$(call opt,--model.optimizer.init_args.lr,$(LR)) \
	$(call opt,--data.batch_size,$(BATCH)) \
	$(call opt,--seed_everything,$(SEED)) \
	$(call opt,--data.data_dir,$(DATA_DIR)) \
	$(call opt,--data.dataset,$(DATASET)) \
	$(call opt,--trainer.logger.init_args.experiment_name,$(EXPERIMENT)) \
	$(call opt,--ckpt_path,$(RESUME)) \
	$(LAB_ARGS) $(ARGS)

.PHONY: help install check-model train fit-only runs-clean ui serve predict test test-fast lint format rename sweep clean

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
	@$(if $(filter $(MODEL),$(MODELS)),true,echo "error: unknown MODEL '$(MODEL)'; choose one of: $(MODELS)" >&2; exit 2)
	@$(foreach p,$(PRESET),$(if $(filter $(p),$(PRESETS)),,echo "error: unknown PRESET '$(p)'; choose from: $(PRESETS)" >&2; exit 2;)) true
	@$(foreach p,$(filter $(PRESETS),$(PRESET)),$(if $(filter-out $(MODEL),$(call preset_net,$(p))),echo "error: PRESET=$(p) is for MODEL=$(call preset_net,$(p)) (MODEL=$(MODEL))" >&2; exit 2;)) true
	@$(foreach v,$(MLP_ONLY),$(if $(and $(strip $($(v))),$(filter-out mlp,$(MODEL))),echo "error: $(v) applies to MODEL=mlp only (MODEL=$(MODEL))" >&2; exit 2;)) true

train: check-model ## Fit (MNIST unless DATASET=), then test the best checkpoint (one MLflow run)
	$(PY) -m mnist_lab fit $(TRAIN_ARGS)

fit-only: check-model ## Fit without the final test
	$(PY) -m mnist_lab fit $(TRAIN_ARGS) --run_test=false

fashion-data: ## Fashion-MNIST into DATA_DIR/FashionMNIST/raw from Debian's package (no internet needed)
	scripts/get_fashion_mnist.sh "$(DATA_DIR)"

.PHONY: check-port
check-port:  # a busy PORT is one error line, not a traceback (serve) or an exit code 0 (ui)
	@$(PY) -c 'import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
		s.bind(("127.0.0.1", int("$(PORT)")))' 2>/dev/null \
		|| { echo "error: cannot listen on port $(PORT) (in use?): choose another with PORT=, e.g. PORT=5001" >&2; exit 2; }

runs-clean: ## Mark KILLED the RUNNING runs whose process on this host is gone (kill -9, out of memory)
	@$(PY) -m mnist_lab.stale

# MLflow 3's server also starts a job runner for its GenAI features (8 processes, about 1.7 GB and 30 s of CPU),
# which nothing here uses: off unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION=true is set.
NO_JOBS := MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}
ui: check-port runs-clean ## Serve the MLflow UI over mlruns/ on PORT (default 5000)
	$(NO_JOBS) $(VENV)/bin/mlflow server --host 127.0.0.1 --port $(PORT) \
		--backend-store-uri "$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		--artifacts-destination mlruns/artifacts

serve: check-port ## Serve a run's logged model over REST: make serve RUN=<run id> [PORT=5000]
	@uri=$$(MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		$(PY) -m mnist_lab.checkpoints "$(or $(RUN),$(filter models:/%,$(MODEL)))") && \
	PATH="$(abspath $(VENV))/bin:$$PATH" MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		$(VENV)/bin/mlflow models serve -m "$$uri" --env-manager local -h 127.0.0.1 -p $(PORT)

predict: ## Classify digit images: make predict CKPT=<checkpoint or run id> INPUT=<image or folder> [OUT=csv]
	@test -n "$(CKPT)" -a -n "$(INPUT)" || { echo "error: make predict CKPT=<checkpoint or run id> INPUT=<image or folder>" >&2; exit 2; }
	@MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		$(PY) -m mnist_lab.predict "$(CKPT)" "$(INPUT)" $(call opt,--out,$(OUT))

sweep: ## Optuna sweep of SWEEP, trials as child MLflow runs (TRIALS=, JOBS=, RESUME=1, STORAGE=, NAME=, QUICK=1)
	$(PY) scripts/sweep.py --sweep=$(SWEEP) $(call opt,--trials,$(TRIALS)) $(call opt,--jobs,$(JOBS)) \
		$(if $(strip $(RESUME)),--resume) $(call opt,--storage,$(STORAGE)) $(call opt,--name,$(NAME)) \
		$(if $(QUICK),--quick) $(call opt,--data-dir,$(DATA_DIR)) $(call opt,--experiment,$(EXPERIMENT)) \
		$(if $(strip $(ARGS)),-- $(ARGS))

.PHONY: register export team-up team-down
team-up: ## PostgreSQL + mlflow server here, on free ports (.team/); eval "$(make -s team-up)" points targets there
	@PY=$(PY) scripts/team.sh up

team-down: ## Stop what team-up started (its data stays in .team/)
	@PY=$(PY) scripts/team.sh down

register: ## A run's model -> next version of NAME (mnist-classifier), alias @champion: RUN=<id> or STUDY=<sweep>
	@MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		$(PY) -m mnist_lab.registry $(RUN) $(call opt,--sweep,$(STUDY)) $(call opt,--name,$(NAME))

export: ## A run's best network -> outputs/onnx/<id>/model.onnx, logged to it, checked on test data: make export RUN=<id>
	@MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///mlruns/mlflow.db}" \
		$(PY) -m mnist_lab.export "$(RUN)" $(call opt,--data-dir,$(DATA_DIR))

TEST_JOBS ?= 2#  `make test`: pytest-xdist processes (1: one process, in order)
test: ## The whole test suite, TEST_JOBS processes (real-MNIST tests need DATA_DIR)
	DATA_DIR=$(DATA_DIR) $(PY) -m pytest -q $(if $(filter-out 1,$(TEST_JOBS)),-n $(TEST_JOBS))

test-fast: ## Tests that start no process or server and need no real MNIST (about a minute in all)
	$(PY) -m pytest -q -m "not slow and not subprocess and not server and not browser"

LINTED := src tests scripts

lint: ## Check lint, formatting and import direction (ruff, import-linter); CI runs it
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports

format: ## Format, then fix what ruff can fix
	$(VENV)/bin/ruff format $(LINTED)
	$(VENV)/bin/ruff check --fix $(LINTED)

rename: ## Rename the package, its imports, configs and docs: make rename NAME=<new_package>
	@test -n "$(NAME)" || { echo "error: give the new package name: make rename NAME=<new_package>" >&2; exit 2; }
	$(PYTHON_SYS) scripts/rename.py "$(NAME)"

clean: ## Remove outputs/ and caches (keeps mlruns/)
	rm -rf outputs .pytest_cache .ruff_cache

# lab:begin  (make drop-lab deletes this block) -----------------------------------------------------
## Variables of the lab's targets
DIAG       ?=#                `make train DIAG=false`: no diagnostics (the last callback of configs/defaults.yaml)
SEEDS      ?=#                `make compare`: seeds per configuration, 42, 43, ... (default 5; QUICK: 1)
CLAIM      ?=#                `make compare`: claims to run (default all), e.g. CLAIM='saturation init'; `--claim` lists them
REPORT     ?=#                `make compare`: where the report goes (default reports/activation_study.md; QUICK: outputs/study/)
BENCH_ARGS ?=#                `make bench`: e.g. BENCH_ARGS='--quick' or '--models mlp --threads 1'
LAB_ARGS = $(call opt,--trainer.callbacks.init_args.enabled,$(DIAG))

.PHONY: compare bench drop-lab
drop-lab: ## Remove the lab (study, diagnostics, bench) from a fork: src/lab, its configs, scripts, reports, tests, docs
	$(PYTHON_SYS) scripts/drop_lab.py

compare: ## The study: each claim's grid x SEEDS, nested MLflow runs -> reports/activation_study.md (CLAIM=, QUICK=1, JOBS=)
	$(PY) scripts/activation_study.py $(if $(QUICK),--quick) $(call opt,--seeds,$(SEEDS)) \
		$(if $(strip $(CLAIM)),--claim $(strip $(CLAIM))) $(call opt,--jobs,$(JOBS)) \
		$(call opt,--data-dir,$(DATA_DIR)) $(call opt,--out,$(REPORT)) $(if $(strip $(ARGS)),-- $(ARGS))

bench: ## Per-epoch time: hand loop, Lightning floor, template lean/default, torchvision -> reports/bench.{json,md}
	$(PY) scripts/bench.py $(call opt,--data-dir,$(DATA_DIR)) $(BENCH_ARGS)
# lab:end
