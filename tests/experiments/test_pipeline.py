"""``tuneyard pipeline``: prepare, label, finetune, eval in one file; done steps skipped; checks first."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from topic_data import write_topic_csvs

KEY = "sk-test-pipeline-0123456789"


def write_pipeline(tmp_path: Path, model: Path, url: str, epochs: int = 1, **label: object) -> Path:
    topics = write_topic_csvs(
        tmp_path / "topics", ("sports", "cooking"), {"train": 40, "validation": 12, "test": 12}
    )
    steps = [
        {"name": "data", "prepare": {"source": str(topics), "name": "topics"}},
        {"name": "labels", "label": {
            "data": "${data}", "teacher": "fault-teacher", "base_url": url,
            "prompt": "{{ text }}", "answer": {"choices": ["alpha", "beta", "gamma"]}, **label,
        }},
        {"name": "tuned", "finetune": {
            "checkpoint": str(model), "data": "${labels}", "epochs": epochs, "batch_size": 8,
            "max_length": 32, "learning_rate": 1e-3,
        }},
        {"name": "scores", "eval": {"checkpoint": "${tuned}", "data": "${labels}", "split": "test"}},
    ]  # fmt: skip
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"experiment": "chain", "steps": steps}))
    return path


def states(yard: Path) -> dict[str, dict]:
    return json.loads((yard / "experiments" / "chain" / "pipeline.json").read_text())["steps"]


def test_a_pipeline_runs_its_steps_in_order_then_skips_them_and_reruns_only_what_changed(
    cli, tiny_model, fault_server, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = fault_server()
    model = tiny_model("bert", num_labels=3)
    spec = write_pipeline(tmp_path, model, server.url)
    yard = tmp_path / "yard"
    first = cli("--yard", yard, "pipeline", spec)
    assert first.exit_code == 0, first.stderr
    steps = states(yard)
    assert [steps[name]["status"] for name in ("data", "labels", "tuned", "scores")] == ["complete"] * 4
    tuned = yard / steps["tuned"]["path"]
    run = json.loads((tuned / "manifest.json").read_text())
    assert run["parents"][-1]["path"].startswith(
        "experiments/chain/steps/labels-"
    )  # lineage: data from labels
    asked = len(server.requests())

    again = cli("--yard", yard, "pipeline", spec)
    assert again.exit_code == 0 and again.stderr.count("done earlier, skipped") == 4
    assert len(server.requests()) == asked  # the teacher is not asked again

    changed = cli("--yard", yard, "pipeline", write_pipeline(tmp_path, model, server.url, epochs=2))
    assert changed.exit_code == 0, changed.stderr
    assert "data (prepare): done earlier, skipped" in changed.stderr
    assert "labels (label): done earlier, skipped" in changed.stderr
    assert "tuned (finetune): done" in changed.stderr and "scores (eval): done" in changed.stderr
    assert yard / states(yard)["tuned"]["path"] != tuned  # a new run; the first is kept

    status = cli("--yard", yard, "pipeline", "status", "chain")
    assert status.exit_code == 0
    assert [line.split()[:3] for line in status.stdout.splitlines()[1:]] == [
        ["data", "prepare", "complete"], ["labels", "label", "complete"],
        ["tuned", "finetune", "complete"], ["scores", "eval", "complete"],
    ]  # fmt: skip


def test_preflight_lists_every_problem_before_any_step_runs(cli, tiny_model, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = write_pipeline(tmp_path, tiny_model("bert", num_labels=3), "http://127.0.0.1:9/v1", epochs=-1)
    result = cli("--yard", tmp_path / "yard", "pipeline", spec)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert "the pipeline cannot start (3 problem(s)); nothing has run" in message
    assert "step 'tuned' (finetune): invalid options: field 'epochs' = -1" in message
    assert "step 'labels' (label): the API key variable OPENAI_API_KEY is not set" in message
    assert "step 'labels' (label): cannot reach http://127.0.0.1:9/v1" in message
    assert not (tmp_path / "yard" / "experiments").exists() and not (tmp_path / "yard" / "datasets").exists()


# The CLI with llama-cpp-python hidden from imports, as on a machine without it.
WITHOUT_LLAMA_CPP = (
    "import sys; sys.modules['llama_cpp'] = None; from tuneyard.cli import main; main(sys.argv[1:])"
)


def test_preflight_refuses_without_llama_cpp_a_gpu_or_the_disk_a_model_needs(tiny_model, tmp_path) -> None:
    huge = tmp_path / "huge_model"
    shutil.copytree(tiny_model("bert", num_labels=2), huge)
    with (huge / "weights_shard.bin").open("wb") as sparse:
        sparse.truncate(2**43)  # 8 TiB in size, no block on disk: twice that cannot fit
    steps = [
        {"name": "tuned", "finetune": {"checkpoint": str(huge), "data": "unused", "epochs": 1}},
        {"name": "scores", "eval": {"checkpoint": str(huge), "data": "unused", "device": "cuda"}},
        {"name": "exported", "export": {"checkpoint": str(huge), "quant": "q8_0"}},
    ]
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(yaml.safe_dump({"experiment": "chain", "steps": steps}))
    yard = tmp_path / "yard"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_LLAMA_CPP, "--yard", str(yard), "pipeline", str(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},  # no GPU, whatever this machine has
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "the pipeline cannot start (3 problem(s)); nothing has run" in message
    assert "step 'exported' (export): llama.cpp (llama-cpp-python) is not installed" in message
    assert "step 'scores' (eval) asks for a GPU and there is none" in message
    assert f"the steps need about 32768.0 GiB free at {yard}" in message
    assert not (yard / "experiments").exists() and not (yard / "models").exists()


def test_a_pipeline_in_the_background_logs_and_reports_its_state(
    cli, tiny_model, fault_server, tmp_path, monkeypatch
) -> None:
    server = fault_server()
    spec = write_pipeline(tmp_path, tiny_model("bert", num_labels=3), server.url, no_api_key=True)
    yard = tmp_path / "yard"
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    started = cli("--yard", yard, "pipeline", spec, "--background")
    assert started.exit_code == 0, started.stderr
    log = Path(started.stdout.strip())
    assert log.parent == yard / "experiments" / "chain" / "logs" and log.name.startswith("pipeline_")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and "scores (eval): done" not in log.read_text():
        time.sleep(0.5)
    assert "scores (eval): done" in log.read_text(), log.read_text()
    status = cli("--yard", yard, "pipeline", "status", "chain")
    assert status.stdout.count("complete") == 4


def test_a_pipeline_killed_mid_finetune_resumes_that_step_and_skips_the_ones_before(
    tiny_model, fault_server, tmp_path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    server = fault_server()
    spec = write_pipeline(tmp_path, tiny_model("bert", num_labels=3), server.url, epochs=15, no_api_key=True)
    document = yaml.safe_load(spec.read_text())
    document["steps"][2]["finetune"]["save_steps"] = 5
    spec.write_text(yaml.safe_dump(document))
    yard = tmp_path / "yard"
    command = [sys.executable, "-m", "tuneyard", "--yard", str(yard), "pipeline", str(spec)]
    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    steps = yard / "experiments" / "chain" / "steps"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not list(steps.glob("tuned-*/checkpoint-*")):
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert states(yard)["tuned"]["status"] == "running"
    asked = len(server.requests())
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "data (prepare): done earlier, skipped" in rerun.stderr
    assert "labels (label): done earlier, skipped" in rerun.stderr
    assert "tuned (finetune): resuming" in rerun.stderr and "scores (eval): done" in rerun.stderr
    assert len(server.requests()) == asked
    tuned = yard / states(yard)["tuned"]["path"]
    assert tuned.parent == steps and json.loads((tuned / "manifest.json").read_text())["status"] == "complete"


def test_a_step_that_crashes_is_recorded_failed_with_its_exception(cli, tmp_path, monkeypatch) -> None:
    import pytest

    import tuneyard.data.prepare

    def out_of_memory(options, yard):  # a library's crash inside the verb, not a tuneyard error
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(tuneyard.data.prepare, "prepare_dataset", out_of_memory)
    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 4})
    spec = tmp_path / "pipeline.yaml"
    steps = [{"name": "data", "prepare": {"source": str(topics), "name": "topics"}}]
    spec.write_text(yaml.safe_dump({"experiment": "chain", "steps": steps}))
    yard = tmp_path / "yard"

    with pytest.raises(RuntimeError):
        cli("--yard", yard, "pipeline", spec)

    assert states(yard)["data"]["status"] == "failed"
    assert states(yard)["data"]["error"] == "RuntimeError: CUDA out of memory"
