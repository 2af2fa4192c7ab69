"""A small OpenAI-compatible chat-completions server that misbehaves on purpose.

Run as its own process on 127.0.0.1 by the label tests and ``bench/label.py``; it
prints ``port N`` once listening. The answer to a request is a function of its
messages only (so two runs get the same labels): the row number is read from
``row=N`` in the user message and the answer is ``--choices``' entry at a hash of the
message; the log-probability (one token) spreads the confidence over [0.37, 1].
Faults are drawn per request (seeded): 429 with ``retry-after-ms``, 500, a reply
slower than the client's timeout, a 200 whose body is not JSON, an answer outside the
choices. The answer is ``{"label": ...}`` when the request asks for structured output
or the prompt says JSON. Every request is appended to ``--log`` as a JSON line (row, outcome, the
tokens the reply reported, whether the bearer key was the expected one), which is how
the tests count what was asked and paid. ``--workers N`` serves the one listening
socket from N processes (``bench/label.py``, so that the server is not what limits the
clients it compares); each worker draws its faults from its own copy of the seeded
generator.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROW = re.compile(r"row=(\d+)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--choices", default="alpha,beta,gamma")
    parser.add_argument("--log", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before every reply")
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-slow", type=float, default=0.0)
    parser.add_argument("--slow-seconds", type=float, default=3.0)
    parser.add_argument("--rate-malformed", type=float, default=0.0)
    parser.add_argument("--rate-outside", type=float, default=0.0)
    parser.add_argument("--always", default="", help="answer only this: 'outside', or an HTTP status")
    parser.add_argument("--refuse", default="", help="comma list: logprobs, response_format -> 400")
    parser.add_argument("--workers", type=int, default=1, help="processes serving the listening socket")
    return parser.parse_args()


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.random = random.Random(args.seed)
        self.lock = threading.Lock()
        self.log = open(args.log, "a", buffering=1)  # noqa: SIM115 - lives as long as the server
        self.expected_key = os.environ.get("FAULT_SERVER_KEY")

    def draw(self) -> str:
        args = self.args
        if args.always:
            return args.always
        with self.lock:
            roll = self.random.random()
        for outcome, rate in (
            ("429", args.rate_429),
            ("500", args.rate_500),
            ("slow", args.rate_slow),
            ("malformed", args.rate_malformed),
            ("outside", args.rate_outside),
        ):
            if roll < rate:
                return outcome
            roll -= rate
        return "ok"

    def write(self, entry: dict) -> None:
        with self.lock:
            self.log.write(json.dumps(entry) + "\n")


def answer_for(text: str, choices: list[str]) -> tuple[str, float]:
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return choices[digest % len(choices)], -((digest >> 8) % 100) / 100


def image_size(content: list) -> str | None:
    from PIL import Image

    for part in content:
        if part.get("type") == "image_url":
            data = part["image_url"]["url"].split(",", 1)[1]
            width, height = Image.open(io.BytesIO(base64.b64decode(data))).size
            return f"{width}x{height}"
    return None


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            user = body["messages"][-1]["content"]
            text = user if isinstance(user, str) else " ".join(p.get("text", "") for p in user)
            match = ROW.search(text)
            row = int(match.group(1)) if match else None
            authorized = self.headers.get("Authorization") == f"Bearer {state.expected_key}"
            outcome = state.draw()
            for option in filter(None, state.args.refuse.split(",")):
                if option in body:
                    outcome = "refuse"
            entry = {"row": row, "outcome": outcome, "authorized": authorized, "tokens": [0, 0]}
            if state.args.delay:
                time.sleep(state.args.delay)
            if outcome.isdigit() and outcome != "429":
                self.send(int(outcome), {"error": {"message": f"injected {outcome}"}})
            elif outcome == "429":
                wait = {"retry-after-ms": "50", "Retry-After": "1"}
                self.send(429, {"error": {"message": "slow down"}}, wait)
            elif outcome == "refuse":
                self.send(400, {"error": {"message": "unsupported parameter"}})
            elif outcome == "malformed":
                self.send_raw(200, b'{"id": "x", "choices": [')
            else:
                if outcome == "slow":
                    time.sleep(state.args.slow_seconds)
                choices = state.args.choices.split(",")
                answer, logprob = answer_for(text, choices)
                size = None if isinstance(user, str) else image_size(user)
                if size is not None:
                    answer = size
                if outcome == "outside":
                    answer = "banana"
                if "response_format" in body or "JSON" in text:
                    answer = json.dumps({"label": answer})
                tokens = [len(text.split()), 1]
                entry["tokens"] = tokens
                self.send(200, completion(body, answer, logprob, tokens))
            state.write(entry)

        def send(self, status: int, payload: dict, headers: dict | None = None) -> None:
            self.send_raw(status, json.dumps(payload).encode(), headers)

        def send_raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): that is the point of a slow reply

    return Handler


def completion(body: dict, answer: str, logprob: float, tokens: list[int]) -> dict:
    logprobs = None
    if body.get("logprobs"):
        logprobs = {"content": [{"token": answer, "logprob": logprob, "bytes": None, "top_logprobs": []}]}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": tokens[0], "completion_tokens": tokens[1], "total_tokens": sum(tokens)},
    }


def fork_workers(server: ThreadingHTTPServer, workers: int) -> None:
    """``workers - 1`` forked copies of this process serve the same listening socket beside it.

    The kernel hands each connection to one of them. A copy exits when this process is
    gone, so stopping the server stops them all.
    """
    parent = os.getpid()
    for _ in range(workers - 1):
        if os.fork() == 0:
            threading.Thread(target=exit_without, args=(parent,), daemon=True).start()
            server.serve_forever()


def exit_without(parent: int) -> None:
    """End this worker once ``parent`` has ended (the worker is then re-parented)."""
    while os.getppid() == parent:
        time.sleep(0.2)
    os._exit(0)


def main() -> None:
    args = parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(State(args)))
    server.daemon_threads = True
    fork_workers(server, args.workers)
    print(f"port {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
