"""`make bench` (scripts/bench.py) in quick mode on the fake MNIST: it runs and writes every field.

Times are never checked: they depend on the machine and its load.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import mlflow
import pytest

pytestmark = [
    pytest.mark.slow,  # the quick bench still trains every variant of both models
    pytest.mark.xdist_group("bench"),  # one worker, so the module's one quick bench runs once
]

REPO = Path(__file__).resolve().parents[2]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_report(
    fake_mnist: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict, Path, str]:
    here = tmp_path_factory.mktemp("bench")
    uri = f"sqlite:///{here / 'mlflow.db'}"
    bench = load_bench()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(here)  # where a quick bench writes by default: outputs/ (untracked), not reports/
        report = bench.main(
            [
                "--data-dir",
                str(fake_mnist),
                "--quick",
                "--limit-train-batches",
                "2",
                "--limit-val-batches",
                "1",
                "--val-size",
                "200",
                "--tracking-uri",
                uri,
            ]
        )
    assert not (here / "reports").exists()
    return report, here / "outputs", uri


def test_quick_bench_writes_every_variant_and_ratio_for_both_models(
    quick_report: tuple[dict, Path, str],
) -> None:
    report, out, _ = quick_report
    bench = load_bench()
    saved = json.loads((out / "bench_quick.json").read_text())
    assert saved["models"].keys() == {"mlp", "cnn"} == report["models"].keys()
    for key in ("cpu", "cpu_cores", "torch_threads", "gpu", "torch", "lightning"):
        assert key in saved["machine"]
    for model, res in saved["models"].items():
        assert res["params"] > 0 and res["batch_size"] > 0 and "AdamW" in res["optimizer"]
        assert res["variants"].keys() == bench.VARIANTS.keys(), model
        for v in res["variants"].values():
            for field in ("label", "epoch_s", "epoch_cpu_s", "images_per_s", "epochs_timed"):
                assert field in v
            assert v["epoch_s"] > 0 and v["images_per_s"] > 0 and v["epochs_timed"] >= 1
        assert res["ratios"].keys() == res["cpu_ratios"].keys() == bench.RATIOS.keys()
        assert len(res["parts_ms"]) >= 4 and all(ms > 0 for ms in res["parts_ms"].values())
        assert all(r > 0 for r in res["ratios"].values())
        assert res["targets"].keys() == bench.TARGETS[model].keys()  # a quick run judges no target
        assert {t["verdict"] for t in res["targets"].values()} == {"none (quick mode)"}
        # --quick: one repeat
        assert all(len(each) == 1 for each in res["ratios_by_repeat"].values())


def test_quick_bench_writes_a_markdown_report_and_logs_every_number_to_mlflow(
    quick_report: tuple[dict, Path, str],
) -> None:
    report, out, uri = quick_report
    bench = load_bench()
    text = (out / "bench_quick.md").read_text()
    # the command it was made with; no measurement
    assert "--quick" in text and bench.QUICK_CAVEAT in text
    # a row per model
    assert all(text.count(f"| {label} |") == 2 for label in bench.VARIANTS.values())
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.get_run(report["mlflow_run_id"])
    assert run.data.params["quick"] == "True"
    for model in ("mlp", "cnn"):
        for variant in bench.VARIANTS:
            for field in ("epoch_s", "images_per_s", "epoch_cpu_s"):
                assert run.data.metrics[f"{model}/{variant}/{field}"] > 0
        for clock in ("ratio", "cpu_ratio"):
            assert len([k for k in run.data.metrics if k.startswith(f"{model}/{clock}/")]) == len(
                bench.RATIOS
            )
    assert run.data.tags["verdict/mlp/c_over_ap"] == "none (quick mode)"
    assert "| mlp | (c)/(a') <= 1.2 |" in text
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"bench_quick.json", "bench_quick.md"} <= artifacts


def test_hand_written_networks_match_the_configs(capsys: pytest.CaptureFixture) -> None:
    """The reference loop trains the same network as the template (same parameter count)."""
    import yaml

    from mnist_lab.cli import main
    from mnist_lab.models.components import CNN, MLP
    from mnist_lab.models.components.cnn import ConvBlockSpec

    bench = load_bench()
    for model, cls in (("mlp", MLP), ("cnn", CNN)):
        # the network as the CLI resolves it over configs/defaults.yaml
        with pytest.raises(SystemExit):
            main(
                [
                    "fit",
                    "--config",
                    str(REPO / "configs" / "net" / f"{model}.yaml"),
                    "--print_config",
                ]
            )
        args = yaml.safe_load(capsys.readouterr().out)["model"]["net"]["init_args"]
        hand = bench.HAND_NETS[model](args)
        if "blocks" in args:
            args = {**args, "blocks": [ConvBlockSpec(**b) for b in args["blocks"]]}
        template = cls(**args)
        assert sum(p.numel() for p in hand.parameters()) == sum(
            p.numel() for p in template.parameters()
        )


def test_a_target_is_met_or_missed_only_when_every_repeat_agrees() -> None:
    verdict = load_bench().verdict
    assert verdict([1.05, 1.19, 1.20], 1.20) == "met"
    assert verdict([1.21, 1.30], 1.20) == "missed"
    assert verdict([1.15, 1.25], 1.20) == "within the noise"
