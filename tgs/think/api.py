"""A thinker behind any OpenAI-compatible chat endpoint (vLLM, SGLang, a hosted model).

Each sample is one ``POST {base_url}/chat/completions``: a system prompt, then a user turn
with the instruction text, the frames as ``image_url`` parts (base64 data URLs) and, where
the server takes it, the audio as an ``input_audio`` part (base64 16-bit WAV at 16 kHz).
The answer text goes through the shared tag parser, so an API model's answer is read
exactly as Ref-Thinker's.

Failures are per sample. :meth:`ApiThinker.think_each` returns one ``Thought`` or one
exception per item, in order, so a runner records a failed sample (with the exception's
message and kind) and goes on; :meth:`ApiThinker.think` follows the plain ``Thinker``
protocol and raises the first failure.

Transport: the ``openai`` client library (``openai.OpenAI`` with ``base_url``, ``api_key``,
``timeout`` and ``max_retries``) sends the request, so its rules apply:

- 408, 409, 429, 5xx, timeouts and connection errors are retried up to ``max_retries``
  times (``max_retries + 1`` attempts) with the library's exponential backoff (0.5 s, 1 s,
  2 s, ... up to 8 s, minus up to 25 % jitter), or what the server's ``Retry-After``
  header asks (up to two minutes; a longer one is not retried);
- other 4xx are not retried: the request itself is wrong;
- a 2xx whose body is not JSON or lacks ``choices[0].message.content`` is a failure, not
  retried (the server answers, but not in the chat-completions format). The body is read
  raw (``with_raw_response``) and parsed here, because OpenAI-compatible servers add fields
  the library's models do not know (vLLM's ``reasoning_content``, content as text parts);
- ``send_audio="auto"`` sends the audio; a 400 that mentions audio or unsupported content
  makes the thinker retry that request once without audio and stop sending audio for the
  rest of its life (one warning). ``"always"`` treats that 400 as a failure, ``"never"``
  sends frames only.

The library's errors (``APIStatusError``, ``APITimeoutError``, ``APIConnectionError``)
become one :class:`ApiError` each, naming the URL, the status, the number of attempts and
the server's message. ``timeout`` bounds each connect, read and write of one attempt.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import openai

from tgs.errors import ThinkerError
from tgs.think.base import PerItemThinker
from tgs.think.parser import parse_answer
from tgs.think.prompting import (
    AUDIO_SAMPLE_RATE,
    SYSTEM_PROMPT,
    ImageFormat,
    audio_for_model,
    build_instruction,
    encode_image_data_url,
    select_frame_indices,
    wav_base64,
)
from tgs.types import Clip, Query, Thought

__all__ = ["ENV_API_KEY", "ENV_BASE_URL", "ENV_MODEL", "ApiError", "ApiThinker", "SendAudio", "answer_text"]

logger = logging.getLogger(__name__)

SendAudio = Literal["auto", "always", "never"]

ENV_BASE_URL = ("TGS_API_BASE_URL", "OPENAI_BASE_URL")
ENV_MODEL = ("TGS_API_MODEL",)
ENV_API_KEY = ("TGS_API_KEY", "OPENAI_API_KEY")

_BODY_EXCERPT = 300
# A 400 whose body mentions one of these is taken as "this server does not take audio".
_AUDIO_REFUSAL_WORDS = ("audio", "unsupported", "not supported", "modalit")


class ApiError(ThinkerError):
    """One sample's request failed for good.

    status: the last HTTP status, or None for timeouts, connection errors and bodies
        that are not chat completions; attempts: how many requests were made; detail: the
        server's error message (or a body excerpt), "" when there was no body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 1,
        detail: str = "",
        fix: str | None = None,
    ) -> None:
        self.status = status
        self.attempts = attempts
        self.detail = detail
        super().__init__(message, fix=fix)


class _Failure(Exception):
    """A 2xx body that is not a chat completion (the reason says what is wrong with it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _env(names: Sequence[str]) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


def _chat_url(base_url: str) -> str:
    url = base_url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _BODY_EXCERPT else text[:_BODY_EXCERPT] + "..."


def _error_detail(body: str) -> str:
    """The server's own error message when the body is an OpenAI-style error, else an excerpt."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        return _excerpt(body)
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return _excerpt(error["message"])
        if isinstance(error, str):
            return _excerpt(error)
    return _excerpt(body)


def answer_text(body: Any) -> str:
    """The assistant text of a chat-completions response body (already JSON-decoded).

    ``message.content`` may be a string or a list of ``{"type": "text", "text": ...}``
    parts. When the server returns the reasoning separately (``reasoning_content``, as vLLM
    does for reasoning models) and the content has no ``<think>``, the reasoning is put back
    in front as ``<think>...</think>`` so the parser sees one chain. Raises _Failure when the
    body has no answer.
    """
    if not isinstance(body, dict):
        raise _Failure(f"the response is a JSON {type(body).__name__}, expected an object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        detail = f" (server error: {_error_detail(json.dumps(body['error']))})" if "error" in body else ""
        raise _Failure(f"the response has no 'choices'{detail}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        content = "".join(texts) if texts else None
    if not isinstance(content, str):
        raise _Failure("the response has no choices[0].message.content text")
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning.strip() and "<think>" not in content:
        content = f"<think>\n{reasoning.strip()}\n</think>\n{content}"
    return content


class ApiThinker(PerItemThinker):
    """Zero-shot thinking by a chat model behind an OpenAI-compatible HTTP endpoint.

    base_url: e.g. ``http://localhost:8000/v1``; default ``$TGS_API_BASE_URL``, then
        ``$OPENAI_BASE_URL``. ``/chat/completions`` is appended unless already there.
    model: the served model name; default ``$TGS_API_MODEL``.
    api_key: sent as ``Authorization: Bearer``; default ``$TGS_API_KEY``, then
        ``$OPENAI_API_KEY``; None sends no header (local servers).
    timeout: seconds for each connect, read and write of one attempt (the client's ``timeout``).
    max_retries: retries after the first attempt, for 408, 409, 429, 5xx, timeouts and
        connection errors (the client's ``max_retries``; its backoff and ``Retry-After``).
    send_audio: "auto", "always" or "never" (see the module docstring).
    max_frames: at most this many frames are sent, spread evenly over the clip.
    image_format / image_max_side: how frames are encoded (None keeps the original size).
    temperature / max_tokens: generation settings sent with each request.
    max_concurrency: requests in flight at once within one ``think_each`` call (one
        shared client: its connection pool is thread-safe).
    """

    name = "api"

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        send_audio: SendAudio = "auto",
        max_frames: int | None = 10,
        image_format: ImageFormat = "jpeg",
        image_max_side: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 512,
        max_concurrency: int = 1,
        system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        base_url = base_url or _env(ENV_BASE_URL)
        model = model or _env(ENV_MODEL)
        if not base_url:
            raise ThinkerError(
                "the api thinker needs the endpoint's base URL",
                fix=f"set {ENV_BASE_URL[0]} (or pass base_url), e.g. http://localhost:8000/v1",
            )
        if not model:
            raise ThinkerError(
                "the api thinker needs the served model's name",
                fix=f"set {ENV_MODEL[0]} (or pass model), e.g. Qwen/Qwen2.5-Omni-7B",
            )
        if send_audio not in ("auto", "always", "never"):
            raise ValueError(f"send_audio: expected 'auto', 'always' or 'never', got {send_audio!r}")
        if image_format not in ("jpeg", "png"):
            raise ValueError(f"image_format: expected 'jpeg' or 'png', got {image_format!r}")
        if timeout <= 0 or max_retries < 0 or max_concurrency < 1:
            raise ValueError(
                "expected timeout > 0, max_retries >= 0 and max_concurrency >= 1, got "
                f"{timeout}, {max_retries}, {max_concurrency}"
            )
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames: expected a positive integer or None, got {max_frames}")
        self.url = _chat_url(base_url)
        self.model = model
        self.api_key = api_key or _env(ENV_API_KEY)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.send_audio = send_audio
        self.max_frames = max_frames
        self.image_format = image_format
        self.image_max_side = image_max_side
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.max_concurrency = int(max_concurrency)
        self.system_prompt = system_prompt
        self._audio_refused = False
        self._lock = threading.Lock()
        # Without a key no Authorization header is sent (local servers): the client insists on
        # some key, so it gets a placeholder and each request omits the header explicitly.
        self._client = openai.OpenAI(
            base_url=self.url.removesuffix("/chat/completions"),
            api_key=self.api_key or "no-key",
            timeout=self.timeout,
            max_retries=self.max_retries,
        )
        self._extra_headers: dict[str, Any] = {} if self.api_key else {"Authorization": openai.omit}

    def __repr__(self) -> str:
        return f"ApiThinker(url={self.url!r}, model={self.model!r}, send_audio={self.send_audio!r})"

    @property
    def audio_enabled(self) -> bool:
        """Whether audio is sent now ("auto" turns it off after the server refused it once)."""
        return self.send_audio == "always" or (self.send_audio == "auto" and not self._audio_refused)

    # ------------------------------------------------------------------ public API

    def think_each(self, items: Sequence[tuple[Query, Clip | None]]) -> list[Thought | Exception]:
        """One Thought or one exception per item, in order; a failure touches only its item."""
        items = list(items)
        if self.max_concurrency == 1 or len(items) <= 1:
            return [self._outcome(query, clip) for query, clip in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(lambda item: self._outcome(*item), items))

    def think_one(self, query: Query, clip: Clip | None = None) -> Thought:
        """The Thought of one sample; raises ApiError (or ThinkerError) when there is none."""
        clip = clip if clip is not None else query.clip
        if clip is None:
            raise ThinkerError(
                f"{query.uid}: the api thinker needs the decoded clip",
                fix="pass (query, clip) pairs with clips loaded",
            )
        audio_b64 = None
        if self.audio_enabled and clip.has_audio:
            audio = audio_for_model(clip, AUDIO_SAMPLE_RATE)
            audio_b64 = wav_base64(audio, AUDIO_SAMPLE_RATE) if audio is not None else None
        try:
            body = self._post(self.build_payload(query, clip, audio_b64))
        except ApiError as exc:
            if not (audio_b64 is not None and self.send_audio == "auto" and _refuses_audio(exc)):
                raise
            self._refuse_audio(exc)
            body = self._post(self.build_payload(query, clip, None))
        try:
            text = answer_text(body)
        except _Failure as failure:
            raise ApiError(
                f"{self.url}: {failure.reason}: {_excerpt(json.dumps(body))}",
                fix="check that the endpoint speaks the OpenAI chat-completions format",
            ) from None
        return parse_answer(query.uid, text)

    def build_payload(self, query: Query, clip: Clip, audio_b64: str | None) -> dict[str, Any]:
        """The chat-completions request body for one sample (audio part only when given)."""
        indices = select_frame_indices(clip.num_frames, self.max_frames)
        times = [float(clip.frame_times[i]) for i in indices]
        content: list[dict[str, Any]] = [
            {"type": "text", "text": build_instruction(query.expression, has_audio=audio_b64 is not None, frame_times=times)}
        ]
        for i in indices:
            url = encode_image_data_url(clip.frames[i], self.image_format, max_side=self.image_max_side)
            content.append({"type": "image_url", "image_url": {"url": url}})
        if audio_b64 is not None:
            content.append({"type": "input_audio", "input_audio": {"data": audio_b64, "format": "wav"}})
        return {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system_prompt},
                {"role": "user", "content": content},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }

    # ------------------------------------------------------------------ internals

    def _outcome(self, query: Query, clip: Clip | None) -> Thought | Exception:
        try:
            return self.think_one(query, clip)
        except Exception as exc:  # recorded per sample by the caller; the other samples go on
            logger.debug("%s: thinking failed", query.uid, exc_info=True)
            return exc

    def _refuse_audio(self, exc: ApiError) -> None:
        with self._lock:
            first = not self._audio_refused
            self._audio_refused = True
        if first:
            logger.warning(
                "%s refused the audio input (%s); sending frames only from now on (send_audio='never' "
                "skips this probe)",
                self.url,
                exc,
            )

    def _post(self, payload: Mapping[str, Any]) -> Any:
        """Send through the client (its retries); the decoded JSON body, or ApiError."""
        try:
            response = self._client.chat.completions.with_raw_response.create(
                **payload, extra_headers=self._extra_headers
            )
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APITimeoutError as exc:
            raise self._transport_error(f"timed out after {self.timeout:g} s", exc) from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__
            reason = f"{type(cause).__name__}: {cause}" if cause is not None else exc.message
            raise self._transport_error(f"cannot connect ({reason})", exc) from None
        raw = response.http_response.content
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            excerpt = _excerpt(raw[: _BODY_EXCERPT * 2].decode("utf-8", "replace"))
            attempts = response.retries_taken + 1
            raise ApiError(
                f"{self.url}: the response body is not JSON{_after(attempts)}: {excerpt}",
                attempts=attempts,
                detail=excerpt,
                fix="check that the endpoint speaks the OpenAI chat-completions format",
            ) from None

    def _status_error(self, exc: openai.APIStatusError) -> ApiError:
        status = exc.status_code
        attempts = _attempts(exc.response.request)
        detail = _error_detail(exc.response.text) if exc.response.content else ""
        if status in (401, 403):
            fix = f"check the API key ({ENV_API_KEY[0]} or api_key)"
        elif status == 404:
            fix = "check the base URL (it usually ends in /v1) and the model name"
        elif status >= 500 or status in (408, 409, 429):  # the statuses the client retries
            fix = _FIX_UNREACHABLE
        else:
            fix = None
        return ApiError(
            f"{self.url}: HTTP {status}{_after(attempts)}" + (f": {detail}" if detail else ""),
            status=status,
            attempts=attempts,
            detail=detail,
            fix=fix,
        )

    def _transport_error(self, reason: str, exc: openai.APIConnectionError) -> ApiError:
        attempts = _attempts(exc.request)
        return ApiError(f"{self.url}: {reason}{_after(attempts)}", attempts=attempts, fix=_FIX_UNREACHABLE)


_FIX_UNREACHABLE = "check that the server is up and reachable; raise timeout or max_retries for a slow server"


def _attempts(request: Any) -> int:
    """Requests made so far: the client stamps each with how many retries preceded it."""
    try:
        return int(request.headers.get("x-stainless-retry-count", 0)) + 1
    except (AttributeError, ValueError):
        return 1


def _after(attempts: int) -> str:
    return f" after {attempts} attempt{'s' if attempts != 1 else ''}"


def _refuses_audio(exc: ApiError) -> bool:
    """A 400 that reads like "this model does not take audio"."""
    if exc.status != 400:
        return False
    text = exc.detail.lower()
    return any(word in text for word in _AUDIO_REFUSAL_WORDS)
