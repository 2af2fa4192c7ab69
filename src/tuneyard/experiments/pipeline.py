"""``tuneyard pipeline``: named steps, each one verb, chained by ``${step}`` references.

```yaml
experiment: smol
steps:
  - name: data
    prepare: {source: data/debian_topics, num_samples: 60}
  - name: tuned
    finetune: {checkpoint: base/model, data: "${data}", epochs: 1}
  - name: scores
    eval: {checkpoint: "${tuned}", data: "${data}", split: test}
```

A step's identity is a hash of its verb and options, with each ``${step}`` reference
replaced by that step's hash: unchanged steps keep their hash, a changed step changes
its own and every later step's that refers to it. ``experiments/{experiment}/pipeline.json``
records each step's hash, state and artifact (relative to the yard); a rerun skips a step
whose hash matches a complete entry, continues an interrupted finetune step in its folder,
and runs the rest. The state and the artifacts are read through the yard's storage, so on a
yard in object storage the rerun may be on another machine: a step that runs gets the
artifacts it refers to localized first.
Steps that write a folder write it to ``experiments/{experiment}/steps/{name}-{hash}``
unless their options say where. Before any step runs, the pre-flight checks every step's
options and what the steps need from the machine, and reports everything missing at once.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import re
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from pydantic import BaseModel, ValidationError

from tuneyard.config import format_validation_error, read_config_file
from tuneyard.errors import ConfigError, TuneyardError
from tuneyard.experiments.steps import VERBS
from tuneyard.yard.manifest import utc_now
from tuneyard.yard.storage import model_files

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard
    from tuneyard.yard.storage import Storage

REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
STATE_FILE = "pipeline.json"
STEPS_DIR = "steps"
LOGS_DIR = "logs"  # a detached pipeline's output (``pipeline --background``)
HASH_LENGTH = 10


class PreflightFailed(TuneyardError):
    """Something a step needs is missing; nothing has run."""


@dataclass(frozen=True)
class Step:
    """One named step: a verb and its raw options (``${step}`` references unresolved)."""

    name: str
    verb: str
    options: dict[str, Any]

    def references(self) -> list[str]:
        return REFERENCE.findall(json.dumps(self.options))


@dataclass(frozen=True)
class PipelineSpec:
    experiment: str
    steps: list[Step]


def load_pipeline(path: str | Path) -> PipelineSpec:
    """The pipeline file at ``path``; a bad step is a :class:`ConfigError` naming it."""
    data = read_config_file(path)
    unknown = set(data) - {"experiment", "steps"}
    if unknown or "experiment" not in data or not isinstance(data.get("steps"), list) or not data["steps"]:
        raise ConfigError(
            f"{path}: a pipeline file holds experiment: NAME and a list of steps:"
            + (f"; unknown field {sorted(unknown)[0]!r}" if unknown else ""),
            "Each step: {name: NAME, VERB: {options}}, VERB one of " + ", ".join(VERBS) + ".",
        )
    steps: list[Step] = []
    for number, raw in enumerate(data["steps"], start=1):
        steps.append(parse_step(raw, number, [step.name for step in steps]))
    return PipelineSpec(str(data["experiment"]), steps)


def parse_step(raw: Any, number: int, earlier: list[str]) -> Step:
    """Step ``number``: a name, exactly one verb, references only to earlier steps."""
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"step {number} has no name.", "Each step: {name: NAME, VERB: {options}}.")
    name = str(raw["name"])
    verbs = [key for key in raw if key != "name"]
    if len(verbs) != 1 or verbs[0] not in VERBS:
        raise ConfigError(
            f"step {name!r} must name exactly one verb (it has: {', '.join(verbs) or 'none'}).",
            "Verbs: " + ", ".join(VERBS) + ".",
        )
    if name in earlier:
        raise ConfigError(f"two steps are named {name!r}.", "Give each step its own name.")
    step = Step(name, verbs[0], dict(raw[verbs[0]] or {}))
    for reference in step.references():
        if reference not in earlier:
            raise ConfigError(
                f"step {name!r} refers to ${{{reference}}}, which is not an earlier step.",
                f"Earlier steps: {', '.join(earlier) or 'none'}.",
            )
    return step


def substitute(value: Any, values: dict[str, str]) -> Any:
    """``value`` with every ``${step}`` in its strings replaced by ``values[step]``."""
    if isinstance(value, str):
        return REFERENCE.sub(lambda match: values[match.group(1)], value)
    if isinstance(value, dict):
        return {key: substitute(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, values) for item in value]
    return value


def step_hashes(spec: PipelineSpec) -> dict[str, str]:
    """Each step's identity: its verb and options, references replaced by the steps' own hashes."""
    hashes: dict[str, str] = {}
    for step in spec.steps:
        shaped = substitute(step.options, {name: f"step:{digest}" for name, digest in hashes.items()})
        text = json.dumps({"verb": step.verb, "options": shaped}, sort_keys=True)
        hashes[step.name] = hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]
    return hashes


def step_options(step: Step, paths: dict[str, str], folder: Path) -> BaseModel:
    """The verb's validated options, references resolved to ``paths``; ``output_dir`` set to ``folder``."""
    model = VERBS[step.verb].options()
    fields = substitute(step.options, paths)
    if "output_dir" in model.model_fields and fields.get("output_dir") is None and step.verb != "eval":
        fields["output_dir"] = str(folder)
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        error = format_validation_error(model, exc)
        raise ConfigError(f"step {step.name!r} ({step.verb}): {error.message}", error.hint) from None


class PipelineState:
    """``pipeline.json``: each step's hash, state, artifact and times, rewritten atomically.

    Folders are recorded relative to the yard (absolute when outside it), so the file means
    the same on every machine that shares the yard.
    """

    def __init__(self, path: Path, yard: Yard) -> None:
        self.path = path
        self.yard = yard
        self.steps: dict[str, dict[str, Any]] = read_state(path, yard.storage)

    def save(self) -> None:
        self.yard.storage.write_text(
            self.path, json.dumps({"steps": self.steps, "updated": utc_now()}, indent=2) + "\n"
        )

    def record(self, name: str, **fields: Any) -> None:
        self.steps[name] = {**self.steps.get(name, {}), **fields}
        self.save()

    def artifact(self, name: str) -> Path:
        """The artifact a complete step filed, as a path on this machine."""
        return self.yard.absolute(self.steps[name]["path"])

    def done(self, name: str, digest: str) -> bool:
        entry = self.steps.get(name, {})
        return (
            entry.get("hash") == digest
            and entry.get("status") == "complete"
            and exists(self.artifact(name), self.yard.storage)
        )

    def interrupted(self, name: str, digest: str) -> Path | None:
        """The folder of a step with this hash that started and never finished (None: none)."""
        entry = self.steps.get(name, {})
        if entry.get("hash") == digest and entry.get("status") == "running" and entry.get("folder"):
            folder = self.yard.absolute(entry["folder"])
            return folder if exists(folder / "manifest.json", self.yard.storage) else None
        return None


def read_state(path: Path, storage: Storage) -> dict[str, dict[str, Any]]:
    """The steps recorded in ``pipeline.json`` (none when no pipeline ran in this experiment yet)."""
    try:
        steps: dict[str, dict[str, Any]] = json.loads(storage.read_text(path))["steps"]
    except FileNotFoundError:
        return {}
    return steps


def exists(path: Path, storage: Storage) -> bool:
    """Whether the file or folder ``path`` is in the yard (maybe written by another machine)."""
    return any(entry.name == path.name for entry in storage.list(path.parent))


def experiment_folder(spec: PipelineSpec, yard: Yard) -> Path:
    return yard.target_path("experiment", experiment=spec.experiment)


def preflight(spec: PipelineSpec, yard: Yard) -> None:
    """Every step's options, and what the steps need from this machine: all problems in one error."""
    problems: list[str] = []
    hashes = step_hashes(spec)
    folder = experiment_folder(spec, yard)
    paths = {step.name: str(folder / STEPS_DIR / f"{step.name}-{hashes[step.name]}") for step in spec.steps}
    options: dict[str, BaseModel] = {}
    for step in spec.steps:
        try:
            options[step.name] = step_options(step, paths, Path(paths[step.name]))
        except TuneyardError as exc:
            problems.append(exc.message)
    for step in spec.steps:
        problems += machine_problems(step, options.get(step.name))
    problems += disk_problems(spec, yard)
    if problems:
        raise PreflightFailed(
            f"the pipeline cannot start ({len(problems)} problem(s)); nothing has run:\n  - "
            + "\n  - ".join(problems),
            "Fix these and run it again.",
        )


def machine_problems(step: Step, options: BaseModel | None) -> list[str]:
    """What one step needs that this machine lacks: a key, a reachable server, llama.cpp, a GPU."""
    import importlib.util
    import os

    problems = []
    if step.verb == "label" and options is not None:
        if not getattr(options, "no_api_key") and not os.environ.get(getattr(options, "api_key_env")):
            problems.append(
                f"step {step.name!r} (label): the API key variable {options.api_key_env} is not set"
            )
        reason = unreachable(getattr(options, "base_url"))
        if reason:
            problems.append(f"step {step.name!r} (label): {reason}")
    if step.verb in ("export", "validate") and importlib.util.find_spec("llama_cpp") is None:
        problems.append(f"step {step.name!r} ({step.verb}): llama.cpp (llama-cpp-python) is not installed")
    if str(getattr(options, "device", "") or "").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            problems.append(f"step {step.name!r} ({step.verb}) asks for a GPU and there is none")
    return problems


def unreachable(url: str) -> str | None:
    """Why nothing answers at ``url``'s host and port (None: a connection opened)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname or "", port), timeout=3):
            return None
    except OSError as exc:
        return f"cannot reach {url} ({exc.strerror or exc})"


DISK_MARGIN = 2  # a run holds its checkpoints besides its best model: about twice a model's size


def disk_problems(spec: PipelineSpec, yard: Yard) -> list[str]:
    """Too little free space for the models the steps will write (local sources' sizes, twice)."""
    needed = 0
    for step in spec.steps:
        source = step.options.get("checkpoint")
        if step.verb in ("finetune", "merge", "export") and isinstance(source, str) and Path(source).exists():
            path = Path(source)
            files = [path] if path.is_file() else [file for file in path.rglob("*") if file.is_file()]
            needed += DISK_MARGIN * sum(file.stat().st_size for file in files)
    yard.root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(yard.root).free
    if needed > free:
        return [
            f"the steps need about {needed / 2**30:.1f} GiB free at {yard.root}; {free / 2**30:.1f} GiB are"
        ]
    return []


StepProgress = Callable[[Step, str], None]  # (step, "skipped" | "resumed" | "running" | "complete")


def run_pipeline(spec: PipelineSpec, yard: Yard, on_step: StepProgress | None = None) -> PipelineState:
    """Pre-flight, then each step that is not done (see the module docstring)."""
    preflight(spec, yard)
    folder = experiment_folder(spec, yard)
    state = PipelineState(folder / STATE_FILE, yard)
    hashes = step_hashes(spec)
    paths: dict[str, str] = {}

    def report(step: Step, what: str) -> None:
        if on_step is not None:
            on_step(step, what)
        yard.storage.sync(folder / LOGS_DIR)  # a detached run's log, sent where the yard lives (on S3)

    for step in spec.steps:
        digest = hashes[step.name]
        if state.done(step.name, digest):
            paths[step.name] = str(state.artifact(step.name))
            report(step, "skipped")
            continue
        for reference in dict.fromkeys(step.references()):
            # maybe filed by another machine; a run's checkpoints are no step's input
            yard.storage.localize(Path(paths[reference]), only=model_files)
        step_folder = folder / STEPS_DIR / f"{step.name}-{digest}"
        options = step_options(step, paths, step_folder)
        verb = VERBS[step.verb]
        interrupted = state.interrupted(step.name, digest)
        started_in = Path(getattr(options, "output_dir", None) or step_folder)
        state.record(step.name, verb=step.verb, hash=digest, status="running", started=utc_now(),
                     folder=yard.relative(started_in), error=None)  # fmt: skip
        report(step, "resumed" if interrupted and verb.resume else "running")
        try:
            path = verb.resume(interrupted, yard) if interrupted and verb.resume else verb.run(options, yard)
        except Exception as exc:  # a bug's too: another machine reads why in pipeline.json
            error = exc.message if isinstance(exc, TuneyardError) else f"{type(exc).__name__}: {exc}"
            state.record(step.name, status="failed", error=error, finished=utc_now())
            raise
        paths[step.name] = str(path)
        state.record(step.name, status="complete", path=yard.relative(Path(path)), finished=utc_now())
        report(step, "complete")
    return state


def send_logs_at_exit(spec: PipelineSpec, yard: Yard) -> None:
    """Send the experiment's logs where the yard lives once more, when this process ends.

    For a detached pipeline (``--background``), whose log is its own output: the error the
    CLI prints after a failed step, or a bug's traceback, are the log's last lines and come
    after :func:`run_pipeline` has raised; only the process's exit comes later. On shared
    storage, that is how another machine reads why the pipeline stopped.
    """
    logs = experiment_folder(spec, yard) / LOGS_DIR

    def send() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        yard.storage.sync(logs)

    atexit.register(send)
