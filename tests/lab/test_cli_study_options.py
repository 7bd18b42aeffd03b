"""The options the activation study measures with, through the real CLI into the model, the
diagnostics and MLflow: the bad-start network, the textbook loss, and the diagnostics callback's
options."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient

from lab.diagnostics import DiagnosticsCallback
from lab.losses import TextbookLoss
from lab.nets import BadStartMLP
from lab.study.claims import CLAIMS
from lab.study.grid import QUICK_ARGS, Job, command
from tiny_cli import tiny_args

from mnist_lab.cli import main
from mnist_lab.models.classifier import Classifier

STUDY = (
    "--model.net=lab.nets.BadStartMLP",
    "--model.net.init_args.output_gain=20",
    "--model.net.init_args.bias_init=-1",
    "--model.loss=lab.losses.TextbookLoss",
    "--model.loss.init_args.loss=mse",
    "--model.loss.init_args.output=sigmoid",
)


@pytest.mark.slow
def test_bad_start_and_textbook_loss_reach_the_model_the_diagnostics_and_the_checkpoint(
    fake_mnist: Path, tracking_uri: str
) -> None:
    cli = main(
        tiny_args(
            "fit",
            fake_mnist,
            "--trainer.max_epochs=1",
            "--run_test=false",
            "--model.net.init_args.width=32",
            # saturation is measured on sigmoid/tanh units only
            "--model.net.init_args.activation=sigmoid",
            "--model.net.init_args.weight_init=normal",
            "--model.net.init_args.weight_init_args={std: 1.0}",
            *STUDY,
            "--trainer.callbacks+=lab.diagnostics.DiagnosticsCallback",  # lean: not listed
            "--trainer.callbacks.init_args.every_n_steps=2",
            "--data.train_size=300",
        )
    )
    model, trainer = cli.model, cli.trainer
    assert type(model.net) is BadStartMLP and isinstance(model.loss_fn, TextbookLoss)
    assert (model.loss_fn.loss, model.loss_fn.output) == ("mse", "sigmoid")
    # N(0, 1), 5 small steps
    assert model.net.blocks[0].layer.weight.std().item() == pytest.approx(1.0, rel=0.05)
    # N(0, 1) x output_gain
    assert model.net.output.weight.std().item() == pytest.approx(20.0, rel=0.05)
    for block in model.net.blocks:
        torch.testing.assert_close(
            block.layer.bias, torch.full_like(block.layer.bias, -1.0), atol=0.02, rtol=0
        )
    assert trainer.global_step == 5  # ceil(300 / 64)

    diagnostics = [c for c in trainer.callbacks if isinstance(c, DiagnosticsCallback)]
    assert len(diagnostics) == 1 and diagnostics[0].every_n_steps == 2
    client = MlflowClient(tracking_uri)
    steps = [m.step for m in client.get_metric_history(trainer.logger.run_id, "diag/grad_norm/0")]
    assert steps == [0, 2, 4]
    logged = set(client.get_run(trainer.logger.run_id).data.metrics)
    for claim in CLAIMS.values():  # every metric a claim reads back is one a run logs
        for key in claim.metrics:
            # lab.study.probes.StudyDiagnostics's: tests/lab/test_study_units.py
            if key.startswith("study/"):
                continue
            assert any(k == key or (key.endswith("/") and k.startswith(key)) for k in logged), (
                claim.name,
                key,
            )

    loaded = Classifier.load_from_checkpoint(trainer.checkpoint_callback.best_model_path)
    assert type(loaded.net) is BadStartMLP and isinstance(loaded.loss_fn, TextbookLoss)
    assert (loaded.loss_fn.loss, loaded.loss_fn.output) == ("mse", "sigmoid")
    x = torch.randn(2, 1, 28, 28)
    torch.testing.assert_close(loaded.eval()(x), model.eval()(x))


def _resolved(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    """The config the CLI resolves from ``args`` (``fit ... --print_config``)."""
    with pytest.raises(SystemExit) as stop:
        main([*args, "--print_config"])
    out, err = capsys.readouterr()
    assert stop.value.code in (0, None), err
    return yaml.safe_load(out)


def _study_args(claim: str, variant: int, quick: bool) -> list[str]:
    """The command line the study runs for one variant of ``claim``, from ``fit`` on."""
    c = CLAIMS[claim]
    job = Job(c.name, c.variants[variant], 42)
    cmd = command(
        job,
        study_id="s",
        parent_run_id="p",
        experiment="e",
        data_dir="data/",
        claim_args=c.args,
        extra=list(QUICK_ARGS) if quick else [],
    )
    return cmd[cmd.index("fit") :]


@pytest.mark.parametrize(
    ("variant", "loss", "output"),
    [
        (4, "cross_entropy", "softmax"),
        (5, "mse", "softmax"),
        (6, "cross_entropy", "sigmoid"),
        (7, "mse", "sigmoid"),
    ],
)
def test_the_output_loss_claim_builds_each_loss_on_a_saturated_output_under_plain_sgd(
    variant: int, loss: str, output: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _resolved(_study_args("output_loss", variant, quick=False), capsys)
    net, textbook = config["model"]["net"], config["model"]["loss"]
    assert net["class_path"] == "lab.nets.StudyMLP" and net["init_args"]["output_gain"] == 20
    # given before the class: kept when the class changes
    assert net["init_args"]["activation"] == "relu"
    assert textbook == {
        "class_path": "lab.losses.TextbookLoss",
        "init_args": {"loss": loss, "output": output},
    }
    optimizer = config["model"]["optimizer"]
    assert optimizer["class_path"] == "torch.optim.SGD" and optimizer["init_args"]["momentum"] == 0
    assert config["model"]["scheduler"] is None and config["trainer"]["gradient_clip_val"] is None
    diagnostics = config["trainer"]["callbacks"][-1]
    assert diagnostics["class_path"] == "lab.diagnostics.DiagnosticsCallback"
    assert diagnostics["init_args"]["figures"] is False


@pytest.mark.slow  # one CLI parse per configuration of every claim
@pytest.mark.parametrize(
    ("claim", "variant"), [(name, i) for name, c in CLAIMS.items() for i in range(len(c.variants))]
)
def test_every_study_run_parses_and_its_diagnostics_options_reach_the_callback(
    claim: str, variant: int, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _resolved(_study_args(claim, variant, quick=True), capsys)
    # the unit and training claims' measures subclass it
    diagnostics = config["trainer"]["callbacks"][-1]
    assert diagnostics["class_path"] in (
        "lab.diagnostics.DiagnosticsCallback",
        "lab.study.probes.StudyDiagnostics",
    )
    assert (
        diagnostics["init_args"]["every_n_steps"] == 2
        and diagnostics["init_args"]["probe_every_n_steps"] == 2
    )
    assert config["trainer"]["limit_train_batches"] == 6 and config["run_test"] is False


@pytest.mark.subprocess
def test_make_train_diag_false_switches_the_diagnostics_callback_off(
    repo_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    dry = subprocess.run(
        ["make", "-n", "train", "DIAG=false"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in dry.stdout.splitlines() if " -m mnist_lab fit " in line)
    args = shlex.split(line)
    monkeypatch.chdir(repo_root)  # the command's --config paths are relative to the checkout
    config = _resolved(args[args.index("fit") :], capsys)
    diagnostics = config["trainer"]["callbacks"][-1]
    assert diagnostics["class_path"] == "lab.diagnostics.DiagnosticsCallback"
    assert diagnostics["init_args"]["enabled"] is False
