"""Small labelled data for tests, written on demand: topic texts with cue words, as CSV or chat rows."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

CUES = {
    "sports": ["goal", "match", "team", "score", "player", "league", "coach", "ball"],
    "cooking": ["oven", "recipe", "salt", "bake", "flour", "sugar", "pan", "spice"],
    "travel": ["train", "hotel", "ticket", "beach", "map", "flight", "passport", "luggage"],
}
FILLER = ["the", "a", "today", "very", "some", "with", "and", "of"]


def write_topic_csvs(folder: Path, labels: tuple[str, ...], rows: dict[str, int], seed: int = 0) -> Path:
    """``train.csv`` / ``validation.csv`` with string labels whose cue words are in the text."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, count in rows.items():
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for index in range(count):
                label = labels[index % len(labels)]
                words = rng.choices(FILLER, k=4) + rng.choices(CUES[label], k=4)
                rng.shuffle(words)
                writer.writerow([" ".join(words), label])
    return folder


def chat_row(shape: str, index: int, text: str, label: str) -> dict[str, object]:
    """One topic question as a chat row in ``shape``: messages, prompt_response, system_user_assistant,
    alpaca or sharegpt (a multi-turn conversation)."""
    question = f"which topic : {text}"
    if shape == "messages":
        return {
            "id": index,
            "messages": [
                {"role": "system", "content": "answer with one word"},
                {"role": "user", "content": question},
                {"role": "assistant", "content": label},
            ],
        }
    if shape == "prompt_response":
        return {"id": index, "prompt": question, "response": label}
    if shape == "alpaca":
        return {"id": index, "instruction": "which topic ?", "input": text, "output": label}
    if shape == "sharegpt":  # two exchanges: the first answer is learned too
        turns = [("human", "ready ?"), ("gpt", "yes"), ("human", question), ("gpt", label)]
        return {"id": index, "conversations": [{"from": who, "value": said} for who, said in turns]}
    return {"id": index, "system": "answer with one word", "user": question, "assistant": label}


def write_chat_topics(folder: Path, rows: dict[str, int], shape: str = "messages", seed: int = 0) -> Path:
    """``train.jsonl`` / ``validation.jsonl`` of topic questions answered with the topic's name."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    labels = ("sports", "cooking")
    for split, count in rows.items():
        with open(folder / f"{split}.jsonl", "w") as handle:
            for index in range(count):
                label = labels[index % 2]
                words = rng.choices(FILLER, k=3) + rng.choices(CUES[label], k=3)
                rng.shuffle(words)
                handle.write(json.dumps(chat_row(shape, index, " ".join(words), label)) + "\n")
    return folder


def write_topic_preferences(folder: Path, rows: dict[str, int], shape: str = "pairs", seed: int = 0) -> Path:
    """``{split}.jsonl`` of topic questions as preference rows: the right topic preferred to the other one.

    ``shape``: ``pairs`` (prompt / chosen / rejected strings), ``conversations`` (chosen and rejected
    message lists sharing the prompt turns) or ``unpaired`` (KTO: one completion and its label).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    labels = ("sports", "cooking")
    for split, count in rows.items():
        with open(folder / f"{split}.jsonl", "w") as handle:
            for index in range(count):
                label, other = labels[index % 2], labels[(index + 1) % 2]
                words = rng.choices(FILLER, k=3) + rng.choices(CUES[label], k=3)
                rng.shuffle(words)
                question = f"which topic : {' '.join(words)}"
                handle.write(json.dumps(preference_row(shape, index, question, label, other)) + "\n")
    return folder


def preference_row(shape: str, index: int, question: str, label: str, other: str) -> dict[str, object]:
    if shape == "unpaired":  # alternate desirable and undesirable completions
        desirable = index % 4 < 2
        return {
            "id": index,
            "prompt": question,
            "completion": label if desirable else other,
            "label": desirable,
        }
    if shape == "conversations":
        prompt = [
            {"role": "system", "content": "answer with one word"},
            {"role": "user", "content": question},
        ]
        return {
            "id": index,
            "chosen": [*prompt, {"role": "assistant", "content": label}],
            "rejected": [*prompt, {"role": "assistant", "content": other}],
        }
    return {"id": index, "prompt": question, "chosen": label, "rejected": other}
