"""ApiThinker against a scripted local HTTP server: payload, retries, timeouts, bad bodies, audio refusal."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging
import re
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import numpy as np
import openai
import pytest
from PIL import Image

from tgs.errors import ThinkerError
from tgs.think.api import ApiError, ApiThinker, answer_text
from tgs.think.base import Thinker
from tgs.types import Clip, ParseStatus, Query, Thought

GOOD_TEXT = (
    "<think>\nA dog is barking on the left.\n</think>\n<answer>\n"
    "<f_object> the barking dog on the left </f_object>\n<s_object> dog </s_object>\n</answer>"
)


def chat_body(text: str) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict | Callable[[dict], dict] = field(default_factory=lambda: chat_body(GOOD_TEXT))
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # answer only when the server is closed: the client must time out
    gate: threading.Barrier | None = None  # answer once this many requests are in flight together


@dataclass
class Recorded:
    path: str
    headers: Message  # case-insensitive, as HTTP header names are
    payload: dict[str, Any]


class ScriptedServer:
    """Answers POSTs with scripted replies in order; the last reply repeats."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._replies: list[Reply] = [Reply()]
        self._lock = threading.Lock()
        self.released = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner._lock:
                    owner.requests.append(Recorded(self.path, self.headers, payload))
                    reply = owner._replies[0] if len(owner._replies) == 1 else owner._replies.pop(0)
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                try:
                    if reply.hold:
                        owner.released.wait(60)
                    if reply.gate is not None:
                        with contextlib.suppress(threading.BrokenBarrierError):
                            reply.gate.wait(30)  # only concurrent requests get past; a sequential client fails
                    body = reply.body(payload) if callable(reply.body) else reply.body
                    data = body if isinstance(body, bytes) else json.dumps(body).encode()
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    pass
                finally:
                    with owner._lock:
                        owner.in_flight -= 1

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        self._replies = list(replies)

    def close(self) -> None:
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def clip() -> Clip:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 16, 20, 3), dtype=np.uint8)
    audio = (0.3 * np.sin(np.linspace(0, 2 * np.pi * 440, 48000))).astype(np.float32)  # 1 s at 48 kHz
    return Clip(frames=frames, audio=audio, sample_rate=48000, frame_times=np.array([0.0, 1.0, 2.0]))


@pytest.fixture
def silent_clip(clip: Clip) -> Clip:
    return Clip(frames=clip.frames, audio=None, sample_rate=None, frame_times=clip.frame_times)


class Sleeps(list):
    """Records the openai client's waits between retries instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """The client waits with ``time.sleep`` in its base module; only that module's clock is replaced."""
    recorder = Sleeps()
    monkeypatch.setattr(openai._base_client, "time", SimpleNamespace(sleep=recorder, time=time.time))
    return recorder


def in_backoff(seconds: float, retry: int) -> bool:
    """The client's wait before retry ``retry + 1``: 0.5 s * 2**retry (at most 8 s), minus up to 25 % jitter."""
    nominal = min(0.5 * 2**retry, 8.0)
    return 0.75 * nominal <= seconds <= nominal


def make(server: ScriptedServer, **options: Any) -> ApiThinker:
    options.setdefault("timeout", 2.0)
    return ApiThinker(server.base_url, "tiny-av-model", **options)


def user_parts(recorded: Recorded, kind: str) -> list[dict]:
    return [p for p in recorded.payload["messages"][1]["content"] if p["type"] == kind]


def test_good_answer_and_request_payload(server: ScriptedServer, clip: Clip) -> None:
    thinker = make(server, api_key="secret", max_frames=2, temperature=0.0, max_tokens=77)
    assert isinstance(thinker, Thinker)
    [thought] = thinker.think([(Query("u1", "the dog that barks"), clip)])

    assert thought == Thought(
        uid="u1",
        raw=GOOD_TEXT,
        reasoning="A dog is barking on the left.",
        f_object="the barking dog on the left",
        s_object="dog",
        status=ParseStatus.OK,
    )
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.headers["Authorization"] == "Bearer secret"
    assert req.payload["model"] == "tiny-av-model"
    assert req.payload["max_tokens"] == 77 and req.payload["temperature"] == 0.0
    assert req.payload["messages"][0]["role"] == "system"
    [text] = user_parts(req, "text")
    assert '"the dog that barks"' in text["text"] and "0.0, 2.0 seconds" in text["text"]
    images = user_parts(req, "image_url")
    assert len(images) == 2  # max_frames=2 of 3: first and last
    url = images[1]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.format == "JPEG" and decoded.size == (20, 16)
    [audio] = user_parts(req, "input_audio")
    assert audio["input_audio"]["format"] == "wav"
    with wave.open(io.BytesIO(base64.b64decode(audio["input_audio"]["data"]))) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth(), wav.getnframes()) == (16000, 1, 2, 16000)


def test_no_audio_clip_sends_frames_only(server: ScriptedServer, silent_clip: Clip) -> None:
    make(server).think([(Query("u1", "the dog"), silent_clip)])
    [req] = server.requests
    assert user_parts(req, "input_audio") == []
    assert len(user_parts(req, "image_url")) == 3
    assert "not available" in user_parts(req, "text")[0]["text"]
    assert "Authorization" not in req.headers


def test_500_then_success_is_retried(server: ScriptedServer, clip: Clip, sleeps: Sleeps) -> None:
    server.script(Reply(500, {"error": {"message": "overloaded"}}), Reply())
    [thought] = make(server).think([(Query("u1", "the dog"), clip)])
    assert thought.s_object == "dog"
    assert len(server.requests) == 2
    [wait] = sleeps
    assert in_backoff(wait, 0)


def test_retries_are_the_openai_clients(server: ScriptedServer, clip: Clip, sleeps: Sleeps) -> None:
    """500 twice then 200: exactly three requests, each stamped by the client with its retry count."""
    server.script(Reply(500, {"error": "busy"}), Reply(503, {"error": "busy"}), Reply())
    [thought] = make(server, max_retries=2).think([(Query("u1", "the dog"), clip)])
    assert thought.s_object == "dog"
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "1", "2"]
    assert all(r.headers["User-Agent"].startswith("OpenAI/Python") for r in server.requests)
    assert len(sleeps) == 2 and in_backoff(sleeps[0], 0) and in_backoff(sleeps[1], 1)


def test_always_500_fails_after_max_retries_with_status(server: ScriptedServer, clip: Clip, sleeps: Sleeps) -> None:
    server.script(Reply(500, {"error": {"message": "the GPU is on fire"}}))
    thinker = make(server, max_retries=2)
    with pytest.raises(ApiError) as info:
        thinker.think([(Query("u1", "the dog"), clip)])
    err = info.value
    assert err.status == 500 and err.attempts == 3 and err.kind == "thinker"
    assert "HTTP 500 after 3 attempts" in str(err) and "the GPU is on fire" in str(err)
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and in_backoff(sleeps[0], 0) and in_backoff(sleeps[1], 1)  # exponential backoff


def test_429_honours_retry_after(server: ScriptedServer, clip: Clip, sleeps: Sleeps) -> None:
    server.script(Reply(429, {"error": "slow down"}, headers={"Retry-After": "3"}), Reply())
    [thought] = make(server).think([(Query("u1", "the dog"), clip)])
    assert thought.status is ParseStatus.OK
    assert sleeps == [3.0]


def test_retry_after_beyond_two_minutes_ends_the_retries(server: ScriptedServer, clip: Clip, sleeps: Sleeps) -> None:
    """The client's rule, as docs/thinkers.md states it: it does not wait 10 minutes, it reports at once."""
    server.script(Reply(429, {"error": {"message": "quota"}}, headers={"Retry-After": "600"}), Reply())
    [outcome] = make(server, max_retries=3).think_each([(Query("u1", "the dog"), clip)])
    assert isinstance(outcome, ApiError) and outcome.status == 429 and outcome.attempts == 1
    assert "HTTP 429 after 1 attempt: quota" in str(outcome) and "reachable" in (outcome.fix or "")
    assert len(server.requests) == 1 and sleeps == []


def test_timeout_is_retried_then_fails(server: ScriptedServer, clip: Clip) -> None:
    """A reply held back until the test ends can only end in the client's timeout (no clock asserted)."""
    server.script(Reply(hold=True), Reply())
    [thought] = make(server, timeout=0.15, max_retries=1).think([(Query("u1", "the dog"), clip)])
    assert thought.s_object == "dog" and len(server.requests) == 2

    server.script(Reply(hold=True))
    with pytest.raises(ApiError, match=r"timed out after 0.15 s after 1 attempt") as info:
        make(server, timeout=0.15, max_retries=0).think([(Query("u2", "the dog"), clip)])
    assert info.value.status is None and len(server.requests) == 3


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(200, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"}), "not JSON"),
        (Reply(200, {"object": "error", "error": {"message": "model not loaded"}}), "no 'choices'.*model not loaded"),
        (Reply(200, {"choices": [{"message": {"role": "assistant"}}]}), "no choices\\[0\\].message.content"),
        (Reply(200, [1, 2]), "JSON list"),
    ],
)
def test_malformed_body_is_a_failure_not_retried(server: ScriptedServer, clip: Clip, reply: Reply, message: str) -> None:
    server.script(reply)
    [outcome] = make(server, max_retries=3).think_each([(Query("u1", "the dog"), clip)])
    assert isinstance(outcome, ApiError)
    assert outcome.attempts == 1 and len(server.requests) == 1
    assert re.search(message, str(outcome))


def test_auto_audio_refused_once_then_frames_only(
    server: ScriptedServer, clip: Clip, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = Reply(400, {"error": {"message": "This model does not support audio input."}})
    server.script(refusal, Reply(), Reply())
    thinker = make(server)
    with caplog.at_level(logging.WARNING, logger="tgs.think.api"):
        outcomes = thinker.think_each([(Query("u1", "the dog"), clip), (Query("u2", "the cat"), clip)])
    assert all(isinstance(o, Thought) and o.s_object == "dog" for o in outcomes)
    first, retry, second = server.requests
    assert len(user_parts(first, "input_audio")) == 1
    assert user_parts(retry, "input_audio") == [] and user_parts(second, "input_audio") == []
    assert "not available" in user_parts(retry, "text")[0]["text"]
    assert not thinker.audio_enabled
    assert sum("refused the audio input" in r.getMessage() for r in caplog.records) == 1


def test_always_audio_400_fails_and_other_400_is_not_retried(server: ScriptedServer, clip: Clip) -> None:
    server.script(Reply(400, {"error": {"message": "audio input is not supported"}}))
    with pytest.raises(ApiError, match="HTTP 400") as info:
        make(server, send_audio="always").think([(Query("u1", "the dog"), clip)])
    assert info.value.status == 400 and len(server.requests) == 1

    server.script(Reply(400, {"error": {"message": "temperature must be >= 0"}}))
    with pytest.raises(ApiError, match="temperature must be") as info:
        make(server, max_retries=3).think([(Query("u2", "the dog"), clip)])
    assert info.value.attempts == 1 and len(server.requests) == 2


def test_never_audio(server: ScriptedServer, clip: Clip) -> None:
    make(server, send_audio="never").think([(Query("u1", "the dog"), clip)])
    assert user_parts(server.requests[0], "input_audio") == []


def test_one_failure_does_not_kill_the_others(server: ScriptedServer, clip: Clip) -> None:
    server.script(Reply(), Reply(404, {"error": {"message": "no such model"}}), Reply())
    items = [(Query(f"u{i}", "the dog"), clip) for i in range(3)]
    thinker = make(server)
    first, failed, third = thinker.think_each(items)
    assert isinstance(first, Thought) and isinstance(third, Thought)
    assert isinstance(failed, ApiError) and failed.status == 404 and "no such model" in str(failed)
    assert "base URL" in (failed.fix or "")
    server.script(Reply(404, {"error": {"message": "no such model"}}))
    with pytest.raises(ApiError):
        thinker.think(items[:1])


def test_concurrent_requests_keep_item_order(server: ScriptedServer, clip: Clip) -> None:
    def echo(payload: dict) -> dict:
        text = payload["messages"][1]["content"][0]["text"]
        expression = text.split('Referring expression: "', 1)[1].split('"', 1)[0]
        return chat_body(f"<f_object> {expression} </f_object><s_object> {expression} </s_object>")

    server.script(Reply(body=echo, gate=threading.Barrier(2)))
    items = [(Query(f"u{i}", f"object {i}"), clip) for i in range(4)]
    thoughts = make(server, max_concurrency=4).think(items)
    assert [t.uid for t in thoughts] == ["u0", "u1", "u2", "u3"]
    assert [t.s_object for t in thoughts] == ["object 0", "object 1", "object 2", "object 3"]
    assert server.max_in_flight >= 2


def test_connection_refused_is_retried_then_reported(clip: Clip, sleeps: Sleeps) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    thinker = ApiThinker(f"http://127.0.0.1:{port}/v1", "m", max_retries=1, timeout=1.0)
    with pytest.raises(ApiError, match=r"cannot connect.*after 2 attempts") as info:
        thinker.think([(Query("u1", "the dog"), clip)])
    assert info.value.status is None and len(sleeps) == 1 and in_backoff(sleeps[0], 0)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TGS_API_BASE_URL", "OPENAI_BASE_URL", "TGS_API_MODEL", "TGS_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ThinkerError, match="base URL"):
        ApiThinker()
    monkeypatch.setenv("OPENAI_BASE_URL", "https://example.test/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "k-openai")
    with pytest.raises(ThinkerError, match="model"):
        ApiThinker()
    monkeypatch.setenv("TGS_API_MODEL", "qwen-omni")
    thinker = ApiThinker()
    assert (thinker.url, thinker.model, thinker.api_key) == ("https://example.test/v1/chat/completions", "qwen-omni", "k-openai")
    monkeypatch.setenv("TGS_API_BASE_URL", "http://localhost:8000/v1/chat/completions")
    monkeypatch.setenv("TGS_API_KEY", "k-tgs")
    thinker = ApiThinker()
    assert (thinker.url, thinker.api_key) == ("http://localhost:8000/v1/chat/completions", "k-tgs")
    assert ApiThinker("http://h/v1", "m", "explicit").api_key == "explicit"


def test_answer_text_forms() -> None:
    parts = {"choices": [{"message": {"content": [{"type": "text", "text": "<s_object> a"}, {"type": "text", "text": " b </s_object>"}]}}]}
    assert answer_text(parts) == "<s_object> a b </s_object>"
    split = {"choices": [{"message": {"content": "<s_object> dog </s_object>", "reasoning_content": " it barks "}}]}
    assert answer_text(split) == "<think>\nit barks\n</think>\n<s_object> dog </s_object>"
    kept = {"choices": [{"message": {"content": "<think>x</think>", "reasoning_content": "y"}}]}
    assert answer_text(kept) == "<think>x</think>"


def test_missing_clip_is_a_per_item_failure(server: ScriptedServer) -> None:
    [outcome] = make(server).think_each([(Query("u1", "the dog"), None)])
    assert isinstance(outcome, ThinkerError) and "decoded clip" in str(outcome)
    assert server.requests == []
