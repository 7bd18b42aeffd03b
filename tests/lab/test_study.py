"""The study (`make compare`): seeds, nested MLflow runs, claims and their verdicts, the quick
mode's own folder."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from mlflow import MlflowClient

from lab.study.claims import CLAIMS, group, select
from lab.study.claims.gradients import VANISHING
from lab.study.plots import NO_DATA, draw
from lab.study.results import RunRecord
from lab.study.stats import summarise

from mnist_lab.errors import ConfigError
from mnist_lab.tracking.nesting import PARENT_TAG

REPO = Path(__file__).resolve().parents[2]
VARIANT_ROWS = tuple(f"| {v.name} |" for v in VANISHING.variants)  # the report's table rows


def load_script() -> ModuleType:
    """scripts/activation_study.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location(
        "activation_study", REPO / "scripts" / "activation_study.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vanishing_run(variant: str, seed: int, first: float, acc: float = 0.9) -> RunRecord:
    """A run of the vanishing claim whose first hidden layer's pre-activation gradient is ``first``
    times the last hidden layer's (layer 7; layer 8 is the logits), at init and at the end, and
    whose val accuracy is ``acc``."""
    history = {f"diag/preact_grad/{i}": [(0, 1.0), (350, 1.0)] for i in range(1, 9)}
    history["diag/preact_grad/0"] = [(0, first), (350, first)]
    history["val/acc"] = [(349, acc), (374, acc), (399, acc)]
    final = {k: v[-1][1] for k, v in history.items()}
    return RunRecord("vanishing_gradients", variant, seed, "FINISHED", final, history)


# "sigmoid, Xavier": every check compares another configuration with it
SIGMOID = VANISHING.variants[0].name


def vanishing_runs(sigmoid: list[float], others: list[float]) -> list[RunRecord]:
    """Sigmoid's seeds with ratios ``sigmoid``, every other configuration's with ``others``; each
    configuration's val accuracy follows its ratio (a larger ratio, a higher accuracy), with a
    little seed spread."""
    runs = [
        vanishing_run(SIGMOID, 42 + k, v, 0.5 + 0.1 * (v > 0.01) + 0.001 * k)
        for k, v in enumerate(sigmoid)
    ]
    for variant in VANISHING.variants[1:]:
        runs += [
            vanishing_run(variant.name, 42 + k, v, 0.5 + 0.1 * (v > 0.01) + 0.001 * k)
            for k, v in enumerate(others)
        ]
    return runs


def test_verdict_holds_when_every_check_goes_the_expected_way_beyond_the_seed_spread() -> None:
    verdict = VANISHING.verdict(
        group(vanishing_runs([1e-4, 2e-4, 1.5e-4, 1.2e-4, 3e-4], [1.0, 1.1, 0.9, 0.95, 1.2]))
    )
    assert verdict.holds is True and verdict.label == "holds"
    assert len(verdict.lines) == len(VANISHING.checks) and all(
        "→ holds" in line for line in verdict.lines
    )
    assert (
        all("Welch on log10" in line for line in verdict.lines[:5])
        and "(Welch, p" in verdict.lines[5]
    )


def test_verdict_does_not_hold_when_the_numbers_go_the_other_way() -> None:
    verdict = VANISHING.verdict(
        group(vanishing_runs([1.0, 1.1, 0.9, 0.95, 1.2], [1e-4, 2e-4, 1.5e-4, 1.2e-4, 3e-4]))
    )
    assert verdict.holds is False and verdict.label == "does not hold"
    assert "→ does not hold" in verdict.lines[0]


def test_verdict_is_inconclusive_within_the_spread_or_with_one_seed_and_says_no_data() -> None:
    overlapping = VANISHING.verdict(group(vanishing_runs([0.5, 1.5, 1.0], [0.6, 1.6, 1.1])))
    n = len(VANISHING.checks)
    assert (
        overlapping.holds is None
        and overlapping.label == f"inconclusive: {n} of {n} checks unsettled"
    )
    one_seed = VANISHING.verdict(group(vanishing_runs([1e-4], [1.0])))
    assert one_seed.holds is None and one_seed.label == "inconclusive: one seed"
    assert "one seed, nothing to test" in one_seed.lines[0]
    assert VANISHING.verdict({}).label == "no data"


def test_seed_statistics_leave_out_runs_without_the_number() -> None:
    stat = summarise([0.97, 0.98, None, 0.99, float("nan")])
    assert (
        stat is not None
        and stat.n == 3
        and stat.mean == pytest.approx(0.98)
        and stat.std == pytest.approx(0.01)
    )
    assert summarise([None]) is None


def test_a_panel_without_data_says_so_instead_of_an_empty_axis() -> None:
    runs = group([vanishing_run(SIGMOID, 42, 1e-4)])
    runs[SIGMOID][0].history, runs[SIGMOID][0].final = {}, {}  # no gradient norms, no val/acc
    fig = draw(VANISHING, runs)
    for ax in fig.axes:
        assert not ax.axison and any(NO_DATA in t.get_text() for t in ax.texts)
    assert all(NO_DATA in t.get_text() for ax in draw(VANISHING, {}).axes for t in ax.texts)


def test_claims_are_selected_by_name_in_report_order() -> None:
    names = list(CLAIMS)
    assert [c.name for c in select([f"{names[-1]},{names[0]}"])] == [names[0], names[-1]]
    assert [c.name for c in select([names[2], names[1]])] == names[1:3]
    assert [c.name for c in select(None)] == list(CLAIMS)
    with pytest.raises(ConfigError, match="unknown claim"):
        select(["nope"])


def test_a_diverged_run_is_an_outcome_and_any_other_failed_run_a_failure(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("study")
    parent = client.create_run(experiment).info.run_id
    for name, error in [
        ("nan", "DivergenceError: training diverged at step 9"),
        ("bug", "RuntimeError: shapes"),
    ]:
        run = client.create_run(
            experiment, run_name=name, tags={PARENT_TAG: parent, "error": error}
        ).info.run_id
        client.set_terminated(run, "FAILED")
    client.set_terminated(
        client.create_run(experiment, run_name="fine", tags={PARENT_TAG: parent}).info.run_id
    )
    assert load_script().diverged(client, parent) == {"nan"}


def test_quick_mode_writes_under_outputs_unless_told_otherwise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    script = load_script()
    assert script.parse_args(["--quick"]).out == Path("outputs/study/activation_study.md")
    assert script.parse_args(["--quick", "--out", "x.md"]).out == Path("x.md")
    assert (
        script.parse_args([]).out == Path("reports/activation_study.md")
        and len(script.parse_args([]).seeds) == 5
    )
    assert script.parse_args(["--seeds", "3"]).seeds == [42, 43, 44]
    assert script.parse_args(["--seed-list", "7", "9"]).seeds == [7, 9]
    assert (
        script.main(
            ["--plan", "--seeds", "3", "--claim", "vanishing_gradients", "init", "--jobs", "2"]
        )
        == 0
    )
    runs = 3 * (len(CLAIMS["vanishing_gradients"].variants) + len(CLAIMS["init"].variants))
    assert f"planned: {runs} runs" in capsys.readouterr().out


def _log_child(
    client: MlflowClient, experiment: str, parent: str, run: RunRecord, status: str = "FINISHED"
) -> None:
    tags = {
        PARENT_TAG: parent,
        "study.claim": run.claim,
        "study.variant": run.variant,
        "study.seed": str(run.seed),
    }
    child = client.create_run(experiment, tags=tags).info.run_id
    for key, points in run.history.items():
        for step, value in points:
            client.log_metric(child, key, value, step=step)
    for key, value in run.final.items():
        if key not in run.history:
            client.log_metric(child, key, value)
    client.set_terminated(child, status)


@pytest.mark.slow
def test_report_is_rebuilt_from_the_store_with_verdicts_and_only_finished_runs(
    tracking_uri: str, tmp_path: Path
) -> None:
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("activation-study")
    tags = {"study": "s1", "study.parent": "true", "study.claims": "vanishing_gradients"}
    parent = client.create_run(experiment, tags=tags).info.run_id
    for run in vanishing_runs([1e-4, 2e-4, 1.5e-4, 1.2e-4, 3e-4], [1.0, 1.1, 0.9, 0.95, 1.2]):
        _log_child(client, experiment, parent, run)
    # left out
    _log_child(client, experiment, parent, vanishing_run(SIGMOID, 47, 5.0), status="FAILED")
    other = client.create_run(experiment, tags={"study": "s0", "study.parent": "true"}).info.run_id
    _log_child(client, experiment, other, vanishing_run(SIGMOID, 42, 5.0))  # another study's run

    out = tmp_path / "rebuilt" / "study.md"
    assert load_script().main(["--report-only", "s1", "--out", str(out)]) == 0
    text = out.read_text()
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if line.startswith("| ")}
    assert "5/6" in rows[SIGMOID] and all("5/5" in rows[v.name] for v in VANISHING.variants[1:])
    # the failed run's ratio stays out
    assert "(n=5)" in rows[SIGMOID] and "5.00e+00" not in rows[SIGMOID]
    assert [line for line in text.splitlines() if line.startswith("**Holds?**")] == [
        "**Holds?** holds."
    ]
    assert (out.parent / "study" / "vanishing_gradients.png").stat().st_size > 5000
    assert {a.path for a in client.list_artifacts(parent)} >= {"study.md", "study"}
    assert load_script().main(["--report-only", "nope", "--out", str(out)]) == 2


@pytest.mark.subprocess
def test_make_compare_passes_seeds_claims_and_no_report_path_in_quick_mode(repo_root: Path) -> None:
    result = subprocess.run(
        ["make", "-n", "compare", "QUICK=1", "SEEDS=2", "CLAIM=init saturation"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        "--quick" in result.stdout
        and "--seeds=2" in result.stdout
        and "--claim init saturation" in result.stdout
    )
    assert "--out" not in result.stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_quick_study_nests_seeded_runs_under_one_parent_and_rebuilds_from_mlflow(
    fake_mnist: Path, tmp_path: Path, empty_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO / "src")}
    cmd = [
        sys.executable,
        str(REPO / "scripts" / "activation_study.py"),
        "--quick",
        "--seeds",
        "2",
        "--jobs",
        "2",
    ]
    cmd += [
        "--claim",
        "vanishing_gradients",
        "--data-dir",
        str(fake_mnist),
        "--",
        "--data.val_size=200",
    ]
    cmd += ["--data.train_size=800"]  # the fake MNIST has 1,200 training images
    result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"planned: {2 * len(VANISHING.variants)} runs" in result.stdout

    report = tmp_path / "outputs" / "study" / "activation_study.md"
    assert not (tmp_path / "reports").exists()  # the shipped report is never the quick one's
    # no run's checkpoints are left
    assert [p.name for p in (tmp_path / "outputs").iterdir()] == ["study"]
    text = report.read_text()
    assert f"## {VANISHING.title}" in text and f"## {CLAIMS['saturation'].title}" not in text
    rows = [line for line in text.splitlines() if line.startswith(VARIANT_ROWS)]
    assert len(rows) == len(VANISHING.variants)
    assert all("2/2" in row and " ± " in row and "(n=2)" in row for row in rows)
    assert "**Holds?**" in text
    assert (report.parent / "activation_study" / "vanishing_gradients.png").stat().st_size > 5000

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("activation-study")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if r.data.tags.get("study.parent") == "true"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    children = [r for r in runs if r is not parent]
    assert len(children) == 2 * len(VANISHING.variants)
    assert {r.data.tags[PARENT_TAG] for r in children} == {parent.info.run_id}
    assert sorted(
        (r.data.tags["study.variant"], r.data.tags["study.seed"]) for r in children
    ) == sorted((v.name, s) for v in VANISHING.variants for s in ("42", "43"))
    assert (
        "diag/grad_norm/0" in children[0].data.metrics
        and "diag/preact_grad/0" in children[0].data.metrics
    )
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {
        "activation_study.md",
        "activation_study",
    }

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # restored after the test
    # never the shared empty store: later tests copy it
    other = shutil.copy(empty_store, tmp_path / "other.db")
    # mlflow pointed at another store, as an earlier test may leave it
    mlflow.set_tracking_uri(f"sqlite:///{other}")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # (set_tracking_uri also sets this variable)
    rebuilt = tmp_path / "rebuilt" / "study.md"
    study_id = parent.data.tags["study"]
    assert load_script().main(["--report-only", study_id, "--out", str(rebuilt)]) == 0
    again = [line for line in rebuilt.read_text().splitlines() if line.startswith(VARIANT_ROWS)]
    assert again == rows
    assert (rebuilt.parent / "study" / "vanishing_gradients.png").is_file()
    # without --out, a quick study rebuilds into outputs/, never onto the shipped report
    monkeypatch.chdir(tmp_path)
    report.unlink()
    assert load_script().main(["--report-only", study_id]) == 0
    assert report.is_file() and not (tmp_path / "reports").exists()
    mlflow.set_tracking_uri(uri)


@pytest.mark.subprocess
def test_one_worker_trains_several_configurations_each_its_own_nested_run_with_nothing_leaking(
    fake_mnist: Path, tracking_uri: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from quick_study import TINY, run_quick

    from lab.study.grid import Job

    client = MlflowClient(tracking_uri)
    sigmoid, relu = VANISHING.variants[0], VANISHING.variants[3]
    jobs = [
        Job(VANISHING.name, sigmoid, 42),
        Job(VANISHING.name, relu, 43),
        Job(VANISHING.name, sigmoid, 42),
    ]
    experiment, parent = run_quick(
        client, jobs, {VANISHING.name: VANISHING}, fake_mnist, tmp_path / "logs", *TINY
    )
    out = capsys.readouterr().out
    assert "[3/3] ok" in out and "min left" in out
    logs = sorted((tmp_path / "logs").iterdir())
    # one worker process trained all three
    assert len({log.read_text().splitlines()[0] for log in logs}) == 1

    children = client.search_runs([experiment], filter_string=f"tags.`{PARENT_TAG}` = '{parent}'")
    assert len(children) == 3 and {r.info.status for r in children} == {"FINISHED"}
    for run in children:
        params = run.data.params
        variant = sigmoid if run.data.tags["study.variant"] == sigmoid.name else relu
        assert params["model/net/init_args/activation"] == variant.overrides[0].split("=")[1], (
            params
        )
        assert params["seed_everything"] == run.data.tags["study.seed"]
        assert params["model/net/init_args/depth"] == "8" and "diag/grad_norm/0" in run.data.metrics
    # the same configuration and seed, before and after another run in the same process: the same
    # numbers
    first, again = [
        r.data.metrics for r in children if r.data.tags["study.variant"] == sigmoid.name
    ]
    assert (
        first["val/acc"] == again["val/acc"]
        and first["diag/grad_norm/0"] == again["diag/grad_norm/0"]
    )


def test_a_run_in_process_keeps_its_output_in_its_log_and_leaves_the_process_as_it_found_it(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], fake_mnist: Path
) -> None:
    import signal

    import mlflow
    import torch

    from lab.study.runner import run_one

    handlers, threads = signal.getsignal(signal.SIGINT), torch.get_num_threads()
    code, _ = run_one(
        [
            "fit",
            f"--data.data_dir={fake_mnist}",
            "--data.val_size=200",
            "--model.net.init_args.activation=nope",
        ],
        1,
        tmp_path / "run.log",
    )
    assert code == 2  # the CLI's one-line error, caught: the worker lives on to the next run
    log = (tmp_path / "run.log").read_text()
    assert log.startswith("worker process") and "error:" in log and "nope" in log
    # the run's output went to its log, not to the terminal
    assert "nope" not in capfd.readouterr().err
    print("after")  # the descriptors are back
    assert capfd.readouterr().out == "after\n"
    assert signal.getsignal(signal.SIGINT) is handlers and mlflow.active_run() is None
    torch.set_num_threads(threads)
