"""The diagnostic facts measured on real networks, plus the callback's metrics in a real MLflow
run."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient

from lab.diagnostics import (
    DiagnosticsCallback,
    activation_stats,
    grad_norms,
    grad_sign_agreement,
    mode_gap,
)
from lab.diagnostics.probes import BlockNetwork, sign_agreement
from lab.nets import BadStartCNN, BadStartMLP

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import CNN, MLP
from mnist_lab.tracking import RunLogger


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _batch(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))


def _ratio_at_init(**kwargs) -> float:
    net = MLP(depth=8, width=128, **kwargs)
    x, y = _batch()
    F.cross_entropy(net(x), y).backward()
    norms = grad_norms(net)
    return norms[0] / norms[-1]


def test_deep_sigmoid_gradients_vanish_and_relu_kaiming_does_not() -> None:
    sigmoid = _ratio_at_init(activation="sigmoid", weight_init="default")
    relu = _ratio_at_init(activation="relu", weight_init="kaiming_normal")
    assert sigmoid < 0.1
    assert relu > 0.1 and relu > 100 * sigmoid


def test_strongly_negative_bias_kills_relu_units_but_not_leaky_relu() -> None:
    x, _ = _batch()
    dead = {}
    for act in ("relu", "leaky_relu", "elu"):
        net = BadStartMLP(depth=1, width=64, activation=act, bias_init=-10.0)  # ~7 std below zero
        dead[act] = activation_stats(net, x)[0].dead_frac
    assert dead == {"relu": 1.0, "leaky_relu": 0.0, "elu": 0.0}


def test_zero_init_keeps_every_unit_identical_after_training_steps() -> None:
    for act in ("sigmoid", "tanh"):
        net = MLP(depth=2, width=32, activation=act, weight_init="zeros")
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        for _ in range(10):
            x, y = _batch(64)
            opt.zero_grad()
            F.cross_entropy(net(x), y).backward()
            opt.step()
        assert [s.distinct_units for s in activation_stats(net, _batch()[0])] == [1, 1]
    kaiming = MLP(depth=2, width=32, weight_init="kaiming_normal")
    assert [s.distinct_units for s in activation_stats(kaiming, _batch()[0])] == [32, 32]


def test_means_and_saturation_follow_the_activation() -> None:
    x, _ = _batch()
    mean = {
        a: activation_stats(MLP(depth=1, width=256, activation=a), x)[0].mean
        for a in ("sigmoid", "tanh", "relu", "elu")
    }
    assert mean["sigmoid"] > 0.3 and abs(mean["tanh"]) < 0.05
    assert abs(mean["elu"]) < abs(mean["relu"])
    saturated = MLP(
        depth=1, width=64, activation="sigmoid", weight_init="normal", weight_init_args={"std": 1.0}
    )
    assert activation_stats(saturated, x * 3)[0].saturation > 0.5
    assert activation_stats(MLP(depth=1, width=64, activation="relu"), x)[0].saturation is None


def test_grad_sign_agreement_is_one_after_sigmoid_and_near_half_after_tanh() -> None:
    # One example: the weight gradient's row j is delta_j * inputs, so its signs are the inputs'
    # signs (times one sign): all alike after a sigmoid, random after tanh on random inputs.
    x, y = _batch(1)
    agreement = {}
    for act in ("sigmoid", "tanh"):
        net = MLP(depth=2, width=128, activation=act, weight_init="xavier_uniform")
        F.cross_entropy(net(x), y).backward()
        agreement[act] = grad_sign_agreement(net)
    # fed by sigmoid outputs: hidden layer 1 and the output
    assert agreement["sigmoid"][1:] == [1.0, 1.0]
    assert all(0.5 <= a < 0.6 for a in agreement["tanh"])  # the first layer's inputs are random too
    net = MLP(depth=2, width=128, activation="tanh", weight_init="xavier_uniform")
    F.cross_entropy(net(_batch(64)[0]), _batch(64)[1]).backward()
    assert all(0.5 <= a < 0.7 for a in grad_sign_agreement(net))


def test_sign_agreement_counts_per_unit_flattens_filters_and_ignores_zeros() -> None:
    grad = torch.zeros(3, 2, 2, 2)  # conv: out_channels x (in_channels x kh x kw)
    grad[0] = 1.0  # every weight into unit 0 moves up: 1
    # half up, half down: 0.5; unit 2 has no gradient and is left out
    grad[1, 0], grad[1, 1] = 2.0, -0.5
    assert float(sign_agreement(grad)) == pytest.approx(0.75)
    grad[1, 1, 0, 0] = 0.0  # 4 up, 3 down of 7 nonzero
    assert float(sign_agreement(grad)) == pytest.approx((1 + 4 / 7) / 2)
    assert torch.isnan(sign_agreement(torch.zeros(4, 5)))  # a step activation's gradient: undefined
    # no backward yet: NaN
    assert all(math.isnan(a) for a in grad_sign_agreement(MLP(depth=1, width=8)))


def test_probes_leave_modes_running_stats_and_rng_untouched() -> None:
    net = CNN(dropout=0.5, batch_norm=True).train()
    x, y = _batch(32)
    buffers = [b.clone() for b in net.buffers()]
    rng = torch.get_rng_state()
    mode_gap(net, x, y)
    activation_stats(net, x)
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers(), strict=True))
    assert torch.equal(rng, torch.get_rng_state())


@pytest.mark.slow
def test_callback_logs_every_diag_metric_and_figures(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    uri = tracking_uri
    logger = RunLogger(
        experiment_name="diag", tracking_uri=uri, artifact_location=(tmp_path / "a").as_uri()
    )
    trainer = L.Trainer(
        max_epochs=2,
        logger=logger,
        callbacks=[DiagnosticsCallback(every_n_steps=4, probe_size=100)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    model = Classifier(MLP(depth=2, width=16, activation="tanh", dropout=0.3, batch_norm=True))
    trainer.fit(model, datamodule=MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64))
    client = MlflowClient(uri)
    metrics = client.get_run(logger.run_id).data.metrics
    for i in range(3):
        assert f"diag/grad_norm/{i}" in metrics
        assert 0.5 <= metrics[f"diag/grad_sign_agreement/{i}"] <= 1.0
    for i in range(2):
        for name in ("saturation", "dead_frac", "act_mean", "act_std", "distinct_units"):
            assert f"diag/{name}/{i}" in metrics
    assert {"diag/mode_gap/train_acc", "diag/mode_gap/eval_acc", "diag/mode_gap/gap"} <= set(
        metrics
    )
    steps = [m.step for m in client.get_metric_history(logger.run_id, "diag/grad_norm/0")]
    assert steps[0] == 0 and steps == sorted(set(steps)) and all(s % 4 == 0 for s in steps)
    assert [
        m.step for m in client.get_metric_history(logger.run_id, "diag/grad_sign_agreement/2")
    ] == steps
    figures = {a.path for a in client.list_artifacts(logger.run_id, "diagnostics")}
    assert figures == {
        "diagnostics/grad_norm_by_depth.png",
        "diagnostics/activation_histograms.png",
    }


def test_callback_can_be_switched_off(fake_mnist: Path, tmp_path: Path, tracking_uri: str) -> None:
    uri = tracking_uri
    logger = RunLogger(
        experiment_name="nodiag", tracking_uri=uri, artifact_location=(tmp_path / "a").as_uri()
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[DiagnosticsCallback(enabled=False)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(
        Classifier(MLP(depth=1, width=8)), datamodule=MNISTDataModule(str(fake_mnist), val_size=200)
    )
    assert not [
        k for k in MlflowClient(uri).get_run(logger.run_id).data.metrics if k.startswith("diag/")
    ]


def test_the_diagnostics_run_on_any_network_with_blocks_and_output_and_only_on_those() -> None:
    callback = DiagnosticsCallback()
    for net in (MLP(depth=1, width=8), CNN(), BadStartMLP(depth=1, width=8), BadStartCNN()):
        assert isinstance(net, BlockNetwork)
    assert callback._active(Classifier(MLP(depth=1, width=8)))
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    assert not isinstance(plain, BlockNetwork)
    assert not callback._active(Classifier(plain))
