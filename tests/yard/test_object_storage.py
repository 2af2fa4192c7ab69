"""A yard on S3 (moto's server on 127.0.0.1; SeaweedFS's too for the tests marked
``ON_BOTH_SERVERS``): shared between "machines" that each keep a working copy.

Each machine is a ``$TUNEYARD_YARD_CACHE`` folder; the bucket is the only thing they share.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import s3fs
from servers import S3Server
from topic_data import write_topic_csvs

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-2", "-q")
# The promises an S3 yard keeps, kept on two servers: moto (what the other tests use) and SeaweedFS.
ON_BOTH_SERVERS = pytest.mark.parametrize("s3_yard", ["moto", "seaweedfs"], indirect=True)


def remote_files(url: str) -> list[str]:
    """Every object key under the yard ``url``, relative to it."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    root = url.removeprefix("s3://")
    found = fs.find(root, detail=True).items()  # a folder SeaweedFS keeps after its last object is no object
    return sorted(name.removeprefix(f"{root}/") for name, info in found if info["type"] != "directory")


def machine(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Play another machine from now on: its own working copy and index."""
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(cache))


def subprocess_env(cache: Path) -> dict[str, str]:
    return {**os.environ, "TUNEYARD_YARD_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@ON_BOTH_SERVERS
def test_compress_finetune_eval_on_s3_then_another_machine_lists_and_shows_the_same(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 16, "validation": 8})
    compressed = cli("--yard", s3_yard, "compress", "--model", tiny_model("bert"), "--rank", "4", "-q")
    assert compressed.exit_code == 0, compressed.stderr
    parent = compressed.stdout.strip().splitlines()[-1].removeprefix("saved ")
    finetuned = cli("--yard", s3_yard, "finetune", "--checkpoint", parent, "--data", data, *QUICK)
    assert finetuned.exit_code == 0, finetuned.stderr
    run = Path(finetuned.stdout.strip())
    evaluated = cli("--yard", s3_yard, "eval", "--checkpoint", run / "best", "--data", data, "-q")
    assert evaluated.exit_code == 0, evaluated.stderr
    on_a = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
    models = [row["path"] for row in json.loads(on_a.stdout) if row["kind"] == "finetuned"]
    assert len(models) == 1, on_a.stdout + on_a.stderr
    run_path = models[0]
    shown_on_a = cli("--yard", s3_yard, "runs", "show", run_path, "--format", "json")

    machine(monkeypatch, tmp_path / "machine-b")
    on_b = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
    shown_on_b = cli("--yard", s3_yard, "runs", "show", run_path, "--format", "json")

    assert on_b.exit_code == 0 and shown_on_b.exit_code == 0, on_b.stderr + shown_on_b.stderr
    rows = json.loads(on_b.stdout)
    assert sorted(row["kind"] for row in rows) == ["compressed", "finetuned"]
    assert rows == json.loads(on_a.stdout)
    record = json.loads(shown_on_b.stdout)
    assert record == json.loads(shown_on_a.stdout)
    evals = {key: value for key, value in record["metrics"].items() if key != "train"}
    assert evals and record["status"] == "complete", record
    assert any(name.endswith("best/model.safetensors") for name in remote_files(s3_yard))


def test_another_machine_sees_new_artifacts_and_metrics_without_a_reindex(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard.yard import Manifest, Yard
    from tuneyard.yard.manifest import update_manifest

    def write_on_a(name: str) -> Path:
        machine(monkeypatch, tmp_path / "machine-a")
        yard = Yard.open(s3_yard)
        manifest = Manifest(kind="compressed", name=name, path="", arch="bert")
        with yard.create(manifest, yard.root / "compressed_models" / name) as writer:
            (writer.path / "weights.bin").write_bytes(b"0" * 64)
        return writer.path

    def listed_on_b() -> dict[str, dict[str, float]]:
        machine(monkeypatch, tmp_path / "machine-b")
        result = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
        assert result.exit_code == 0, result.stderr
        return {row["name"]: row["metrics"] for row in json.loads(result.stdout)}

    first = write_on_a("first")
    assert listed_on_b() == {"first": {}}
    write_on_a("second")
    yard_on_a = Yard.open(s3_yard)
    update_manifest(first, lambda manifest: manifest.metrics.update({"accuracy": 0.75}), yard_on_a.storage)
    assert listed_on_b() == {"first": {"accuracy": 0.75}, "second": {}}


def test_the_layout_in_the_buckets_tuneyard_yaml_applies_on_every_machine(s3_yard: str) -> None:
    from tuneyard.yard import Yard

    bucket_file = f"{s3_yard.removeprefix('s3://')}/tuneyard.yaml"
    layout = b"layout:\n  compressed: small/{model}\n"
    s3fs.S3FileSystem(skip_instance_cache=True).pipe_file(bucket_file, layout)
    assert Yard.open(s3_yard).layout.templates["compressed"] == "small/{model}"


# Claims outputs/model once the test creates the file GO (after both processes said "ready").
CLAIM = """
import sys, time
from pathlib import Path
from tuneyard.yard import Yard
yard = Yard.open(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists():
    time.sleep(0.005)
print(yard.claim(yard.root / "outputs" / "model").name)
"""


@ON_BOTH_SERVERS
def test_processes_claiming_one_name_on_s3_all_succeed_with_distinct_names(
    s3_yard: str, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIM, s3_yard, str(go)],
            env=subprocess_env(tmp_path / f"machine-{number}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(2)
    ]
    for process in processes:
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
    go.touch()  # both claim at once
    results = [process.communicate(timeout=120) for process in processes]
    assert all(process.returncode == 0 for process in processes), [err for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["model", "model-2"]
    claims = [name for name in remote_files(s3_yard) if name.endswith(".tuneyard-claim")]
    assert claims == sorted(f"outputs/{name}/.tuneyard-claim" for name in ("model", "model-2"))


# The CLI, SIGKILLed (no cleanup at all) the moment it starts uploading a manifest.json:
# every other file of the artifact is on S3 by then.
KILLED_AT_MANIFEST_UPLOAD = """
import os, signal, sys
import s3fs
real = s3fs.S3FileSystem._put_file

async def put_file(self, lpath, rpath, *args, **kwargs):
    if str(rpath).endswith("/manifest.json"):
        os.kill(os.getpid(), signal.SIGKILL)
    return await real(self, lpath, rpath, *args, **kwargs)

s3fs.S3FileSystem._put_file = put_file
from tuneyard.cli import main
main(sys.argv[1:])
"""


@ON_BOTH_SERVERS
def test_upload_killed_before_its_manifest_looks_like_nothing_and_gc_removes_it(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_MANIFEST_UPLOAD, "--yard", s3_yard, "compress",
         "--model", str(tiny_model("bert")), "--rank", "4", "-q"],
        env=subprocess_env(tmp_path / "machine-a"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    partial = remote_files(s3_yard)
    assert any(name.endswith("/model.safetensors") for name in partial), partial
    assert not any(name.endswith("/manifest.json") for name in partial), partial

    machine(monkeypatch, tmp_path / "machine-b")
    listed = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
    assert listed.exit_code == 0 and json.loads(listed.stdout) == [], listed.stdout
    kept = cli("--yard", s3_yard, "runs", "gc", "--older-than", "10")  # within the grace period
    assert kept.exit_code == 0 and remote_files(s3_yard) == partial
    collected = cli("--yard", s3_yard, "runs", "gc", "--older-than", "0")
    assert collected.exit_code == 0, collected.stderr
    assert "upload stopped before its manifest" in collected.stdout
    assert remote_files(s3_yard) == []


def test_an_s3_yard_on_an_unreachable_endpoint_is_a_user_error(
    cli: Callable[..., object], s3_yard: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result = cli("--yard", s3_yard, "runs", "ls")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot reach the yard s3://"), result.stderr
    assert "AWS_ENDPOINT_URL" in result.stderr
    assert time.monotonic() - started < 30


def test_an_s3_yard_without_s3fs_installed_says_how_to_install_it(tmp_path: Path) -> None:
    hidden = "import sys; sys.modules['s3fs'] = None; from tuneyard.cli import main; main(sys.argv[1:])"
    result = subprocess.run(
        [sys.executable, "-c", hidden, "--yard", "s3://bucket/yard", "runs", "ls"],
        env=subprocess_env(tmp_path), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2
    assert "error: the yard s3://bucket/yard needs s3fs, which is not installed." in result.stderr
    assert "pip install 'tuneyard[s3]'" in result.stderr


# 16 rows / batch 8 = 2 steps an epoch, 2 epochs; evaluate and checkpoint every step.
RESUMABLE = (
    "--strategy", "full", "--epochs", "2", "--batch-size", "8", "--save-steps", "1", "--keep", "2",
    "--learning-rate", "5e-3", "--project", "p", "--quiet",
)  # fmt: skip


def logged(run: Path) -> list[dict[str, str]]:
    with open(run / "training_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@ON_BOTH_SERVERS
def test_a_run_killed_on_machine_a_resumes_on_machine_b_to_the_uninterrupted_result(
    cli: Callable[..., object],
    run_killed_at: Callable[..., subprocess.CompletedProcess[str]],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 16, "validation": 8})
    common = ("--yard", s3_yard, "finetune", "--checkpoint", tiny_model("bert"), "--data", data, *RESUMABLE)
    reference = cli(*common, "--name", "reference")
    assert reference.exit_code == 0, reference.stderr
    # dies (os._exit, as SIGKILL would) as it opens the log for its third evaluation's row
    killed = run_killed_at("training_log.csv", *common, "--name", "killed", event="open", nth=3)
    assert killed.returncode == 9, killed.stderr[-2000:]

    machine(monkeypatch, tmp_path / "machine-b")
    before = cli("--yard", s3_yard, "runs", "show", "outputs/p/topics/killed", "--format", "json")
    assert json.loads(before.stdout)["status"] == "running"
    resumed = cli(*common, "--name", "killed", "--resume")  # by its flags: B has nothing of the run
    assert resumed.exit_code == 0, resumed.stderr
    assert "from checkpoint-" in resumed.stderr, resumed.stderr
    run = Path(resumed.stdout.strip())
    assert run.is_relative_to(tmp_path / "machine-b")

    expected, got = logged(Path(reference.stdout.strip())), logged(run)
    assert [row["step"] for row in got] == [row["step"] for row in expected]
    for want, have in zip(expected, got, strict=True):
        for column in ("train_loss", "val_loss", "accuracy"):
            assert float(have[column]) == pytest.approx(float(want[column]), abs=1e-4), (column, want["step"])
    shown = cli("--yard", s3_yard, "runs", "show", "outputs/p/topics/killed", "--format", "json")
    reference_shown = cli("--yard", s3_yard, "runs", "show", "outputs/p/topics/reference", "--format", "json")
    record, reference_record = json.loads(shown.stdout), json.loads(reference_shown.stdout)
    assert record["status"] == "complete"
    assert record["metrics"]["topics"] == pytest.approx(reference_record["metrics"]["topics"], abs=1e-4)


def test_a_runs_checkpoint_best_and_last_weights_cross_the_wire_once_as_server_side_copies(
    cli: Callable[..., object],
    s3_server: S3Server,
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 16, "validation": 8})
    with s3_server.recorded() as requests:
        trained = cli(
            "--yard", s3_yard, "finetune", "--checkpoint", tiny_model("bert"), "--data", data,
            "--strategy", "full", "--project", "p", "--name", "trained", *QUICK,
        )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    stored = fs.find(s3_yard.removeprefix("s3://"), detail=True)
    weights = sorted(name.rsplit("/", 2)[-2] for name in stored if name.endswith("/model.safetensors"))
    assert weights == ["best", "checkpoint-1-2", "last"]  # three objects of one content ...
    puts = [
        (r["url"].split("?")[0], {key.lower(): value for key, value in r["headers"].items()})
        for r in requests
        if r["method"] == "PUT"
    ]
    weight_puts = [headers for url, headers in puts if url.endswith("/model.safetensors")]
    copies = [headers for headers in weight_puts if "x-amz-copy-source" in headers]
    assert (len(weight_puts), len(copies)) == (3, 2)  # ... uploaded once, copied twice on the server
    sent = sum(int(headers.get("content-length", 0)) for _, headers in puts)
    size = next(info["size"] for name, info in stored.items() if name.endswith("best/model.safetensors"))
    assert sent < sum(info["size"] for info in stored.values()) - size  # every object was a PUT before

    machine(monkeypatch, tmp_path / "machine-b")  # the copies are the weights: B loads them
    import tuneyard

    loaded = tuneyard.load(f"{s3_yard}/outputs/p/topics/trained/last")
    assert loaded.config.architectures == ["BertForSequenceClassification"]
    fetched = next((tmp_path / "machine-b").rglob("last/model.safetensors"))
    assert fetched.read_bytes() == (Path(trained.stdout.strip()) / "best" / "model.safetensors").read_bytes()


@ON_BOTH_SERVERS
def test_a_new_file_in_an_s3_yard_never_replaces_one_another_machine_put_there_first(s3_yard: str) -> None:
    from tuneyard.yard import Yard

    yard = Yard.open(s3_yard)
    target = yard.root / "outputs" / "table.csv"
    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    # another machine's file, not in this working copy
    bucket.pipe_file(f"{s3_yard.removeprefix('s3://')}/outputs/table.csv", b"theirs\n")

    with pytest.raises(FileExistsError):
        yard.storage.write_new(target, b"mine\n")

    assert bucket.cat_file(f"{s3_yard.removeprefix('s3://')}/outputs/table.csv") == b"theirs\n"
    yard.storage.write_new(yard.root / "outputs" / "other.csv", b"mine\n")
    assert remote_files(s3_yard) == ["outputs/other.csv", "outputs/table.csv"]
    assert (yard.root / "outputs" / "other.csv").read_bytes() == b"mine\n"


@ON_BOTH_SERVERS
def test_gc_frees_this_machines_copies_of_artifacts_removed_or_changed_in_the_bucket(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard.yard import Manifest, Yard
    from tuneyard.yard.manifest import update_manifest
    from tuneyard.yard.storage import fetch_artifact

    yard_on_a = Yard.open(s3_yard)
    copies, fetched = {}, {}
    for name in ("gone", "changed", "kept"):
        manifest = Manifest(kind="compressed", name=name, path="", arch="bert")
        with yard_on_a.create(manifest, yard_on_a.root / "compressed_models" / name) as writer:
            (writer.path / "model.safetensors").write_bytes(b"0" * 4096)
        copies[name] = writer.path  # machine A's working copy
        fetched[name] = fetch_artifact(f"{s3_yard}/compressed_models/{name}").parent  # its download cache

    machine(monkeypatch, tmp_path / "machine-b")
    assert cli("--yard", s3_yard, "runs", "rm", "compressed_models/gone").exit_code == 0
    yard_on_b = Yard.open(s3_yard)
    changed_on_b = yard_on_b.localize(Path("compressed_models/changed"))
    update_manifest(changed_on_b, lambda found: found.metrics.update({"accuracy": 0.5}), yard_on_b.storage)

    machine(monkeypatch, tmp_path / "machine-a")
    within_grace = cli("--yard", s3_yard, "runs", "gc")
    assert within_grace.exit_code == 0, within_grace.stderr
    assert all(path.exists() for path in [*copies.values(), *fetched.values()])
    stale = {copies["gone"], fetched["gone"], fetched["changed"]}
    stale_bytes = sum(file.stat().st_size for folder in stale for file in folder.rglob("*") if file.is_file())
    in_bucket = remote_files(s3_yard)
    collected = cli("--yard", s3_yard, "runs", "gc", "--older-than", "0")

    assert collected.exit_code == 0, collected.stderr
    removed = {Path(line.split()[1]) for line in collected.stdout.splitlines() if "local copy" in line}
    assert removed == stale, collected.stdout
    assert not any(path.exists() for path in stale)
    assert copies["changed"].exists() and copies["kept"].exists() and fetched["kept"].exists()
    assert f"({stale_bytes:,} bytes) of this machine's cache" in collected.stderr, collected.stderr
    assert stale_bytes > 3 * 4096  # three weight files and what came with them
    assert remote_files(s3_yard) == in_bucket  # the bucket is left as it was


@ON_BOTH_SERVERS
def test_an_artifact_another_machine_moved_is_found_at_its_new_place_only(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard.yard import Manifest, Yard

    def write(folder: str) -> None:
        yard = Yard.open(s3_yard)
        with yard.create(Manifest(kind="compressed", name="", path=""), yard.root / folder) as writer:
            (writer.path / "model.safetensors").write_bytes(b"0" * 64)

    write("compressed_models/model")
    assert cli("--yard", s3_yard, "runs", "show", "model").exit_code == 0  # in A's copy and index
    machine(monkeypatch, tmp_path / "machine-b")  # B moves it: removes it, writes it anew elsewhere
    assert cli("--yard", s3_yard, "runs", "rm", "compressed_models/model").exit_code == 0
    write("compressed_models/model-v2")

    machine(monkeypatch, tmp_path / "machine-a")
    listed = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
    by_name = cli("--yard", s3_yard, "runs", "show", "model")
    by_path = cli("--yard", s3_yard, "runs", "show", "compressed_models/model")
    moved = cli("--yard", s3_yard, "runs", "show", "model-v2", "--format", "json")

    for result, reference in ((by_name, "model"), (by_path, "compressed_models/model")):
        assert result.exit_code == 2, result.stdout
        assert f"error: no artifact named {reference!r}" in result.stderr, result.stderr
    assert moved.exit_code == 0 and json.loads(moved.stdout)["path"] == "compressed_models/model-v2"
    assert [row["path"] for row in json.loads(listed.stdout)] == ["compressed_models/model-v2"]


@ON_BOTH_SERVERS
def test_an_artifact_removed_from_the_bucket_is_no_artifact_to_load(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tuneyard
    from tuneyard.errors import ArtifactNotFoundError
    from tuneyard.yard import Manifest, Yard

    yard = Yard.open(s3_yard)
    folder = yard.root / "compressed_models" / "m"
    with yard.create(Manifest(kind="compressed", name="", path=""), folder) as writer:
        (writer.path / "model.safetensors").write_bytes(b"0" * 64)
    assert cli("--yard", s3_yard, "runs", "rm", "compressed_models/m").exit_code == 0

    machine(monkeypatch, tmp_path / "machine-b")
    url = f"{s3_yard}/compressed_models/m"
    with pytest.raises(ArtifactNotFoundError, match=f"no artifact at {url}: the store holds no object"):
        tuneyard.load(url)
