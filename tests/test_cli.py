"""The CLI in this process: a bad value, missing or corrupt data, an unusable store are one
`error:` line and exit 2 and write nothing; a run's params are its config as it trained; fit tests
its best checkpoint; the other subcommands evaluate a checkpoint in the same store."""

from __future__ import annotations

import inspect
import math
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torchvision
import yaml
from mlflow import MlflowClient
from torch import nn

from helpers import Snapshot, store_uri
from mnist_fakes import write_fake_mnist
from tiny_cli import LEAN, tiny_args

from mnist_lab.cli import main
from mnist_lab.data.datasets import DATASETS
from mnist_lab.data.idx import MNIST_FILES
from mnist_lab.models.components import ACTIVATIONS, INITS

FAKE = inspect.signature(write_fake_mnist).parameters
N_TRAIN, N_TEST = FAKE["n_train"].default, FAKE["n_test"].default  # the fake_mnist fixture's
VAL = yaml.safe_load(Path(LEAN).read_text())["data"]["init_args"]["val_size"]  # tiny_args'
FIT = ("fit", "--trainer.max_epochs=1")
NET = "--model.net.init_args"


def unknown(kind: str, name: str, registry: dict) -> str:
    return f"unknown {kind} {name!r}; choose one of: {', '.join(registry)}"


ENDLESS = "(or -1, endless, with --trainer.max_steps=<steps>), got -1"
BAD = [
    ((*FIT, f"{NET}.activation=swish2"), unknown("activation", "swish2", ACTIVATIONS)),
    ((*FIT, f"{NET}.weight_init=he"), unknown("init", "he", INITS)),
    ((*FIT, "--data.dataset=cifar"), unknown("dataset", "cifar", DATASETS)),
    ((*FIT, f"{NET}.dropout=1.0"), "dropout must be in [0, 1), got 1.0"),
    ((*FIT, f"{NET}.width=0"), "width must be positive"),
    ((*FIT, "--data.batch_size=0"), "batch sizes must be positive"),
    (
        (*FIT, f"{NET}.activation=leaky_relu", f"{NET}.activation_args={{negative_slope: abc}}"),
        "negative_slope must be a number",
    ),
    (
        (*FIT, f"{NET}.activation=maxout", f"{NET}.activation_args={{k: 2.5}}"),
        "activation 'maxout': k must be an integer, got 2.5",
    ),
    (
        (*FIT, f"{NET}.weight_init=normal", f"{NET}.weight_init_args={{std: -1}}"),
        "init 'normal' rejects {'std': -1}",
    ),
    ((*FIT, "--model.optimizer.init_args.lr=-1"), "Invalid learning rate: -1"),  # LR=-1
    (("fit", "--trainer.max_epochs=0"), "max_epochs must be at least 1"),  # EPOCHS=0
    (("fit", "--trainer.max_epochs=-1"), ENDLESS),  # EPOCHS=-1 without max_steps
    ((*FIT, "--seed_everything=-5"), "seed_everything must be in [0, 2**32 - 1]"),
    ((*FIT, "--ckpt_path=missing.ckpt"), "checkpoint 'missing.ckpt' does not exist"),
    ((*FIT, f"--ckpt_path={'0' * 32}"), "no MLflow run"),  # RESUME=<id>, no store yet
    ((*FIT, "--ckpt_path=last"), "no interrupted (KILLED or FAILED) run"),  # RESUME=last
    ((*FIT, "--ckpt_path=models:/classifier@champion"), "no model version"),
    ((*FIT, "--model.optimizer.init_args.lr=abc"), "model.optimizer: Expected a <class 'float'>"),
    ((*FIT, "--trainer.max_epochs=abc"), "trainer.max_epochs: Expected a <class 'int'>"),
    ((*FIT, "--model.loss=hinge"), "model.loss"),
    ((*FIT, f"--data.val_size={N_TRAIN}"), f"val_size={N_TRAIN} leaves no training images"),
    (
        (*FIT, f"--data.train_size={N_TRAIN}"),
        f"train_size={N_TRAIN} is more than the {N_TRAIN - VAL} training images left of {N_TRAIN}",
    ),
    (
        ("fit", "--model.scheduler_interval=epoch", "--trainer.max_epochs=-1")
        + ("--trainer.max_steps=10",),
        "scheduler_interval=epoch plans",
    ),
    *(((sub,), f"`{sub}` needs trained weights") for sub in ("validate", "test", "predict")),
]


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory whose store (absolute, in it) does not exist yet."""
    root = tmp_path / "work"
    root.mkdir()
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri(root))
    return root


def written(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def one_error(capsys: pytest.CaptureFixture, args: list[str]) -> str:
    """Run ``args``: exit 2, one ``error:`` line, no usage, no traceback; what it printed."""
    with pytest.raises(SystemExit) as end:
        main(args)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert end.value.code == 2 and len(errors) == 1, err[-3000:]
    assert "usage:" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(("args", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_a_bad_value_is_one_error_line_and_writes_nothing(
    args: tuple[str, ...], message: str, fake_mnist: Path, nowhere: Path, capsys
) -> None:
    """Not a store, an experiment, a run nor outputs/ (EPOCHS=0, EPOCHS=-1, LR=-1 among them)."""
    assert message in one_error(capsys, tiny_args(args[0], fake_mnist, *args[1:]))
    assert written(nowhere) == []


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("0123456789abcdef0123456789abcdef", "no MLflow run 0123456789abcdef0123456789abcdef"),
        ("last", "no interrupted (KILLED or FAILED) run"),
    ],
)
def test_a_checkpoint_that_is_not_there_leaves_no_run(
    ref: str, message: str, fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    """Looking a run up needs the store; it gains no run and nothing else is written."""
    assert message in one_error(capsys, tiny_args("fit", fake_mnist, f"--ckpt_path={ref}"))
    client = MlflowClient(tracking_uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments()]) == []
    assert {path.split("/")[0] for path in written(Path.cwd())} == {"mlruns"}  # no outputs/


def test_an_artifact_folder_that_cannot_be_written_leaves_no_experiment(
    fake_mnist: Path, tracking_uri: str, capsys: pytest.CaptureFixture
) -> None:
    args = ["--trainer.logger.init_args.experiment_name=new"]
    args.append("--trainer.logger.init_args.artifact_location=/proc/x/a")
    error = one_error(capsys, tiny_args("fit", fake_mnist, *args))
    assert "cannot write MLflow artifacts to /proc/x/a" in error
    assert MlflowClient(tracking_uri).get_experiment_by_name("new") is None
    assert not Path("outputs").exists()


@pytest.fixture
def refused() -> Iterator[str]:
    """A tracking URI whose port is bound (by this test, port 0) but not listening: refused."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{held.getsockname()[1]}"


@pytest.mark.parametrize(
    "store", ["sqlite:////proc/x/mlflow.db", "sqlite:///{root}/a_file/mlflow.db", "{refused}"]
)
def test_an_unusable_store_is_one_error_line_within_seconds(
    store: str, refused: str, fake_mnist: Path, nowhere: Path, monkeypatch, capsys
) -> None:
    """Not after MLflow's minutes of retries."""
    (nowhere / "a_file").write_text("")
    uri = store.format(root=nowhere, refused=refused)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    start = time.monotonic()
    error = one_error(capsys, tiny_args("fit", fake_mnist))
    expected = (
        f"cannot reach the MLflow tracking server at {uri}"
        if uri.startswith("http")
        else f"cannot create the MLflow store at {uri.removeprefix('sqlite:///')}"
    )
    assert expected in error and time.monotonic() - start < 30
    assert written(nowhere) == ["a_file"]


def test_missing_or_corrupt_data_is_one_error_line_and_writes_nothing(
    fake_mnist: Path, nowhere: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    spec = DATASETS["mnist"]
    raw = f"{spec.torchvision_class}/raw"
    error = one_error(capsys, tiny_args("fit", nowhere / "none", "--data.download=false"))
    assert all(str(nowhere / "none" / raw / name) in error for name in MNIST_FILES)

    def offline(self: torchvision.datasets.MNIST) -> None:  # as torchvision starts a download
        Path(self.raw_folder).mkdir(parents=True, exist_ok=True)
        raise OSError("network is unreachable")

    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    error = one_error(capsys, tiny_args("fit", nowhere / "offline"))
    assert "network is unreachable" in error and "DATA_DIR" in error
    assert written(nowhere) == []  # the folders the download made are gone
    corrupt = {
        "truncated": lambda name, data: data[:100] if "images" in name else data,
        f"holds label 84, but the dataset has {len(spec.class_names)} classes": lambda name, data: (
            data[:-1] + bytes([84]) if "train-labels" in name else data
        ),
    }
    copies = nowhere.parent / "copies"
    for what, damage in corrupt.items():
        copy = copies / what.split()[0]
        shutil.copytree(fake_mnist, copy)
        for path in (copy / raw).iterdir():
            path.write_bytes(damage(path.name, path.read_bytes()))
        assert what in one_error(capsys, tiny_args("fit", copy))
    assert written(nowhere) == []


def new_acc(cli: object) -> float:
    return float(cli.trainer.callback_metrics["test/acc"])


@pytest.mark.slow  # a clone and a fit, logged: about 4 s
def test_a_run_s_params_are_its_config_as_it_trained(
    finished_mlp: Snapshot, clone, fake_mnist: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The activation's and init's arguments, defaults included, and the callbacks keyed by class:
    one more callback, first in the list, renames no other param. A second fit in a store that
    has one joins its experiment; fit tests its best checkpoint and says so."""
    copy = clone(finished_mlp)
    callbacks = yaml.safe_load(Path(LEAN).read_text())["trainer"]["callbacks"]
    first = {"class_path": "lightning.pytorch.callbacks.EarlyStopping"}
    first["init_args"] = {"monitor": "val/loss"}
    more = {"trainer": {"callbacks": [first, *callbacks]}}
    (tmp_path / "one_more.yaml").write_text(yaml.safe_dump(more))
    slope = inspect.signature(nn.LeakyReLU).parameters["negative_slope"].default
    cli = main(
        tiny_args(
            "fit",
            fake_mnist,
            *("--config", str(tmp_path / "one_more.yaml")),
            f"{NET}.activation=leaky_relu",
            f"{NET}.activation_args={{negative_slope: {slope * 10}}}",
            *("--trainer.max_epochs=1", "--trainer.limit_train_batches=2"),
            *("--trainer.limit_val_batches=1", "--trainer.limit_test_batches=1"),
            "--trainer.num_sanity_val_steps=0",
        )
    )
    client = MlflowClient(copy.uri)
    new, old = client.get_run(cli.trainer.logger.run_id), client.get_run(copy.run_id)
    assert new.info.experiment_id == old.info.experiment_id and new.info.status == "FINISHED"
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    printed = f"test/acc = {new_acc(cli):.4f} (checkpoint: {best})"
    assert best.is_file() and printed in capsys.readouterr().out
    assert math.isclose(new.data.metrics["test/acc"], new_acc(cli), rel_tol=1e-6)

    def net_params(run: object) -> dict[str, str]:
        prefix = "model/net/init_args/"
        return {k[len(prefix) :]: v for k, v in run.data.params.items() if k.startswith(prefix)}

    assert net_params(new)["activation_args/negative_slope"] == str(slope * 10)
    assert net_params(old)["activation_args/negative_slope"] == str(slope)  # leaky_relu's default
    for run in (new, old):
        arguments = inspect.signature(INITS[net_params(run)["weight_init"]]).parameters.values()
        defaults = {p.name: str(p.default) for p in arguments if p.default is not p.empty}
        assert {k: net_params(run).get(f"weight_init_args/{k}") for k in defaults} == defaults
    logged = client.download_artifacts(new.info.run_id, "config.yaml", str(tmp_path / "config"))
    net = yaml.safe_load(Path(logged).read_text())["model"]["net"]["init_args"]
    scalars = {k: str(v) for k, v in net.items() if not isinstance(v, (dict, list))}
    assert {k: net_params(new)[k] for k in scalars} == scalars
    assert net["activation_args"] == {"negative_slope": slope * 10}  # as it trained

    def by_class(run: object, name: str) -> dict[str, str]:
        prefix = f"trainer/callbacks/{name}/"
        return {k: v for k, v in run.data.params.items() if k.startswith(prefix)}

    for name in ("ModelCheckpoint", "ModelCheckpoint_2"):  # the same arguments in both runs
        assert by_class(new, name) and by_class(new, name) == by_class(old, name)
    assert by_class(new, "EarlyStopping")["trainer/callbacks/EarlyStopping/monitor"] == "val/loss"
    keys = [k.split("/") for k in new.data.params if k.startswith("trainer/callbacks/")]
    assert keys and not any(key[2].isdigit() for key in keys)


@pytest.mark.slow
def test_validate_test_and_predict_a_checkpoint_each_a_run_in_the_same_store(
    finished_mlp: Snapshot, clone, fake_mnist: Path
) -> None:
    copy = clone(finished_mlp)
    client = MlflowClient(copy.uri)
    fitted = client.get_run(copy.run_id)
    best = fitted.data.tags["checkpoint.best"]
    subcommands = ("validate", "test", "predict")
    clis = {sub: main(tiny_args(sub, fake_mnist, f"--ckpt_path={best}")) for sub in subcommands}
    runs = client.search_runs([fitted.info.experiment_id])
    assert sorted(r.data.tags["subcommand"] for r in runs) == ["fit", "predict", "test", "validate"]
    assert {r.info.status for r in runs} == {"FINISHED"}
    by = {r.data.tags["subcommand"]: r for r in runs}
    assert fitted.data.metrics["test/acc"] > 0.9  # what fit tested: the network learned
    assert math.isclose(by["test"].data.metrics["test/acc"], fitted.data.metrics["test/acc"])
    assert "val/acc" in by["validate"].data.metrics
    predicted = clis["predict"]
    lines = (Path(predicted.trainer.default_root_dir) / "predictions.csv").read_text().splitlines()
    classes = [f"p{k}" for k in range(predicted.datamodule.num_classes)]
    assert lines[0].split(",") == ["index", "target", "predicted", "probability", *classes]
    assert len(lines) == 1 + N_TEST
    assert "predictions.csv" in [a.path for a in client.list_artifacts(by["predict"].info.run_id)]
