"""``python -m mnist_lab fit|validate|test|predict``: a thin ``LightningCLI`` that tests the best
checkpoint after fit, in the same MLflow run, and resumes ``last | <checkpoint> | <run id>``.
Its defaults are ``configs/defaults.yaml``, then ``configs/net/mlp.yaml``."""

from __future__ import annotations

import importlib
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
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.console import keep_output_harmless
from mnist_lab.errors import ConfigError, TrainingInterrupted, report
from mnist_lab.guards import prepare
from mnist_lab.models.classifier import Classifier
from mnist_lab.recovery import latest_checkpoint, stop_signals
from mnist_lab.run import RunLife
from mnist_lab.tracking.logger import RunLogger, run_logger
from mnist_lab.tracking.run_config import LINKED, LogConfig, linked_targets, run_name

# The checkout's configs/ (an editable install); a package installed alone finds them in the cwd.
HERE = Path(__file__).resolve().parents[2] / "configs"
CONFIG_DIR = next((d for d in (HERE, Path("configs").resolve()) if d.is_dir()), Path("configs"))
DEFAULT_CONFIGS = [CONFIG_DIR / "defaults.yaml", CONFIG_DIR / "net" / "mlp.yaml"]


class OneLineErrors(LightningArgumentParser):
    """``error: <key>: <jsonargparse's innermost reason>``, not a usage dump; exit code 2."""

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if not self.exit_on_error or os.environ.get("JSONARGPARSE_DEBUG"):
            super().error(message, ex)
        raw = [line for line in message.splitlines() if line.strip()] or ["invalid arguments"]
        lines = [line.strip() for line in raw]
        keys = [line[len('Parser key "') : -2] for line in lines if line.startswith('Parser key "')]
        reason = max(raw, key=lambda line: len(line) - len(line.lstrip())).strip(" -")  # innermost
        given = next((line for line in lines if line.startswith("Given value:")), "")
        given = given.split(". Got value:")[0]
        if "required" in reason and not all(f.is_file() for f in DEFAULT_CONFIGS):
            reason += f" (no {DEFAULT_CONFIGS[0]} here: run it in the repository, or give --config)"
        where = ".".join(keys) + ": " if keys else ""
        print(f"error: {where}{reason}{f' ({given})' if given else ''}", file=sys.stderr)
        prog = self.prog.replace(" [options]", "").replace("__main__.py", "python -m mnist_lab")
        print(f"  (see `{prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def build(entry: Any, *args: Any) -> Any:
    """What a ``class_path``/``init_args`` config entry names, built with ``args`` first."""
    module, _, name = entry.class_path.rpartition(".")
    init_args = entry.get("init_args")
    kwargs = init_args.as_dict() if hasattr(init_args, "as_dict") else dict(init_args or {})
    return getattr(importlib.import_module(module), name)(*args, **kwargs)


def check_inputs(subcommand: str, config: Any) -> None:
    """The data's files; for fit, the epochs and the optimiser's and schedule's values."""
    build(config.data).prepare_data()
    if subcommand != "fit":
        return
    epochs, steps = config.trainer.get("max_epochs"), config.trainer.get("max_steps") or -1
    if epochs is not None and (epochs == 0 or epochs < -1 or (epochs == -1 and steps < 1)):
        endless = "or -1, endless, with --trainer.max_steps=<steps>"
        raise ConfigError(f"max_epochs must be at least 1 ({endless}), got {epochs}")
    model = config.model
    if model.get("scheduler_interval") == "epoch" and (epochs is None or epochs < 1):
        raise ConfigError("scheduler_interval=epoch plans over max_epochs: give max_epochs >= 1")
    try:  # built once on a stand-in parameter
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
        parser.add_argument("--run_test", type=bool, default=True, help="After fit, test the best.")
        parser.add_argument(
            "--allow_untrained", type=bool, default=False, help="Evaluate untrained."
        )
        for target, source in LINKED.items():  # what the data is flows into the model and network
            for where in ("model.", "model.net.init_args."):
                parser.link_arguments(f"data.{source}", f"{where}{target}", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then check the seed and turn ``--ckpt_path`` into a checkpoint that fits."""
        super().parse_arguments(parser, args)
        typed = sys.argv[1:] if args is None else args if isinstance(args, list) else []
        self.typed = [str(a) for a in typed]
        if not self.config.get("subcommand"):
            return
        sub, config = self.config.subcommand, self.config[self.config.subcommand]
        seed = config.get("seed_everything")
        if not isinstance(seed, bool) and isinstance(seed, int) and not 0 <= seed < 2**32:
            raise ConfigError(
                f"seed_everything must be in [0, 2**32 - 1] (or true, false), got {seed}"
            )
        if config.get("ckpt_path"):
            prepare(sub, config, self.typed, linked_targets())
        elif sub != "fit" and not config.allow_untrained:
            raise ConfigError(
                f"`{sub}` needs trained weights: give --ckpt_path=<checkpoint | last | run id> "
                "(make: RESUME=...), or --allow_untrained=true to use an untrained network"
            )

    def before_instantiate_classes(self) -> None:
        """Name a new run after the network's arguments; drop the listed progress bar when
        ``--trainer.enable_progress_bar=false`` (Lightning refuses the two together)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        if config.trainer.get("enable_progress_bar") is False:
            bars = [
                c
                for c in config.trainer.callbacks or []
                if str(c.class_path).endswith("ProgressBar")
            ]
            config.trainer.callbacks = [c for c in config.trainer.callbacks or [] if c not in bars]
        logger = config.trainer.get("logger")
        if (
            hasattr(logger, "get")
            and logger.get("init_args")
            and not logger.init_args.get("run_name")
        ):
            net = config.model.get("net")
            logger.init_args.run_name = run_name(net.as_dict() if hasattr(net, "as_dict") else net)

    def instantiate_classes(self) -> None:
        """What can be checked before anything exists comes first: a bad value writes nothing."""
        if self.subcommand:
            check_inputs(self.subcommand, self.config[self.subcommand])
        super().instantiate_classes()

    @contextmanager
    def tracked(self, stage: str, kwargs: dict[str, Any]) -> Iterator[RunLife]:
        """The subcommand's run, from its start to its one end; a stop says how to go on."""
        if kwargs.get("weights_only") is None:  # ours, checked whole: they hold callbacks' states
            kwargs["weights_only"] = False
        logger = run_logger(self.trainer)
        life = logger.life if logger is not None else RunLife(lambda *_: None, resumed=False)
        try:
            with life.spanning(), life.doing(stage):
                yield life
        except TrainingInterrupted as stop:
            raise TrainingInterrupted(stop.signum, stop.forced, self.advice(life, logger)) from None

    def advice(self, life: RunLife, logger: RunLogger | None) -> str:
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
        if made := os.environ.get("TEMPLATE_COMMAND"):
            return f"{made} RESUME={shlex.quote(ref)}" if ref else made
        typed = [a for a in self.typed if not (ref and a.startswith("--ckpt_path"))]
        resume = [f"--ckpt_path={ref}"] if ref else []
        return shlex.join(["python", "-m", "mnist_lab", *typed, *resume])

    def fit(self, model: L.LightningModule, **kwargs: Any) -> None:
        with self.tracked("fit", kwargs) as life:
            self.trainer.fit(model, **kwargs)
            if self.config.fit.run_test and not self.trainer.interrupted:
                best = getattr(self.trainer.checkpoint_callback, "best_model_path", "") or None
                with life.doing("test"):
                    data = kwargs.get("datamodule")
                    results = self.trainer.test(
                        model, datamodule=data, ckpt_path=best, weights_only=False
                    )
                if results and self.trainer.is_global_zero:
                    print(f"test/acc = {results[0]['test/acc']:.4f} (checkpoint: {best})")

    def validate(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked("validate", kwargs):
            return self.trainer.validate(model, **kwargs)

    def test(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked("test", kwargs):
            return self.trainer.test(model, **kwargs)

    def predict(self, model: L.LightningModule, **kwargs: Any) -> Any:
        with self.tracked("predict", kwargs):
            return self.trainer.predict(model, **kwargs)


def not_noise(record: logging.LogRecord) -> bool:
    return not any(text in record.getMessage() for text in ("litlogger", "Pickle or CloudPickle"))


def quiet_library_noise() -> None:
    """Drop what the libraries print on every run that asks nothing of the user: Lightning's advert
    for another logger, MLflow's caution about the pickled model (chosen: see ``tracking.model``),
    and Lightning's use of torch APIs that torch deprecates."""
    for name in ("lightning.pytorch.utilities.rank_zero", "mlflow.pytorch"):
        logging.getLogger(name).addFilter(not_noise)  # the same filter is not added twice
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")


def run() -> None:
    """The ``mnist-lab`` console script."""
    main()


def main(
    args: list[str] | dict[str, Any] | None = None, callbacks: Sequence[Callback] = ()
) -> TemplateCLI:
    """Run the CLI and return it (tests read ``cli.trainer``), or exit as ``errors.report`` says.
    ``callbacks`` join the configured ones without entering the logged config (a sweep's pruning
    callback holds a live Optuna trial, which no config file can name)."""
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
            report(err, quiet=rank_zero_only.rank != 0)  # under DDP each process stops; one says so
