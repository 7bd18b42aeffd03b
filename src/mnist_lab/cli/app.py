"""``TemplateCLI``: LightningCLI that fits then tests, resumes runs, and fails in one clear line.

``main(args)`` is what ``python -m mnist_lab`` and the tests call. Mistakes a user can fix
(unknown names, bad values, missing data or checkpoints, an unusable MLflow store) end with one
``error:`` line and exit code 2, before any run is created; a diverging run ends with exit code 1;
SIGINT/SIGTERM end with 130/143 after saving ``last.ckpt``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.callbacks.progress import ProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.trainer import Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from mnist_lab.cli.checkpoint_args import apply_checkpoint
from mnist_lab.cli.config_log import LogConfigToRun
from mnist_lab.cli.defaults import default_parser_kwargs
from mnist_lab.cli.parser import ConciseParser
from mnist_lab.cli.progress import StepRichProgressBar
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.diagnostics import DiagnosticsCallback
from mnist_lab.errors import ConfigError, DivergenceError, TemplateError, TrainingInterrupted
from mnist_lab.models.mnist_module import MNISTClassifier
from mnist_lab.recovery import InterruptCheckpoint, RNGState, StopOnSignal, stop_signals
from mnist_lab.tracking import MLflowRunCallback
from mnist_lab.tracking.predictions import PredictionsCSV
from mnist_lab.tracking.run_info import run_name


class TemplateCLI(LightningCLI):
    """LightningCLI plus ``--run_test`` (test the best checkpoint after fit) and checkpoint-aware runs."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_test", type=bool, default=True, help="After fit, test the best checkpoint on the test set."
        )
        parser.add_argument(
            "--allow_untrained",
            type=bool,
            default=False,
            help="validate/test/predict without --ckpt_path, with the untrained network (on purpose).",
        )
        # Always-present callbacks, tuned with --tracking.* and --diagnostics.* (e.g. --diagnostics.enabled=false).
        parser.add_lightning_class_args(MLflowRunCallback, "tracking")
        parser.add_lightning_class_args(DiagnosticsCallback, "diagnostics")
        # What the data is flows into the model and its network: no MNIST sizes are assumed outside the data.
        for source, target in (
            ("data.num_classes", "model.num_classes"),
            ("data.image_shape", "model.input_shape"),
            ("data.num_classes", "model.net.init_args.num_classes"),
            ("data.image_shape", "model.net.init_args.input_shape"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Parse, then resolve ``--ckpt_path`` (path | last | run id) before Lightning reads it."""
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if subcommand:
            typed: Sequence[str] = args if isinstance(args, (list, tuple)) else (sys.argv[1:] if args is None else [])
            apply_checkpoint(subcommand, self.config[subcommand], [str(a) for a in typed])

    def before_instantiate_classes(self) -> None:
        """Name a new MLflow run after the choices (``mlp-elu-kaiming_normal-bn-do0.25``) unless named."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.trainer.logger
        if isinstance(logger, Namespace) and "init_args" in logger and not logger.init_args.get("run_name"):
            logger.init_args.run_name = run_name(config.model.net.as_dict() if config.model.net else {})

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Add the recovery callbacks (predict: the CSV writer), and Rich's bar unless bars are switched off."""
        config = self._get(self.config_init, "trainer", default={})
        callbacks = list(config.get("callbacks") or [])
        callbacks += [StopOnSignal(), RNGState(), InterruptCheckpoint()]
        if self.subcommand == "predict":  # every callback costs a few microseconds per hook per step
            callbacks.append(PredictionsCSV())
        if config.get("logger") is False:  # nothing to log the learning rate to (Lightning would refuse)
            callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
        wants_bar = config.get("enable_progress_bar") is not False
        if wants_bar and not any(isinstance(c, ProgressBar) for c in callbacks):
            callbacks.append(StepRichProgressBar(refresh_rate=5))  # redraws a second; Lightning's 100 cost CPU
        return super().instantiate_trainer(**{**kwargs, "callbacks": callbacks})

    def _check_inputs(self) -> None:
        """Everything that can be checked before a run exists: data files, epochs, the optimiser."""
        self.datamodule.prepare_data()
        if self.subcommand != "fit":
            return
        max_epochs = self.trainer.max_epochs
        if max_epochs is not None and (max_epochs == 0 or max_epochs < -1):
            raise ConfigError(f"max_epochs must be at least 1 (or -1 with max_steps), got {max_epochs}")
        if self.model.hparams.get("scheduler_interval") == "epoch" and (max_epochs is None or max_epochs < 1):
            raise ConfigError("scheduler_interval=epoch plans the schedule over max_epochs: give max_epochs >= 1")
        try:  # build the optimiser and schedule once on the real parameters, then throw them away
            optimizer = self.model.optimizer_factory(self.model.parameters())
            if self.model.scheduler_factory is not None:
                self.model.scheduler_factory(optimizer)
        except TemplateError:
            raise
        except (ValueError, TypeError) as err:
            raise ConfigError(f"the optimiser or schedule rejects its settings: {err}") from None

    before_fit = before_validate = before_test = before_predict = _check_inputs

    def after_fit(self) -> None:
        if not self.config.fit.run_test or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else None
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        if results and self.trainer.is_global_zero:
            print(f"test/acc = {results[0]['test/acc']:.4f} (checkpoint: {best})")


def _template_cause(err: BaseException) -> TemplateError | None:
    """jsonargparse wraps errors raised while it instantiates classes; find ours inside."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, TemplateError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _stopped(signum: int, forced: bool) -> SystemExit:
    name = signal.Signals(signum).name
    if rank_zero_only.rank != 0:  # under DDP every process stops; one of them says so
        return SystemExit(128 + signum)
    if forced:
        print(f"stopped by {name} outside a training step boundary: no checkpoint was written", file=sys.stderr)
    else:
        print(f"stopped by {name}; resume with `make train RESUME=last` (or RESUME=<run id>)", file=sys.stderr)
    return SystemExit(128 + signum)


def main(args: list[str] | dict[str, Any] | None = None, callbacks: Sequence[Callback] = ()) -> TemplateCLI | None:
    """Run the CLI; return it (tests read ``cli.trainer``), or exit non-zero as the module docstring says.

    ``callbacks`` join the trainer's without entering the logged config (a sweep's pruning callback
    holds a live Optuna trial, which no config file can name).
    """
    with stop_signals():
        try:
            return TemplateCLI(
                MNISTClassifier,
                MNISTDataModule,
                subclass_mode_data=True,  # --data takes any LightningDataModule (MNISTDataModule by default)
                save_config_callback=LogConfigToRun,
                save_config_kwargs={"overwrite": True},
                parser_class=ConciseParser,
                parser_kwargs=default_parser_kwargs(TemplateCLI.subcommands()),
                auto_configure_optimizers=False,
                seed_everything_default=42,
                trainer_defaults={"callbacks": list(callbacks)} if callbacks else None,
                args=args,
            )
        except TrainingInterrupted as stop:
            raise _stopped(stop.signum, stop.forced) from None
        except SIGTERMException:
            raise _stopped(signal.SIGTERM, False) from None
        except TemplateError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1 if isinstance(err, DivergenceError) else 2) from None
        except ValueError as err:
            cause = _template_cause(err)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            raise SystemExit(2) from None


__all__ = ["TemplateCLI", "main"]
