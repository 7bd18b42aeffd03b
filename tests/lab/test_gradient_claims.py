"""The depth and gradient claims: their measures, their verdicts from numbers, and the interaction
test."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.study.claims import CLAIMS, group
from lab.study.claims import curves as cv
from lab.study.claims.gradients import (
    OUTPUT_LOSS,
    SATURATION,
    VANISHING,
    ZIGZAG,
    gap_name,
    out,
    sigma,
)
from lab.study.claims.overview import OVERVIEW, RELU, identity
from lab.study.grid import QUICK_ARGS, sgd
from lab.study.results import RunRecord


def run(
    claim: str,
    variant: str,
    seed: int,
    val: list[tuple[int, float]],
    **history: list[tuple[int, float]],
) -> RunRecord:
    keys = {k.replace("__", "/"): v for k, v in history.items()}
    hist = {"val/acc": val, **keys}
    return RunRecord(
        claim, variant, seed, "FINISHED", {k: v[-1][1] for k, v in hist.items() if v}, hist
    )


def test_steps_to_counts_a_run_that_never_got_there_as_zero_speed_not_as_a_missing_number() -> None:
    reached = run("c", "v", 42, [(24, 0.5), (49, 0.85), (74, 0.9)])
    never = run("c", "v", 43, [(24, 0.5), (49, 0.6)])
    assert cv.steps_to(0.8)(reached) == 50 and cv.steps_to(0.8)(never) is None
    assert cv.speed_to(0.8)(reached) == pytest.approx(20.0) and cv.speed_to(0.8)(never) == 0.0
    assert cv.speed_to(0.8)(run("c", "v", 44, [])) is None  # no validation at all: no number
    assert cv.settled_acc(2)(reached) == pytest.approx(0.875) and cv.acc_drift(1)(
        reached
    ) == pytest.approx(0.05)
    assert cv.acc_drift(3)(never) is None


def test_the_zeros_make_the_speed_check_a_count_of_runs_that_got_there() -> None:
    a, b = out("softmax", "CE", 20), out("softmax", "MSE", 20)
    fast = [run(OUTPUT_LOSS.name, a, 42 + k, [(24, 0.5), (49 + k, 0.85)]) for k in range(5)]
    slow = [run(OUTPUT_LOSS.name, b, 42 + k, [(24, 0.2), (599, 0.5)]) for k in range(5)]
    outcome = OUTPUT_LOSS.outcomes(group(fast + slow))[0]
    assert outcome.comparison is not None and outcome.comparison.test.startswith(
        "counted: 5/5 vs 0/5"
    )
    assert outcome.comparison.p_value == pytest.approx(0.0079, abs=1e-4)


def test_the_interaction_compares_per_seed_gaps_between_gain_20_and_gain_1() -> None:
    records = []
    for k in range(5):
        for gain, mse in ((1, 0.90), (20, 0.40)):  # MSE far behind only when the output saturates
            records.append(
                run(OUTPUT_LOSS.name, out("softmax", "CE", gain), 42 + k, [(599, 0.92 + 0.001 * k)])
            )
            records.append(
                run(OUTPUT_LOSS.name, out("softmax", "MSE", gain), 42 + k, [(599, mse + 0.002 * k)])
            )
    groups = group(records)
    gap20 = OUTPUT_LOSS.stat(groups, gap_name("softmax", 20), 0)
    assert gap20 is not None and gap20.n == 5 and gap20.mean == pytest.approx(0.52 - 0.002)
    assert OUTPUT_LOSS.stat(groups, gap_name("softmax", 1), 0).mean == pytest.approx(0.02 - 0.002)
    check = next(
        o for o in OUTPUT_LOSS.verdict(groups).outcomes if o.check.better == gap_name("softmax", 20)
    )
    assert check.label == "holds"
    assert OUTPUT_LOSS.stat({}, gap_name("sigmoid", 1), 0) is None


def test_identity_depth_is_judged_by_equivalence_and_a_real_gap_reads_does_not_hold() -> None:
    def runs(variant: str, centre: float) -> list[RunRecord]:
        return [
            run(OVERVIEW.name, variant, 42 + k, [(499, centre + 0.0005 * (k - 2))] * 3)
            for k in range(5)
        ]

    same = [r for v in OVERVIEW.variants for r in runs(v.name, 0.95 if v.name == RELU else 0.90)]
    verdict = OVERVIEW.verdict(group(same))
    assert verdict.label == "holds" and all(
        "TOST, margin ±0.003" in line for line in verdict.lines[:4]
    )
    deeper = [
        r
        for v in OVERVIEW.variants
        for r in runs(v.name, 0.95 if v.name in (RELU, identity(8)) else 0.90)
    ]
    labels = [o.label for o in OVERVIEW.verdict(group(deeper)).outcomes]
    assert labels == ["holds", "holds", "holds", "does not hold", "holds"]


def test_vanishing_verdicts_come_from_preact_ratios_on_log10_and_the_caption_says_them() -> None:
    def runs(variant: str, ratio: float) -> list[RunRecord]:
        out = []
        # layer 0's gradient over layer 7's (the last hidden one); layer 8 is the logits
        for k in range(5):
            first = ratio * (1 + 0.2 * k)
            grads = {f"diag__preact_grad__{i}": [(0, 1.0), (350, 1.0)] for i in range(1, 9)}
            grads["diag__preact_grad__0"] = [(0, first), (350, first)]
            out.append(run(VANISHING.name, variant, 42 + k, [(399, 0.9 + 0.001 * k)], **grads))
        return out

    records = [
        r
        for v in VANISHING.variants
        for r in runs(v.name, 1e-5 if v.name == "sigmoid, Xavier" else 0.5)
    ]
    verdict = VANISHING.verdict(group(records))
    assert [o.label for o in verdict.outcomes[:5]] == ["holds"] * 5
    assert "Welch on log10" in verdict.lines[0]
    assert "inconclusive" in VANISHING.caption_for(verdict) and "{c" not in VANISHING.caption_for(
        verdict
    )


def test_every_gradient_claim_trains_under_plain_sgd_for_a_fixed_step_count_and_says_so() -> None:
    for claim in (OVERVIEW, VANISHING, SATURATION, OUTPUT_LOSS, ZIGZAG):
        assert CLAIMS[claim.name] is claim
        assert set(sgd(0.1)[3:]) <= set(claim.args)  # no weight decay, no schedule, no clipping
        assert any(a.startswith("--trainer.max_steps=") for a in claim.args)
        for word in ("SGD", "learning rate", "no clipping", "batch", "steps", "training images"):
            assert word in claim.measured, (claim.name, word)
        assert claim.caption and all(
            f"{{c{i}}}" not in claim.caption for i in range(len(claim.checks), 20)
        )
    assert "momentum 0.9" in OVERVIEW.measured and "no momentum" in VANISHING.measured
    # quick mode validates once an epoch: a claim validating every N steps still gets its numbers
    assert QUICK_ARGS.index("--trainer.val_check_interval=1.0") >= 0


def test_saturation_varies_the_hidden_init_only_and_zigzag_only_the_centring() -> None:
    normal = next(v for v in SATURATION.variants if v.name == sigma(1))
    assert "--model.net.init_args.output_init=xavier_uniform" in normal.overrides
    assert "--model.net.init_args.weight_init_args={std: 1}" in normal.overrides
    pairs = {v.name: v.overrides for v in ZIGZAG.variants}
    tanh, shifted = pairs["tanh, lr 0.2"], pairs["tanh + 1, lr 0.2"]
    assert [o for o in shifted if o not in tanh] == ["--model.net.init_args.act_shift=1"]


@pytest.mark.subprocess
def test_each_gradient_claim_runs_in_quick_mode_and_its_columns_read_numbers_back_from_mlflow(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from quick_study import TINY, run_quick

    from lab.study.grid import Job
    from lab.study.results import collect

    from mnist_lab.tracking.nesting import PARENT_TAG

    client = MlflowClient(tracking_uri)
    claims = {c.name: c for c in (OVERVIEW, VANISHING, SATURATION, OUTPUT_LOSS, ZIGZAG)}
    picks = {
        OVERVIEW.name: -1,
        VANISHING.name: 0,
        SATURATION.name: 3,
        OUTPUT_LOSS.name: 5,
        ZIGZAG.name: 1,
    }
    jobs = [Job(name, claims[name].variants[i], 42) for name, i in picks.items()]
    experiment, parent_id = run_quick(client, jobs, claims, fake_mnist, tmp_path / "logs", *TINY)
    parent = client.get_run(parent_id)
    records = collect(client, parent, {c.name: c.metrics for c in claims.values()})
    assert len(records) == len(jobs) and {r.status for r in records} == {"FINISHED"}
    for record in records:
        claim = claims[record.claim]
        assert record.series("val/acc"), record.claim  # quick mode validates once an epoch
        # steps to X% need the run to get there, the drift 10 validations: not in 2 short epochs
        missing = [
            c.title
            for c in claim.columns
            if c.measure(record) is None and not c.title.startswith(("steps", "drift"))
        ]
        assert not missing, (record.claim, missing)
    runs = client.search_runs(
        [experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent.info.run_id}'"
    )
    params = {r.data.tags["study.claim"]: r.data.params for r in runs}
    assert params[ZIGZAG.name]["model/net/init_args/act_shift"] == "1.0"
    assert params[VANISHING.name]["model/optimizer/class_path"] == "torch.optim.SGD"
    assert params[VANISHING.name]["trainer/gradient_clip_val"] == "None"
