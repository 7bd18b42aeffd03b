"""The command line: a thin ``LightningCLI`` that fits, then tests the best checkpoint.

``main(args)`` is what ``python -m mnist_lab`` and the tests call. Mistakes a user can fix
(unknown names, bad values, missing or corrupt data) end with one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.diagnostics import DiagnosticsCallback
from mnist_lab.errors import TemplateError
from mnist_lab.models.mnist_module import MNISTClassifier
from mnist_lab.tracking import MLflowRunCallback, run_logger
from mnist_lab.tracking.run_info import flatten_config, run_name


class TemplateCLI(LightningCLI):
    """LightningCLI plus ``--run_test``: after ``fit``, test the best checkpoint in the same process."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--run_test", type=bool, default=True, help="After fit, test the best checkpoint on the test set."
        )
        # Always-present callbacks, tuned with --tracking.* and --diagnostics.* (e.g. --diagnostics.enabled=false).
        parser.add_lightning_class_args(MLflowRunCallback, "tracking")
        parser.add_lightning_class_args(DiagnosticsCallback, "diagnostics")

    def before_instantiate_classes(self) -> None:
        """Name the MLflow run after the choices (``mlp-elu-kaiming_normal-bn-do0.25``) unless named."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        logger = config.trainer.logger
        if isinstance(logger, Namespace) and "init_args" in logger and not logger.init_args.get("run_name"):
            logger.init_args.run_name = run_name(config.model.net.as_dict() if config.model.net else {})

    def _begin_run(self) -> None:
        """Check the data first (nothing is written on bad input), then record the resolved config."""
        self.datamodule.prepare_data()
        logger = run_logger(self.trainer)
        if logger is None:
            return
        parser = self._parser(self.subcommand)
        text = parser.dump(self.config[self.subcommand], skip_none=False)
        logger.experiment.log_text(logger.run_id, text, "config.yaml")
        logger.log_hyperparams(flatten_config(yaml.safe_load(text)))
        logger.experiment.set_tag(logger.run_id, "subcommand", self.subcommand)

    before_fit = before_validate = before_test = before_predict = _begin_run

    def after_fit(self) -> None:
        if not self.config.fit.run_test or self.trainer.interrupted:
            return
        checkpoint = self.trainer.checkpoint_callback
        best = "best" if isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path else None
        results = self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best)
        if results:
            print(f"test/acc = {results[0]['test/acc']:.4f} (checkpoint: {best and checkpoint.best_model_path})")

    def after_predict(self) -> None:
        """Write the test-set predictions as CSV (index, label, probability per class), and log it to the run."""
        batches = self.trainer.predict_loop.predictions
        if not batches:
            return
        probs = torch.cat([b.cpu() for b in batches])
        out = Path(self.trainer.default_root_dir) / "predictions.csv"
        out.parent.mkdir(parents=True, exist_ok=True)
        header = "index,label," + ",".join(f"p{k}" for k in range(probs.shape[1]))
        rows = (f"{i},{int(p.argmax())}," + ",".join(f"{v:.6f}" for v in p.tolist()) for i, p in enumerate(probs))
        out.write_text("\n".join([header, *rows]) + "\n")
        logger = run_logger(self.trainer)
        if logger is not None:
            logger.experiment.log_artifact(logger.run_id, str(out))
        print(f"wrote {len(probs)} predictions to {out}")


def main(args: list[str] | dict[str, Any] | None = None) -> TemplateCLI | None:
    """Run the CLI; return it (tests read ``cli.trainer``), or exit 2 on a user error."""
    try:
        return TemplateCLI(
            MNISTClassifier,
            MNISTDataModule,
            save_config_callback=None,
            auto_configure_optimizers=False,
            seed_everything_default=42,
            args=args,
        )
    except TemplateError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as err:
        # jsonargparse wraps errors raised while it instantiates classes; unwrap ours.
        cause = _template_cause(err)
        if cause is None:
            raise
        print(f"error: {cause}", file=sys.stderr)
        raise SystemExit(2) from None


def _template_cause(err: BaseException) -> TemplateError | None:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, TemplateError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


__all__ = ["TemplateCLI", "main"]
