"""The command line: ``python -m mnist_lab fit|validate|test|predict``, a thin ``LightningCLI``.

``main(args)`` is what ``python -m mnist_lab``, ``make train`` and the tests call. The defaults are
``configs/defaults.yaml`` then ``configs/net/mlp.yaml``; every callback the trainer gets is listed
there (``--print_config`` shows them). Mistakes a user can fix (unknown names, bad values, missing
data or checkpoints, an unusable MLflow store) end with one ``error:`` line and exit code 2, before
any run exists; a diverging run ends with exit code 1; SIGINT/SIGTERM with 130/143 after ``last.ckpt``.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import signal
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.checkpoints import (
    SAME_TRAINING,
    check_net_args,
    check_resumable,
    check_same_settings,
    read_checkpoint,
    resolve,
)
from mnist_lab.errors import ConfigError, DivergenceError, RunFault, TemplateError, TrainingInterrupted
from mnist_lab.models.classifier import Classifier
from mnist_lab.recovery import REQUEST, stop_signals
from mnist_lab.tracking.logger import resolve_tracking_uri, run_logger

# The checkout's configs/ (an editable install); a package installed on its own finds them in the working directory.
CONFIG_DIR = next(
    (d for d in (Path(__file__).resolve().parents[2] / "configs", Path("configs").resolve()) if d.is_dir()),
    Path("configs"),
)
DEFAULT_CONFIGS = [CONFIG_DIR / "defaults.yaml", CONFIG_DIR / "net" / "mlp.yaml"]
LINKED = {"num_classes": "num_classes", "input_shape": "image_shape"}  # network/model argument <- data attribute


class OneLineErrors(LightningArgumentParser):
    """``error: <key>: <jsonargparse's innermost reason>``, not a usage dump over 20 lines; exit code 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            super().error(message, ex)
        lines = [line for line in message.splitlines() if line.strip()] or ["invalid arguments"]
        keys = [line.strip()[len('Parser key "') : -2] for line in lines if line.strip().startswith('Parser key "')]
        reason = max(lines, key=lambda line: len(line) - len(line.lstrip())).strip(" -")  # the innermost line
        given = next((line.strip() for line in lines if line.strip().startswith("Given value:")), "")
        given = given.split(". Got value:")[0]
        what = ".".join(keys) + ": " if keys else ""
        if "required" in reason and not all(f.is_file() for f in DEFAULT_CONFIGS):
            reason += f" (no {DEFAULT_CONFIGS[0]} here: run it in the repository, or give --config <file>)"
        sys.stderr.write(f"error: {what}{reason}{f' ({given})' if given else ''}\n")
        prog = self.prog.replace(" [options]", "").replace("__main__.py", "python -m mnist_lab")
        sys.stderr.write(f"  (see `{prog} --help`)\n")
        raise SystemExit(2)


class LogConfig(SaveConfigCallback):
    """LightningCLI's way to send the resolved config to a logger: ``config.yaml`` (re-runnable with
    ``--config``) as an artifact, every value as a param (a resumed run keeps its params: MLflow forbids
    changing one; it gets ``config_resumed.yaml``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is not None:
            config = linked_config(self.config, trainer.datamodule)
            name = "config_resumed.yaml" if logger.resumed else "config.yaml"
            logger.experiment.log_text(logger.run_id, self.parser.dump(config, skip_none=False), name)
            logger.log_hyperparams(config.as_dict())  # MLFlowLogger flattens it: model/net/init_args/...
            logger.experiment.set_tag(logger.run_id, "subcommand", str(getattr(stage, "value", stage)))


def linked_targets(prefix: str = "") -> list[str]:
    """The model's and network's arguments that the data sets when they are built (``LINKED``)."""
    return [f"{prefix}{where}{target}" for target in LINKED for where in ("", "net.init_args.")]


def linked_config(config: Any, datamodule: Any) -> Any:
    """The config with the values the data linked in (a parsed config holds the defaults those replaced)."""
    config = config.clone()
    for key in linked_targets("model."):
        value = getattr(datamodule, LINKED[key.rpartition(".")[2]], None)
        if value is not None and key in config:
            config[key] = value
    return config


def run_name(net: Any) -> str:
    """``mlp-leaky_relu-dropout0.3``: the network's class, then the arguments that differ from its defaults."""
    if not isinstance(net, dict) or "class_path" not in net:
        return "run"
    module, _, name = net["class_path"].rpartition(".")
    defaults = {
        k: p.default for k, p in inspect.signature(getattr(importlib.import_module(module), name)).parameters.items()
    }
    parts = [name.lower()]
    for key, value in (net.get("init_args") or {}).items():
        if key in LINKED or value == defaults.get(key, inspect.Parameter.empty):
            continue
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, bool):
            parts.append(key if value else f"no_{key}")
        elif isinstance(value, (int, float)):
            parts.append(f"{key}{value:g}")
    return "-".join(parts)


class TemplateCLI(LightningCLI):
    """LightningCLI that tests the best checkpoint after fit and resumes ``last | <file> | <run id>``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument("--run_test", type=bool, default=True, help="After fit, test the best checkpoint.")
        parser.add_argument(
            "--allow_untrained", type=bool, default=False, help="validate/test/predict an untrained network."
        )
        for target, source in LINKED.items():  # what the data is flows into the model and its network
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")
            parser.link_arguments(f"data.{source}", f"model.net.init_args.{target}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then turn ``--ckpt_path`` (last | file | run id) into a file, before Lightning reads it."""
        super().parse_arguments(parser, args)
        if not self.config.get("subcommand"):
            return
        config = self.config[self.config.subcommand]
        seed = config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
            raise ConfigError(f"seed_everything must be in [0, 2**32 - 1] (or true, or false), got {seed}")
        typed = [str(a) for a in (args if isinstance(args, (list, tuple)) else sys.argv[1:] if args is None else [])]
        if not config.get("ckpt_path"):
            if self.config.subcommand != "fit" and not config.allow_untrained:
                raise ConfigError(
                    f"`{self.config.subcommand}` needs trained weights: give --ckpt_path=<checkpoint file | last | "
                    "MLflow run id> (make: RESUME=...), or --allow_untrained=true to use an untrained network"
                )
            return
        logger = config.trainer.get("logger")
        logger_args = logger.get("init_args") if hasattr(logger, "get") else None
        uri = resolve_tracking_uri(logger_args.get("tracking_uri") if logger_args else None)
        fit = self.config.subcommand == "fit"
        which = "last" if fit else "best"  # a run id: resume its last, evaluate its best
        experiment = logger_args.get("experiment_name") if fit and logger_args else None  # `last`: its interrupted run
        root = Path(config.trainer.get("default_root_dir") or ".")
        path = resolve(str(config.ckpt_path), root, uri, which, experiment)
        config.ckpt_path = str(path)
        info = read_checkpoint(path)
        if not fit:  # evaluating: the checkpoint's network replaces the config's, unless one was typed
            check_net_args(typed, info)
        else:
            training = {f"trainer/{key}": config.trainer.get(key) for key in SAME_TRAINING}
            if not isinstance(seed, bool):  # true draws a seed: the run's is another
                training["seed_everything"] = seed
            model = config.model.clone()
            for key in linked_targets():  # set from the data when built: the data's own settings are compared
                if key in model:
                    del model[key]
            check_same_settings(model.as_dict(), config.data.as_dict(), training, info, uri)
            scheduler = config.model.get("scheduler")
            check_resumable(info, config.trainer.get("max_epochs"), str(scheduler and scheduler.get("class_path")))
            if logger_args is not None and info.run and info.run.get("tracking_uri") == uri:
                logger_args.run_id = info.run["run_id"]  # continue the checkpoint's MLflow run

    def before_instantiate_classes(self) -> None:
        """Name a new MLflow run after the network's arguments, unless it has a name; drop the listed progress
        bar when ``--trainer.enable_progress_bar=false`` (Lightning refuses the two together)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.get("enable_progress_bar") is False and config.trainer.get("callbacks"):
            bar = [c for c in config.trainer.callbacks if str(c.get("class_path")).endswith("ProgressBar")]
            config.trainer.callbacks = [c for c in config.trainer.callbacks if c not in bar]
        logger = config.trainer.get("logger")
        if hasattr(logger, "get") and logger.get("init_args") is not None and not logger.init_args.get("run_name"):
            net = config.model.get("net")
            logger.init_args.run_name = run_name(net.as_dict() if hasattr(net, "as_dict") else net)

    def _check_inputs(self) -> None:
        """What can be checked before a run exists: the data files, the epochs, the optimiser."""
        self.datamodule.prepare_data()
        if self.subcommand != "fit":
            return
        max_epochs, max_steps = self.trainer.max_epochs, self.trainer.max_steps
        if max_epochs is not None and (max_epochs == 0 or max_epochs < -1 or (max_epochs == -1 and max_steps < 1)):
            raise ConfigError(
                f"max_epochs must be at least 1 (or -1, endless, with --trainer.max_steps=<steps>), got {max_epochs}"
            )
        if self.model.hparams.get("scheduler_interval") == "epoch" and (max_epochs is None or max_epochs < 1):
            raise ConfigError("scheduler_interval=epoch plans the schedule over max_epochs: give max_epochs >= 1")
        try:  # build the optimiser and schedule once on the real parameters, then throw them away
            optimizer = self.model.optimizer_factory(self.model.parameters())
            if self.model.scheduler_factory is not None:
                self.model.scheduler_factory(optimizer)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"the optimiser or schedule rejects its settings: {err}") from None

    before_validate = before_test = before_predict = _check_inputs

    def before_fit(self) -> None:
        self._check_inputs()
        if self.config.fit.run_test and (logger := run_logger(self.trainer)) is not None:
            logger.test_follows = True  # the run ends once, after the test (RunLogger.finalize)

    def after_fit(self) -> None:
        if not self.config.fit.run_test or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else None
        REQUEST.fitted = True  # a signal now cuts only the test short
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        if results and self.trainer.is_global_zero:
            print(f"test/acc = {results[0]['test/acc']:.4f} (checkpoint: {best})")


def _stopped(signum: int, forced: bool, fitted: bool = False) -> SystemExit:
    if rank_zero_only.rank == 0:  # under DDP every process stops; one of them says so
        name = signal.Signals(signum).name
        print(
            f"stopped by {name} during the test: fit had finished and its checkpoints are kept (uploaded with the "
            "run); test them with `python -m mnist_lab test --ckpt_path=<run id>`"
            if fitted
            else f"stopped by {name} outside a training step boundary: no checkpoint was written"
            if forced
            else f"stopped by {name}; resume: the same command with RESUME=last (or RESUME=<run id>)",
            file=sys.stderr,
        )
    return SystemExit(128 + signum)


def _template_error(err: BaseException) -> TemplateError | None:
    """Ours, or ours wrapped by jsonargparse while it instantiated a class."""
    while err is not None and not isinstance(err, TemplateError):
        err = err.__cause__ or err.__context__
    return err


def _not_noise(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in ("litlogger", "Pickle or CloudPickle format"))


def quiet_library_noise() -> None:
    """Drop what the libraries print on every run that asks nothing of the user: Lightning's advert for another
    logger, MLflow's caution about the pickled model (chosen: see ``log_pytorch_model``), and Lightning 2.6's
    own use of a torch API that torch 2.14 deprecates."""
    for name in ("lightning.pytorch.utilities.rank_zero", "mlflow.pytorch"):
        logging.getLogger(name).addFilter(_not_noise)  # the same filter again is not added twice
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def run() -> None:
    """The ``mnist-lab`` console script (its wrapper exits with what the function returns)."""
    main()


def main(args: list[str] | dict[str, Any] | None = None, callbacks: Sequence[Callback] = ()) -> TemplateCLI:
    """Run the CLI and return it (tests read ``cli.trainer``), or exit as the module docstring says.

    ``callbacks`` join the configured ones without entering the logged config (a sweep's pruning
    callback holds a live Optuna trial, which no config file can name).
    """
    files = [str(f) for f in DEFAULT_CONFIGS if f.is_file()]
    quiet_library_noise()
    with stop_signals():
        try:
            cli = TemplateCLI(
                Classifier,
                LightningDataModule,  # any datamodule; configs/defaults.yaml names MNISTDataModule
                subclass_mode_data=True,
                parser_class=OneLineErrors,
                parser_kwargs={name: {"default_config_files": files} for name in TemplateCLI.subcommands()},
                save_config_callback=LogConfig,
                auto_configure_optimizers=False,
                seed_everything_default=42,
                trainer_defaults={"callbacks": list(callbacks)} if callbacks else None,
                args=args,
            )
            logger = run_logger(cli.trainer) if getattr(cli, "trainer", None) is not None else None
            if logger is not None and logger.fault is not None:  # the store failed after training: said already
                raise SystemExit(1)
            return cli
        except TrainingInterrupted as stop:
            raise _stopped(stop.signum, stop.forced, stop.fitted) from None
        except SIGTERMException:
            raise _stopped(signal.SIGTERM, False) from None
        except (TemplateError, ValueError) as err:
            cause = _template_error(err)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            raise SystemExit(1 if isinstance(cause, (DivergenceError, RunFault)) else 2) from None
