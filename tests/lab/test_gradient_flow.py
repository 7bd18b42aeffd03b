"""The gradient-flow diagnostics and the study network's options: measured on real networks, against
autograd."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from mlflow import MlflowClient
from torch import nn

from lab.diagnostics import DiagnosticsCallback
from lab.diagnostics.flow import PreactGrads, UpdateCosine, row_cosine
from lab.nets import Shifted, StudyMLP

from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.errors import ConfigError
from mnist_lab.models.classifier import Classifier
from mnist_lab.tracking import RunLogger


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _batch(n: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(n, 1, 28, 28), torch.randint(0, 10, (n,))


def _preact(net: StudyMLP) -> list[float]:
    recorder = PreactGrads()
    recorder.attach(net)
    x, y = _batch()
    F.cross_entropy(net(x), y).backward()
    norms = recorder.norms()
    recorder.detach()
    return norms


def test_preact_grads_are_each_examples_gradient_wrt_the_layers_output() -> None:
    net = StudyMLP(depth=2, width=16, activation="tanh", weight_init="xavier_uniform")
    x, y = _batch(8)
    z: list[torch.Tensor] = []
    handles = [
        layer.register_forward_hook(lambda m, i, o: z.append(o))
        for layer in (*[b.layer for b in net.blocks], net.output)
    ]
    recorder = PreactGrads()
    recorder.attach(net)
    logits = net(x)
    for h in handles:
        h.remove()
    loss = F.cross_entropy(logits, y)
    grads = torch.autograd.grad(loss, z, retain_graph=True)
    loss.backward()
    expected = [float(g.norm(dim=1).mean() * len(y)) for g in grads]
    assert recorder.norms() == pytest.approx(expected, rel=1e-5)
    recorder.detach()
    assert not recorder.attached and recorder.norms() == []
    net.zero_grad()
    F.cross_entropy(net(x), y).backward()  # detached: nothing recorded
    assert recorder.norms() == []


def test_deep_sigmoid_preact_gradient_shrinks_and_relu_he_x4_gain_and_bn_keep_more_of_it() -> None:
    def ratio(**kwargs) -> float:
        norms = _preact(StudyMLP(depth=8, width=128, **kwargs))
        return norms[0] / norms[-2]

    sigmoid = ratio(activation="sigmoid", weight_init="xavier_uniform")
    assert sigmoid < 1e-3  # 7 layers of slope <= 1/4
    assert ratio(activation="relu", weight_init="kaiming_normal") > 100 * sigmoid
    assert (
        ratio(activation="sigmoid", weight_init="xavier_uniform", hidden_gain=4.0) > 100 * sigmoid
    )
    assert (
        ratio(activation="sigmoid", weight_init="xavier_uniform", batch_norm=True) > 100 * sigmoid
    )


def test_row_cosine_is_per_unit_and_skips_units_that_did_not_move() -> None:
    a = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[-1.0, -1.0], [1.0, 0.0], [3.0, 1.0]])
    # -1 and +1; the third unit did not move in a
    assert row_cosine(a, b) == pytest.approx(0.0, abs=1e-6)
    assert row_cosine(a, -a) == pytest.approx(-1.0)
    assert torch.isnan(torch.tensor(row_cosine(torch.zeros(2, 2), b[:2])))


def test_update_cosine_pairs_step_s_with_step_s_plus_1_every_n_steps() -> None:
    net = StudyMLP(depth=1, width=4)
    tracker, logged = UpdateCosine(every=3), {}
    for step in range(7):
        tracker.before(step, net)
        with torch.no_grad():  # an update that reverses every step: a perfect zig-zag
            for layer in (net.blocks[0].layer, net.output):
                layer.weight.add_((-1) ** step * torch.ones_like(layer.weight))
        result = tracker.after(step, net)
        if result is not None:
            logged[step] = result
    assert sorted(logged) == [1, 4]  # pairs (0, 1) and (3, 4)
    assert all(c == pytest.approx(-1.0) for cosines in logged.values() for c in cosines)


def test_study_mlp_gain_output_init_and_shift_change_only_what_they_name() -> None:
    torch.manual_seed(1)
    plain = StudyMLP(depth=2, width=32, activation="sigmoid", weight_init="xavier_uniform")
    torch.manual_seed(1)
    x4 = StudyMLP(
        depth=2, width=32, activation="sigmoid", weight_init="xavier_uniform", hidden_gain=4.0
    )
    for a, b in zip(plain.blocks, x4.blocks, strict=True):
        assert torch.allclose(4 * a.layer.weight, b.layer.weight)
    assert torch.equal(plain.output.weight, x4.output.weight)

    wide = StudyMLP(
        depth=2,
        width=256,
        weight_init="normal",
        weight_init_args={"std": 3.0},
        output_init="xavier_uniform",
    )
    assert float(wide.blocks[1].layer.weight.std()) == pytest.approx(3.0, rel=0.05)
    bound = (6 / (256 + 10)) ** 0.5  # Xavier uniform at gain 1
    assert wide.output.weight.abs().max() <= bound and float(
        wide.output.weight.std()
    ) == pytest.approx(bound / 3**0.5, rel=0.1)

    shifted = StudyMLP(depth=1, width=8, activation="tanh", act_shift=1.0)
    act = shifted.blocks[0].act
    assert isinstance(act, Shifted) and isinstance(act.inner, nn.Tanh)
    z = torch.linspace(-3, 3, 13, requires_grad=True)
    (slope,) = torch.autograd.grad(act(z).sum(), z)
    assert torch.allclose(act(z), torch.tanh(z) + 1) and torch.allclose(
        slope, 1 - torch.tanh(z) ** 2
    )
    with pytest.raises(ConfigError, match="hidden_gain"):
        StudyMLP(depth=1, width=8, hidden_gain=float("nan"))
    with pytest.raises(ConfigError, match="unknown init"):
        StudyMLP(depth=1, width=8, output_init="nope")


def test_callback_logs_preact_gradients_and_update_cosines(
    fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    logger = RunLogger(
        experiment_name="flow",
        tracking_uri=tracking_uri,
        artifact_location=(tmp_path / "a").as_uri(),
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[DiagnosticsCallback(every_n_steps=3, probe_size=100, figures=False)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=tmp_path,
    )
    net = StudyMLP(depth=2, width=16, activation="tanh", weight_init="xavier_uniform")
    model = Classifier(net, optimizer=lambda p: torch.optim.SGD(p, lr=0.1), scheduler=None)
    # 16 steps
    trainer.fit(model, datamodule=MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64))
    client = MlflowClient(tracking_uri)
    preact = client.get_metric_history(logger.run_id, "diag/preact_grad/0")
    assert [m.step for m in preact] == [0, 3, 6, 9, 12, 15] and all(m.value > 0 for m in preact)
    assert {f"diag/preact_grad/{i}" for i in range(3)} <= set(
        client.get_run(logger.run_id).data.metrics
    )
    cosines = client.get_metric_history(logger.run_id, "diag/update_cos/1")
    assert [m.step for m in cosines] == [1, 4, 7, 10, 13] and all(
        -1 <= m.value <= 1 for m in cosines
    )
