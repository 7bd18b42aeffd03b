"""``python -m mnist_lab fit|validate|test|predict``: a thin ``LightningCLI`` that tests the best
checkpoint after fit, in the same MLflow run, and resumes ``last | <checkpoint> | <run id>``.

Its defaults are ``configs/defaults.yaml`` then ``configs/net/mlp.yaml``; every callback the trainer
gets is listed there. How a command ends is :func:`mnist_lab.errors.report`'s: one line and an exit
code.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import lightning as L
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.console import keep_output_harmless
from mnist_lab.errors import ConfigError, TrainingInterrupted, report
from mnist_lab.models.classifier import Classifier
from mnist_lab.names import LAST, resolve_tracking_uri
from mnist_lab.recovery import latest_checkpoint, stop_signals
from mnist_lab.resume import (
    SAME_TRAINING,
    check_net_args,
    check_resumable,
    check_same_settings,
    read_checkpoint,
    resolve,
)
from mnist_lab.run import RunLife
from mnist_lab.tracking.logger import RunLogger, run_logger

# The checkout's configs/ (an editable install); a package installed alone finds them in the cwd.
CONFIG_DIR = next(
    (
        d
        for d in (Path(__file__).resolve().parents[2] / "configs", Path("configs").resolve())
        if d.is_dir()
    ),
    Path("configs"),
)
DEFAULT_CONFIGS = [CONFIG_DIR / "defaults.yaml", CONFIG_DIR / "net" / "mlp.yaml"]
LINKED = {"num_classes": "num_classes", "input_shape": "image_shape"}  # model argument <- data's


class OneLineErrors(LightningArgumentParser):
    """``error: <key>: <jsonargparse's innermost reason>``, not a 20-line usage dump; exit code 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            super().error(message, ex)
        lines = [line.strip() for line in message.splitlines() if line.strip()] or [
            "invalid arguments"
        ]
        keys = [line[len('Parser key "') : -2] for line in lines if line.startswith('Parser key "')]
        indent = {line.strip(): len(line) - len(line.lstrip()) for line in message.splitlines()}
        reason = max(lines, key=lambda line: indent.get(line, 0)).strip(" -")  # the innermost line
        given = next((line for line in lines if line.startswith("Given value:")), "")
        given = given.split(". Got value:")[0]
        what = ".".join(keys) + ": " if keys else ""
        if "required" in reason and not all(f.is_file() for f in DEFAULT_CONFIGS):
            reason += f" (no {DEFAULT_CONFIGS[0]} here: run it in the repository, or give --config)"
        prog = self.prog.replace(" [options]", "").replace("__main__.py", "python -m mnist_lab")
        print(f"error: {what}{reason}{f' ({given})' if given else ''}", file=sys.stderr)
        print(f"  (see `{prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


class LogConfig(SaveConfigCallback):
    """LightningCLI's way to give a logger the resolved config: ``config.yaml`` (re-runnable with
    ``--config``) as an artifact, every value as a param, made for comparing runs (below). A resumed
    run keeps its params (MLflow forbids changing one) and gets ``config_resumed.yaml``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "save_to_log_dir": False})

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        logger = run_logger(trainer)
        if logger is None:
            return
        config = effective_config(self.config, trainer.datamodule, pl_module)
        name = "config_resumed.yaml" if logger.resumed else "config.yaml"
        logger.experiment.log_text(logger.run_id, self.parser.dump(config, skip_none=False), name)
        logger.log_hyperparams(params_of(config.as_dict()))
        logger.experiment.set_tag(logger.run_id, "subcommand", str(getattr(stage, "value", stage)))


def linked_targets(prefix: str = "") -> list[str]:
    """The model's and network's arguments that the data sets when they are built (``LINKED``)."""
    return [f"{prefix}{where}{target}" for target in LINKED for where in ("", "net.init_args.")]


def effective_config(config: Any, datamodule: Any, model: Any) -> Any:
    """The config as the run trained: the values the data linked in (a parsed config holds the
    defaults they replaced), and the network's activation and init arguments, defaults included."""
    config = config.clone()
    for key in linked_targets("model."):
        value = getattr(datamodule, LINKED[key.rpartition(".")[2]], None)
        if value is not None and key in config:
            config[key] = value
    effective = getattr(getattr(model, "net", None), "effective_args", None)
    for key, value in (effective() if callable(effective) else {}).items():
        if f"model.net.init_args.{key}" in config:
            config[f"model.net.init_args.{key}"] = value
    return config


def params_of(config: dict[str, Any]) -> dict[str, Any]:
    """Callbacks and plugins keyed by their class, not their place in the list, so adding one does
    not rename the others' params (a second of a class is ``<Class>_2``)."""
    trainer = dict(config.get("trainer") or {})
    for key in ("callbacks", "plugins"):
        if isinstance(trainer.get(key), list):
            keyed: dict[str, Any] = {}
            for entry in trainer[key]:
                name = (
                    str(entry.get("class_path", "")).rpartition(".")[2]
                    if isinstance(entry, dict)
                    else str(entry)
                )
                count = sum(k == name or k.startswith(f"{name}_") for k in keyed)
                keyed[f"{name}_{count + 1}" if count else name] = (entry or {}).get(
                    "init_args"
                ) or {}
            trainer[key] = keyed
    return {**config, "trainer": trainer}


def run_name(net: Any) -> str:
    """``mlp-leaky_relu-dropout0.3``: the network's class, then its arguments off their defaults."""
    if not isinstance(net, dict) or "class_path" not in net:
        return "run"
    module, _, name = net["class_path"].rpartition(".")
    signature = inspect.signature(getattr(importlib.import_module(module), name))
    defaults = {k: p.default for k, p in signature.parameters.items()}
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


def build(entry: Any, *args: Any) -> Any:
    """The object a ``class_path``/``init_args`` config entry names, built with ``args`` first."""
    module, _, name = entry.class_path.rpartition(".")
    init_args = entry.get("init_args")
    kwargs = init_args.as_dict() if hasattr(init_args, "as_dict") else dict(init_args or {})
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def check_inputs(subcommand: str, config: Any) -> None:
    """The data's files, and for fit the epochs and the optimiser's and schedule's settings."""
    build(config.data).prepare_data()
    if subcommand != "fit":
        return
    max_epochs, max_steps = config.trainer.get("max_epochs"), config.trainer.get("max_steps") or -1
    if max_epochs is not None and (
        max_epochs == 0 or max_epochs < -1 or (max_epochs == -1 and max_steps < 1)
    ):
        raise ConfigError(
            f"max_epochs must be at least 1 (or -1, endless, with --trainer.max_steps=<steps>), got {max_epochs}"
        )
    model = config.model
    if model.get("scheduler_interval") == "epoch" and (max_epochs is None or max_epochs < 1):
        raise ConfigError(
            "scheduler_interval=epoch plans the schedule over max_epochs: give max_epochs >= 1"
        )
    try:  # build them once on a stand-in parameter
        optimizer = (
            build(model.optimizer, [torch.nn.Parameter(torch.zeros(1))])
            if model.get("optimizer")
            else None
        )
        if optimizer is not None and model.get("scheduler"):
            build(model.scheduler, optimizer)
    except (ValueError, TypeError) as err:
        raise ConfigError(f"the optimiser or schedule rejects its settings: {err}") from None


class TemplateCLI(LightningCLI):
    """LightningCLI whose ``fit`` tests the best checkpoint after it, in one run, and whose
    ``--ckpt_path`` takes ``last``, a file, a run id or ``models:/<name>@<alias>``."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_test", type=bool, default=True, help="After fit, test the best checkpoint."
        )
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="validate/test/predict an untrained network.",
        )
        for (
            target,
            source,
        ) in LINKED.items():  # what the data is flows into the model and its network
            parser.link_arguments(f"data.{source}", f"model.{target}", apply_on="instantiate")
            parser.link_arguments(
                f"data.{source}", f"model.net.init_args.{target}", apply_on="instantiate"
            )

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then turn ``--ckpt_path`` into a checkpoint file and check it fits the command."""
        super().parse_arguments(parser, args)
        self.typed = [
            str(a)
            for a in (sys.argv[1:] if args is None else args if isinstance(args, list) else [])
        ]
        if not self.config.get("subcommand"):
            return
        sub, config = self.config.subcommand, self.config[self.config.subcommand]
        seed = config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
            raise ConfigError(
                f"seed_everything must be in [0, 2**32 - 1] (or true, or false), got {seed}"
            )
        if not config.get("ckpt_path"):
            if sub != "fit" and not config.allow_untrained:
                raise ConfigError(
                    f"`{sub}` needs trained weights: give --ckpt_path=<checkpoint file | last | MLflow run "
                    "id> (make: RESUME=...), or --allow_untrained=true to use an untrained network"
                )
            return
        logger = config.trainer.get("logger")
        logger_args = logger.get("init_args") if hasattr(logger, "get") else None
        uri = resolve_tracking_uri(logger_args.get("tracking_uri") if logger_args else None)
        experiment = logger_args.get("experiment_name") if sub == "fit" and logger_args else None
        root = Path(config.trainer.get("default_root_dir") or ".")
        path = resolve(
            str(config.ckpt_path), root, uri, LAST if sub == "fit" else "best", experiment
        )
        config.ckpt_path = str(path)
        info = read_checkpoint(path)
        if sub != "fit":  # evaluating: the checkpoint's network replaces the config's
            check_net_args(self.typed, info)
            return
        training = {f"trainer/{key}": config.trainer.get(key) for key in SAME_TRAINING}
        if not isinstance(seed, bool):  # true draws a seed: the run's is another
            training["seed_everything"] = seed
        model = config.model.clone()
        for (
            key
        ) in linked_targets():  # set from the data when built: the data's settings are compared
            if key in model:
                del model[key]
        params, status = check_same_settings(
            model.as_dict(), config.data.as_dict(), training, info, uri
        )
        scheduler = config.model.get("scheduler")
        schedule = str(scheduler and scheduler.get("class_path"))
        check_resumable(
            info, config.trainer.get("max_epochs"), schedule, tested=status == "FINISHED"
        )
        if logger_args is not None and info.run and info.run.get("tracking_uri") == uri:
            logger_args.run_id = info.run["run_id"]  # continue the checkpoint's MLflow run

    def before_instantiate_classes(self) -> None:
        """Name a new MLflow run after the network's arguments; drop the listed progress bar when
        ``--trainer.enable_progress_bar=false`` (Lightning refuses the two together)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        callbacks = config.trainer.get("callbacks") or []
        if config.trainer.get("enable_progress_bar") is False:
            config.trainer.callbacks = [
                c for c in callbacks if not str(c.get("class_path")).endswith("ProgressBar")
            ]
        logger = config.trainer.get("logger")
        if (
            hasattr(logger, "get")
            and logger.get("init_args") is not None
            and not logger.init_args.get("run_name")
        ):
            net = config.model.get("net")
            logger.init_args.run_name = run_name(net.as_dict() if hasattr(net, "as_dict") else net)

    def instantiate_classes(self) -> None:
        """First what can be checked before anything exists (so a bad value writes nothing, not
        even a store): the data files, the epochs, the optimiser and schedule's values."""
        if self.subcommand:
            check_inputs(self.subcommand, self.config[self.subcommand])
        super().instantiate_classes()

    @contextmanager
    def tracked(self) -> Iterator[RunLife]:
        """The subcommand's run, from its start to its one end; a stop says how to go on."""
        logger = run_logger(self.trainer)
        life = (
            logger.life
            if logger is not None
            else RunLife(lambda status, error: None, resumed=False)
        )
        try:
            with life.spanning():
                yield life
        except TrainingInterrupted as stop:
            raise TrainingInterrupted(
                stop.signum, stop.forced, self.advice(stop, life, logger)
            ) from None

    def advice(self, stop: TrainingInterrupted, life: RunLife, logger: RunLogger | None) -> str:
        """The command that goes on from a stop, as the user typed theirs (make's, through make)."""
        if self.subcommand != "fit":  # an evaluation leaves nothing to go on from
            return f"run it again: {self.again()}"
        latest = latest_checkpoint(self.trainer)
        saved = latest is not None and Path(latest.best_model_path or "/nonexistent").is_file()
        if life.stage != "test" and not saved:
            return f"no checkpoint was written: start again with {self.again()}"
        ref = logger.run_id if logger is not None else latest.best_model_path
        what = "fit had finished; test it" if life.stage == "test" else "resume"
        return f"{what}: {self.again(ref)}"

    def again(self, ref: str | None = None) -> str:
        """This command again, continuing ``ref`` if given: the Makefile's (``TEMPLATE_COMMAND``)
        with ``RESUME=``, or the Python command line with ``--ckpt_path``."""
        made = os.environ.get("TEMPLATE_COMMAND")
        if made:
            return f"{made} RESUME={shlex.quote(ref)}" if ref else made
        typed = [a for a in self.typed if not (ref and a.startswith("--ckpt_path"))]
        return shlex.join(
            ["python", "-m", "mnist_lab", *typed, *([f"--ckpt_path={ref}"] if ref else [])]
        )

    def fit(self, model: L.LightningModule, **kwargs: Any) -> None:
        with self.tracked() as life:
            with life.doing("fit"):
                self.trainer.fit(model, **kwargs)
            if self.config.fit.run_test and not self.trainer.interrupted:
                best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or None
                with life.doing("test"):
                    results = self.trainer.test(
                        model, datamodule=kwargs.get("datamodule"), ckpt_path=best
                    )
                if results and self.trainer.is_global_zero:
                    print(f"test/acc = {results[0]['test/acc']:.4f} (checkpoint: {best})")

    def validate(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked() as life, life.doing("validate"):
            return self.trainer.validate(model, **kwargs)

    def test(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked() as life, life.doing("test"):
            return self.trainer.test(model, **kwargs)

    def predict(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked() as life, life.doing("predict"):
            return self.trainer.predict(model, **kwargs)


def not_noise(record: logging.LogRecord) -> bool:
    return not any(
        text in record.getMessage() for text in ("litlogger", "Pickle or CloudPickle format")
    )


def quiet_library_noise() -> None:
    """Drop what the libraries print on every run that asks nothing of the user: Lightning's advert
    for another logger, MLflow's caution about the pickled model (chosen: see ``tracking.model``),
    and Lightning's own use of torch APIs that torch deprecates."""
    for name in ("lightning.pytorch.utilities.rank_zero", "mlflow.pytorch"):
        logging.getLogger(name).addFilter(not_noise)  # the same filter again is not added twice
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
    warnings.filterwarnings(
        "ignore", message=r"You are using `torch.load` with `weights_only=False`"
    )


def run() -> None:
    """The ``mnist-lab`` console script."""
    main()


def main(
    args: list[str] | dict[str, Any] | None = None, callbacks: Sequence[Callback] = ()
) -> TemplateCLI:
    """Run the CLI and return it (tests read ``cli.trainer``), or exit as ``errors.report`` says.

    ``callbacks`` join the configured ones without entering the logged config (a sweep's pruning
    callback holds a live Optuna trial, which no config file can name).
    """
    keep_output_harmless()
    quiet_library_noise()
    files = [str(f) for f in DEFAULT_CONFIGS if f.is_file()]
    with stop_signals():
        try:
            return TemplateCLI(
                Classifier,
                LightningDataModule,  # any datamodule; configs/defaults.yaml names MNISTDataModule
                subclass_mode_data=True,
                parser_class=OneLineErrors,
                parser_kwargs={
                    name: {"default_config_files": files} for name in TemplateCLI.subcommands()
                },
                save_config_callback=LogConfig,
                auto_configure_optimizers=False,
                seed_everything_default=42,
                trainer_defaults={"callbacks": list(callbacks)} if callbacks else None,
                args=args,
            )
        except (Exception, TrainingInterrupted) as err:
            report(
                err, quiet=rank_zero_only.rank != 0
            )  # under DDP every process stops; one says so
