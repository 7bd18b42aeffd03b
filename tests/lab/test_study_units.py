"""The unit and training claims' own measurements: dead units by one rule, He's factor, symmetry,
their checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from torch import nn

from lab.nets import SchemeMLP
from lab.study.claims import CLAIMS, Check, Claim, Column, group
from lab.study.claims.conditions import at_best, per_layer, recovered, steps_to
from lab.study.probes import _Kept, init_signal, unit_slopes, unit_spread
from lab.study.results import RunRecord

from mnist_lab.errors import ConfigError
from mnist_lab.tracking.nesting import PARENT_TAG


def images(n: int = 2000) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def dead_fraction(net: nn.Module, threshold: float = 1e-3) -> list[float]:
    slopes, _ = unit_slopes(net, images())
    return [float((s < threshold).float().mean()) for s in slopes]


@pytest.mark.parametrize(
    ("activation", "bias", "dead"),
    [
        ("relu", 0.0, False),
        ("relu", -50.0, True),  # negative on every image: no slope anywhere
        ("leaky_relu", -50.0, False),  # slope 0.01 everywhere: the same rule cannot call it dead
        ("elu", -50.0, True),  # exp(-50): the slope of a saturated ELU
        ("softplus", -50.0, True),  # sigmoid(-50): "never exactly zero" is still below 1e-3
        ("relu6", 50.0, True),  # above 6 on every image: ReLU6's flat top
        ("relu6", 0.0, False),
    ],
)
def test_one_dead_unit_rule_judges_every_activation_by_its_largest_slope(
    activation: str, bias: float, dead: bool
) -> None:
    net = SchemeMLP(depth=2, width=16, activation=activation)
    with torch.no_grad():
        net.blocks[0].layer.bias[:4] = bias  # four units of the first layer pushed far to one side
    assert dead_fraction(net)[0] == (0.25 if dead else 0.0)


def test_unit_spread_is_zero_under_zero_init_symmetry_and_large_otherwise() -> None:
    x = images()
    assert unit_spread(
        SchemeMLP(depth=2, width=32, activation="sigmoid", weight_init="zeros"), x
    ) == [0.0, 0.0]
    assert (
        min(
            unit_spread(
                SchemeMLP(depth=2, width=32, activation="sigmoid", weight_init="xavier_normal"), x
            )
        )
        > 0.5
    )


def test_he_keeps_relu_signal_through_depth_and_xavier_halves_its_variance_per_layer() -> None:
    torch.manual_seed(0)
    x, y = images(1000), torch.randint(0, 10, (1000,))
    factors = {}
    for scheme in ("xavier", "he"):
        net = SchemeMLP(depth=20, width=256, activation="relu", hidden_init=scheme)
        stds, grads = init_signal(net, nn.CrossEntropyLoss(), x, y)
        assert len(stds) == len(grads) == 20
        factors[scheme] = (stds[-1] / stds[0]) ** (1 / 19), (grads[0] / grads[-1]) ** (1 / 19)
    assert factors["xavier"][0] == pytest.approx(0.5**0.5, abs=0.02)
    assert factors["xavier"][1] == pytest.approx(0.5**0.5, abs=0.03)
    assert factors["he"][0] == pytest.approx(1.0, abs=0.02)


def test_study_mlp_checks_its_options_and_sets_batch_norm_momentum() -> None:
    with pytest.raises(ConfigError, match="hidden_init"):
        SchemeMLP(hidden_init="glorot")
    with pytest.raises(ConfigError, match="bn_momentum"):
        SchemeMLP(bn_momentum=0.0)
    net = SchemeMLP(depth=2, width=8, batch_norm=True, bn_momentum=0.01)
    assert [b.norm.momentum for b in net.blocks] == [0.01, 0.01]


def test_measuring_leaves_modes_buffers_gradients_and_the_rng_as_they_were() -> None:
    net = SchemeMLP(depth=2, width=8, batch_norm=True, dropout=0.5).train()
    net(images(64)).sum().backward()
    grads = [p.grad.clone() for p in net.parameters()]
    buffers = [b.clone() for b in net.buffers()]
    state = torch.random.get_rng_state()
    with _Kept(net):
        init_signal(net, nn.CrossEntropyLoss(), images(64), torch.zeros(64, dtype=torch.long))
        torch.rand(3)
    assert net.training and all(m.training for m in net.modules())
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, net.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(buffers, net.buffers(), strict=True))
    assert torch.equal(state, torch.random.get_rng_state())


def record(variant: str, seed: int, history: dict[str, list[tuple[int, float]]]) -> RunRecord:
    final = {k: v[-1][1] for k, v in history.items()}
    return RunRecord("c", variant, seed, "FINISHED", final, history)


def test_steps_to_a_threshold_count_runs_never_reaching_it_best_epoch_follows_val_loss() -> None:
    reached = record("a", 1, {"val/acc": [(20, 0.9), (40, 0.96), (60, 0.97)]})
    never = record("a", 2, {"val/acc": [(20, 0.9), (40, 0.94)]})
    assert steps_to("val/acc", 0.95, 220)(reached) == 40.0
    assert steps_to("val/acc", 0.95, 220)(never) == 220.0
    run = record(
        "a",
        1,
        {"val/loss": [(1, 0.5), (2, 0.3), (3, 0.4)], "val/acc": [(1, 0.8), (2, 0.85), (3, 0.9)]},
    )
    assert at_best("val/acc")(run) == 0.85
    deep = record(
        "a",
        1,
        {
            "study/act_std/0": [(0, 1.0)],
            "study/act_std/1": [(0, 0.5)],
            "study/act_std/2": [(0, 0.25)],
        },
    )
    assert per_layer("study/act_std/")(deep) == pytest.approx(0.5)
    assert per_layer("study/act_std/", down=True)(deep) == pytest.approx(2.0)
    units = {
        "study/revived/0": [(200, 0.1)],
        "study/ever_dead/0": [(200, 0.3)],
        "study/revived/1": [(200, 0.0)],
    }
    assert recovered(record("a", 1, {**units, "study/ever_dead/1": [(200, 0.1)]})) == pytest.approx(
        0.25
    )
    assert (
        recovered(
            record("a", 1, {"study/revived/0": [(200, 0.0)], "study/ever_dead/0": [(200, 0.0)]})
        )
        is None
    )


def level_claim(margin: float | None, lower: bool = False) -> Claim:
    return Claim(
        "c",
        "t",
        "s",
        "m",
        (),
        (Column("x", lambda r: r.last("x")),),
        (),
        (Check(0, "a", "0", level=0.0, margin=margin, lower=lower),),
    )


def test_a_check_against_a_level_holds_fails_or_is_equivalent_from_the_numbers() -> None:
    near = [
        record("a", s, {"x": [(0, v)]}) for s, v in enumerate([0.001, -0.002, 0.0, 0.002, -0.001])
    ]
    far = [record("a", s, {"x": [(0, v)]}) for s, v in enumerate([0.30, 0.32, 0.29, 0.31, 0.33])]
    assert level_claim(0.02).verdict(group(near)).label == "holds"  # within ±0.02 of 0
    assert level_claim(0.02).verdict(group(far)).label == "does not hold"  # beyond the margin
    # above 0, not below
    assert level_claim(None, lower=True).verdict(group(far)).label == "does not hold"
    assert level_claim(None).verdict(group(far)).label == "holds"


def test_every_unit_and_training_claim_checks_named_configurations_and_says_conditions() -> None:
    for name in ("dead_relus", "init", "dropout", "batch_norm", "relu_variants"):
        claim = CLAIMS[name]
        names = {v.name for v in claim.variants}
        for check in claim.checks:
            assert check.better in names and (check.level is not None or check.worse in names), (
                name,
                check,
            )
            assert check.says
        for word in ("SGD", "lr", "clipping", "batch"):
            assert word in claim.measured or word in claim.statement, (name, word)


@pytest.mark.subprocess
def test_the_study_callback_logs_dead_revived_and_eval_mode_training_accuracy_in_quick_runs(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    from quick_study import run_quick

    from lab.study.grid import Job

    client = MlflowClient(tracking_uri)
    picks = [
        ("dead_relus", 1),
        ("init", 0),
        ("dropout", 2),
        ("batch_norm", 6),
        ("relu_variants", 3),
    ]
    jobs = [Job(name, CLAIMS[name].variants[i], 42) for name, i in picks]
    experiment, parent = run_quick(client, jobs, CLAIMS, fake_mnist, tmp_path / "logs")
    runs = client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'")
    metrics = {r.data.tags["study.claim"]: r.data.metrics for r in runs}
    assert {r.info.status for r in runs} == {"FINISHED"}
    dead = metrics["dead_relus"]
    assert {
        "study/dead/0",
        "study/revived/3",
        "study/ever_dead/3",
        "study/negative/0",
        "study/unit_spread/0",
    } <= set(dead)
    assert "study/act_std/19" in metrics["init"] and "study/preact_grad/0" in metrics["init"]
    assert 0.0 <= metrics["dropout"]["study/train_eval_acc"] <= 1.0
    assert "diag/mode_gap/gap" in metrics["batch_norm"]
    history = client.get_metric_history(
        [r for r in runs if r.data.tags["study.claim"] == "dead_relus"][0].info.run_id,
        "study/dead/0",
    )
    assert [m.step for m in history][0] == 0 and len(history) >= 2  # at init and after the updates


def test_a_diverged_run_counts_as_the_column_says_and_the_caption_names_the_verdict() -> None:
    claim = Claim(
        "c",
        "t",
        "s",
        "m",
        (),
        (
            Column("steps", lambda r: r.last("x"), failed=220.0),
            Column("plain", lambda r: r.last("x")),
        ),
        (),
        (Check(0, "a", "b", lower=True),),
        caption="Fewer steps: {c0}.",
    )
    runs = [record("a", s, {"x": [(0, v)]}) for s, v in enumerate([40.0, 60.0, 50.0])]
    failed = RunRecord("c", "b", 9, "FAILED", {"x": 10.0}, {"x": [(0, 10.0)]})
    stopped = RunRecord("c", "b", 8, "KILLED", {"x": 10.0}, {"x": [(0, 10.0)]})
    groups = group([*runs, record("b", 1, {"x": [(0, 200.0)]}), failed, stopped])
    # the diverged run never got there; the stopped one is out
    assert claim.stat(groups, "b", 0).values == (
        200.0,
        220.0,
    )
    # a column without ``failed`` leaves it out
    assert claim.stat(groups, "b", 1).values == (200.0,)
    verdict = claim.verdict(groups)
    assert claim.caption_for(verdict) == f"Fewer steps: {verdict.outcomes[0].label}."
