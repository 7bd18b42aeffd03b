"""One MLflow run per CLI invocation, checked in a real sqlite store through MlflowClient."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

import mnist_lab
from mnist_lab.cli import main
from mnist_lab.data.mnist_datamodule import MNISTDataModule
from mnist_lab.models.classifier import Classifier
from mnist_lab.models.components import MLP
from mnist_lab.tracking import RunLogger, RunRecord


class TrackedRun:
    def __init__(self, uri: str, run: Run, workdir: Path) -> None:
        self.uri, self.run, self.workdir = uri, run, workdir
        self.client = MlflowClient(uri)
        self.id = run.info.run_id

    def artifacts(self, path: str | None = None) -> list[str]:
        found = []
        for item in self.client.list_artifacts(self.id, path):
            found.extend(self.artifacts(item.path) if item.is_dir else [item.path])
        return found


@pytest.fixture(scope="module")
def tracked(repo_root: Path, fake_mnist: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackedRun]:
    """One `fit` (then test) through the CLI on tiny MNIST, in a throwaway store (> 5 s: its tests are `slow`)."""
    workdir = tmp_path_factory.mktemp("tracked")
    uri = f"sqlite:///{workdir / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(workdir)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        main(
            [
                "fit",
                "--config",
                str(repo_root / "configs" / "net" / "mlp.yaml"),
                f"--data.data_dir={fake_mnist}",
                "--data.val_size=200",
                "--data.batch_size=64",
                "--trainer.max_epochs=3",
                "--trainer.log_every_n_steps=5",
                "--model.net.init_args.width=64",
                "--model.net.init_args.activation=leaky_relu",
                "--trainer.logger.init_args.experiment_name=tracked",
            ]
        )
        runs = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("tracked").experiment_id])
        assert len(runs) == 1, "fit and test must share one run"
        yield TrackedRun(uri, runs[0], workdir)


@pytest.mark.slow
def test_run_is_finished_and_named_after_the_choices(tracked: TrackedRun) -> None:
    assert tracked.run.info.status == "FINISHED"
    assert tracked.run.info.run_name == "mlp-width64-leaky_relu-dropout0.2"  # the arguments off their defaults


@pytest.mark.slow
def test_params_hold_the_whole_resolved_config(tracked: TrackedRun) -> None:
    params = tracked.run.data.params
    net, opt = "model/net/init_args/", "model/optimizer/init_args/"  # MLFlowLogger's own flattening
    expected = {
        f"{net}activation": "leaky_relu",
        f"{net}weight_init": "kaiming_normal",
        f"{net}dropout": "0.2",
        f"{net}batch_norm": "False",
        f"{net}batch_norm_position": "before",
        f"{net}width": "64",
        "model/optimizer/class_path": "torch.optim.AdamW",
        f"{opt}lr": "0.001",
        f"{opt}weight_decay": "0.0001",
        "model/scheduler/class_path": "mnist_lab.models.schedules.CosineDecay",
        "trainer/max_epochs": "3",
        "trainer/precision": "32-true",
        "trainer/gradient_clip_val": "1.0",
        "data/init_args/batch_size": "64",
        "seed_everything": "42",
    }
    assert {k: params.get(k) for k in expected} == expected
    assert int(params["params/trainable"]) == sum(p.numel() for p in MLP(width=64).parameters())
    assert not [k for k in params if "instantiator" in k or "__path__" in k]


@pytest.mark.slow
def test_tags_record_code_data_and_version(tracked: TrackedRun, fake_mnist: Path, repo_root: Path) -> None:
    tags = tracked.run.data.tags
    assert "dataset.name" not in tags  # the dataset is MLflow's own dataset input, not a hand-made tag
    (recorded,) = tracked.client.get_run(tracked.id).inputs.dataset_inputs
    digest = hashlib.sha256()
    for path in sorted((fake_mnist / "MNIST" / "raw").glob("*-ubyte")):
        digest.update(path.name.encode() + path.read_bytes())
    digest = digest.hexdigest()
    assert (recorded.dataset.name, recorded.dataset.digest) == ("mnist", digest[:32])
    assert {t.key: t.value for t in recorded.tags}["classes"] == ",".join(str(k) for k in range(10))
    assert "git.commit" not in tags  # the commit is MLflow's own tag (checked on a CLI process: test_concurrency)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=repo_root
    )
    assert tags["git.dirty"] == ("unknown" if dirty.returncode else str(bool(dirty.stdout.strip())).lower())
    assert tags["mnist_lab.version"] == mnist_lab.__version__
    assert (tags["process.host"], tags["process.pid"]) == (socket.gethostname(), str(os.getpid()))  # stale.py


@pytest.mark.slow
def test_metrics_have_per_step_and_per_epoch_history(tracked: TrackedRun) -> None:
    history = lambda key: tracked.client.get_metric_history(tracked.id, key)  # noqa: E731
    assert len(history("val/acc")) == 3 and len(history("val/loss")) == 3
    assert len(history("train/loss_step")) >= 5 and len(history("train/acc")) == 3
    assert len(history("time/epoch_s")) == 3 and all(m.value > 0 for m in history("time/epoch_s"))
    assert len(history("lr-AdamW")) == 3
    metrics = tracked.run.data.metrics
    assert metrics["val/acc_best"] == max(m.value for m in history("val/acc"))
    assert metrics["test/acc"] > 0.9 and metrics["test/loss"] > 0


@pytest.mark.slow
def test_artifacts_config_checkpoint_and_figures(tracked: TrackedRun, tmp_path: Path) -> None:
    artifacts = tracked.artifacts()
    assert "config.yaml" in artifacts
    assert "figures/confusion_matrix.png" in artifacts
    wrong = tracked.run.data.metrics["test/acc"] < 1  # the misclassified images, when there are any
    assert ("figures/misclassified.png" in artifacts) == wrong
    assert any(a.endswith(".ckpt") for a in artifacts)
    config_path = tracked.client.download_artifacts(tracked.id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(config_path).read_text())
    assert config["model"]["net"]["init_args"]["activation"] == "leaky_relu"
    with pytest.raises(SystemExit) as exit_:  # the logged config is re-runnable as it is
        main(["fit", "--config", config_path, "--print_config"])
    assert exit_.value.code == 0


@pytest.mark.slow
def test_logged_model_loads_and_predicts(tracked: TrackedRun) -> None:
    mlflow.set_tracking_uri(tracked.uri)
    model = mlflow.pytorch.load_model(f"runs:/{tracked.id}/classifier")
    assert isinstance(model, torch.nn.Module) and isinstance(model.net, MLP)  # not a torch.export program
    logits = model.eval()(torch.zeros(5, 1, 28, 28))
    assert logits.shape == (5, 10)
    with pytest.raises(MlflowException, match="NaN or infinite"):
        model(torch.full((1, 1, 28, 28), float("nan")))
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{tracked.id}/classifier")
    assert pyfunc.metadata.signature is not None
    assert pyfunc.metadata.metadata["class_names"] == [str(k) for k in range(10)]
    assert pyfunc.metadata.metadata["dataset"] == "mnist"
    assert np.asarray(pyfunc.predict(np.zeros((3, 1, 28, 28), dtype=np.float32))).shape == (3, 10)


class Explodes(Classifier):
    def __init__(self, error: BaseException) -> None:
        super().__init__(MLP(depth=1, width=8))
        self.error = error

    def training_step(self, batch, batch_idx):
        if batch_idx == 2:
            raise self.error
        return super().training_step(batch, batch_idx)


@pytest.mark.parametrize(("error", "status"), [(RuntimeError("boom"), "FAILED"), (KeyboardInterrupt(), "KILLED")])
def test_failed_and_interrupted_runs_get_their_status(
    error: BaseException, status: str, fake_mnist: Path, tmp_path: Path, tracking_uri: str
) -> None:
    logger = RunLogger(experiment_name="failing", tracking_uri=tracking_uri)
    trainer = L.Trainer(
        max_epochs=1,
        logger=logger,
        callbacks=[RunRecord()],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    data = MNISTDataModule(str(fake_mnist), val_size=200, batch_size=64)
    with pytest.raises((RuntimeError, SystemExit)):
        trainer.fit(Explodes(error), datamodule=data)
    run = MlflowClient(tracking_uri).get_run(logger.run_id)
    assert run.info.status == status
    assert type(error).__name__ in run.data.tags["error"]


@pytest.mark.server
@pytest.mark.subprocess
@pytest.mark.slow
@pytest.mark.parametrize("registered", [False, True], ids=["RUN=<id>", "MODEL=models:/...@champion"])
def test_make_serve_answers_predictions_over_rest(repo_root: Path, tracked: TrackedRun, registered: bool) -> None:
    import json
    import os
    import signal
    import socket
    import subprocess
    import time
    import urllib.error
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tracked.workdir / "serve.log").open("w")
    if registered:
        from mnist_lab.parts.serve.registry import register

        register(tracked.id, tracked.uri)
    model = "MODEL=models:/mnist-classifier@champion" if registered else f"RUN={tracked.id}"
    proc = subprocess.Popen(
        ["make", "-s", "serve", model, f"PORT={port}"],
        env={**os.environ, "MLFLOW_TRACKING_URI": tracked.uri},
        cwd=repo_root,
        start_new_session=True,
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def request(images: np.ndarray) -> urllib.request.Request:
        body = json.dumps({"inputs": images.tolist()}).encode()  # NaN as JSON's NaN, as Python's json writes it
        headers = {"Content-Type": "application/json"}
        return urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers=headers)

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(request(np.zeros((2, 1, 28, 28))), timeout=10) as response:
                    predictions = json.loads(response.read())["predictions"]
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("mlflow models serve did not answer:\n" + (tracked.workdir / "serve.log").read_text())
                time.sleep(1)
        with pytest.raises(urllib.error.HTTPError) as refused:  # not NaN logits, which are no JSON
            urllib.request.urlopen(request(np.full((1, 1, 28, 28), np.nan)), timeout=10)
        assert refused.value.code == 400 and "NaN or infinite" in json.loads(refused.value.read())["message"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        log.close()
    assert np.asarray(predictions).shape == (2, 10)
