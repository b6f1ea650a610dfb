"""The HTTP client of tokentap's trainer-facing routes (DESIGN.md §3, §5, §8, §9, §11)."""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Generator, Iterator, List, Optional, Tuple, Union, cast

__all__ = ["Client", "Error"]

log = logging.getLogger("tokentap")

JSON = Dict[str, Any]
AttemptID = Union[str, int]

# tokentap's rule for rollout and attempt ids: 1-128 of [A-Za-z0-9._:-],
# and not the path segments "." or "..".
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

# Statuses worth waiting out in the feed: a restarting sidecar (no answer at
# all, status 0), a gateway in front of it, a sidecar that cannot read its
# store for a moment.
_TRANSIENT = frozenset({0, 408, 429, 500, 502, 503, 504})


class Error(Exception):
    """An error answered by tokentap, or no answer at all.

    ``status`` is the HTTP status (0 when the sidecar could not be reached or
    did not answer within the timeout); ``message`` is tokentap's message
    (``error.message`` of its ``{"error": {"message", "type", "param",
    "code"}}`` body), or the body itself when it is not in that shape;
    ``type`` is ``error.type`` (``"NotFoundError"``, ...) when given.
    Neither the admin token nor any header is ever part of it.
    """

    status: int
    message: str
    type: Optional[str]
    method: str
    path: str

    def __init__(self, status: int, message: str, type: Optional[str] = None, method: str = "", path: str = "") -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.type = type
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f" ({self.method} {self.path})" if self.method else ""
        if self.status == 0:
            return f"tokentap unreachable{where}: {self.message}"
        return f"tokentap {self.status}{where}: {self.message}"

    def __repr__(self) -> str:
        return f"tokentap.Error(status={self.status!r}, message={self.message!r}, type={self.type!r})"


def _check_id(kind: str, value: AttemptID) -> str:
    s = str(value)
    if not _ID.match(s) or s in (".", ".."):
        raise ValueError(f"{kind} must be 1-128 characters of [A-Za-z0-9._:-] (not '.' or '..'), got {s!r}")
    return s


class Client:
    """A client of one tokentap sidecar, for trainers.

    ``url`` is the sidecar's base URL (``http://sidecar:8100``); ``token`` its
    ``--admin-token`` when it has one, sent as ``Authorization: Bearer`` on
    ``/api/v1/*`` and ``/admin/*`` only (the agent routes ``reward`` and
    ``complete`` need none) and never shown by ``repr``, errors or logs;
    ``timeout`` bounds every request in seconds (calls that wait on the
    server, ``feed``'s long poll, ``paused``'s drain and ``complete``, get
    their wait on top of it).

    ``cursor`` is the feed's position: ``"0"`` at first, advanced as ``feed``
    yields completed attempts; set it to resume where an earlier run stopped.
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url must be like http://host:8100, got {url!r}")
        if parts.username or parts.password:
            raise ValueError("url must not carry credentials; pass the admin token as token=")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url: str = url.rstrip("/")
        self.timeout: float = float(timeout)
        self._token: Optional[str] = token or None
        self._cursor: str = "0"
        # Attempts of the last feed page not yet yielded (a consumer that
        # stopped mid-page), with the cursor after each of them.
        self._pending: List[Tuple[JSON, str]] = []

    def __repr__(self) -> str:
        token = "'***'" if self._token else "None"
        return f"tokentap.Client({self.url!r}, token={token}, timeout={self.timeout!r})"

    # ---- the feed cursor -------------------------------------------------

    @property
    def cursor(self) -> str:
        """Where ``feed`` resumes: every attempt completed after it is still to come."""
        return self._cursor

    @cursor.setter
    def cursor(self, value: Union[str, int]) -> None:
        s = str(value)
        if not s.isdigit():
            raise ValueError(f"a feed cursor is an unsigned integer, got {value!r}")
        if s != self._cursor:
            self._pending = []
        self._cursor = s

    # ---- HTTP ------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        body: Optional[JSON] = None,
        query: Optional[Dict[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> Tuple[int, Any]:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        url = self.url + path + ("?" + urllib.parse.urlencode(q) if q else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self._token and (path.startswith("/api/") or path.startswith("/admin/")):
            # An unredirected header: urllib never carries it to another host.
            req.add_unredirected_header("Authorization", "Bearer " + self._token)
        try:
            with urllib.request.urlopen(req, timeout=timeout if timeout is not None else self.timeout) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            try:
                raw = e.read()
            except (OSError, AttributeError):  # no body came with it
                raw = b""
            raise _error_of(e.code, raw, method, path) from None
        except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise Error(0, f"{type(reason).__name__}: {reason}", None, method, path) from None
        if not raw:
            return status, None
        try:
            return status, json.loads(raw)
        except ValueError:
            raise Error(status, "answer is not JSON: " + raw[:200].decode("utf-8", "replace"), None, method, path) from None

    def _get(self, path: str, query: Optional[Dict[str, Any]] = None, timeout: Optional[float] = None) -> Any:
        return self._request("GET", path, None, query, timeout)[1]

    def _attempt_path(self, rollout_id: str, attempt_id: AttemptID) -> str:
        return f"/rollout/{_check_id('rollout_id', rollout_id)}/attempt/{_check_id('attempt_id', attempt_id)}"

    def _view_path(self, rollout_id: str, attempt_id: AttemptID, view: str) -> str:
        rid = _check_id("rollout_id", rollout_id)
        aid = _check_id("attempt_id", attempt_id)
        return f"/api/v1/rollouts/{rid}/attempts/{aid}/{view}"

    # ---- agent-facing ----------------------------------------------------

    def base_url(self, rollout_id: str, attempt_id: AttemptID = 0) -> str:
        """The OpenAI base URL an agent uses for one attempt of a rollout:
        ``{url}/rollout/{rid}/attempt/{aid}/v1`` (pass it as ``base_url=`` to
        ``openai.OpenAI``). Anthropic SDKs and Claude Code take it without
        the ``/v1``."""
        return self.url + self._attempt_path(rollout_id, attempt_id) + "/v1"

    def reward(
        self,
        rollout_id: str,
        attempt_id: AttemptID,
        value: float,
        *,
        name: Optional[str] = None,
        sequence_id: Optional[int] = None,
        choice_index: Optional[int] = None,
    ) -> int:
        """Records a reward for an attempt and returns the reward's own sequence id.

        Without ``sequence_id`` it goes, by Agent Lightning's rule, to the most
        recent call before it that has no reward yet; with ``sequence_id`` (and
        ``choice_index``) to that call (that choice), for GRPO groups of
        ``n > 1`` choices. ``name`` defaults to ``"primary"`` on the server.
        """
        body: JSON = {"value": float(value)}
        if name is not None:
            body["name"] = name
        if sequence_id is not None:
            body["sequence_id"] = int(sequence_id)
        if choice_index is not None:
            body["choice_index"] = int(choice_index)
        _, out = self._request("POST", self._attempt_path(rollout_id, attempt_id) + "/reward", body)
        return int(out["sequence_id"])

    def complete(self, rollout_id: str, attempt_id: AttemptID, timeout: Optional[float] = None) -> JSON:
        """Marks an attempt complete once its calls in flight are recorded:
        ``{"calls": N, "last_sequence_id": M}``. It then enters the feed;
        later calls, rewards and completes of it get 409. ``timeout``
        (default: the client's) bounds the wait for calls in flight."""
        out = self._request("POST", self._attempt_path(rollout_id, attempt_id) + "/complete", None, None, timeout)[1]
        return dict(out)

    # ---- views -----------------------------------------------------------

    def calls(self, rollout_id: str, attempt_id: AttemptID = "latest") -> JSON:
        """The calls view of one attempt (DESIGN §5): every recorded call with
        its exact prompt and choice token IDs, logprobs, status, usage, and the
        attempt's rewards. ``attempt_id`` may be ``"latest"``."""
        return dict(self._get(self._view_path(rollout_id, attempt_id, "calls")))

    def triplets(self, rollout_id: str, attempt_id: AttemptID = "latest") -> JSON:
        """The triplets view (DESIGN §5): one (prompt, response, reward) per
        choice of every usable call, in sequence order."""
        return dict(self._get(self._view_path(rollout_id, attempt_id, "triplets")))

    def trajectories(self, rollout_id: str, attempt_id: AttemptID = "latest") -> JSON:
        """The trajectories view (DESIGN §9): the attempt's calls merged into
        token sequences with loss masks, and its drift entries."""
        return dict(self._get(self._view_path(rollout_id, attempt_id, "trajectories")))

    def rollouts(self, limit: Optional[int] = None, after: Optional[str] = None) -> JSON:
        """One page of the rollouts list: ``{"rollouts": [...], "next": "<rollout id>"}``
        (``next`` is empty on the last page; pass it as ``after``)."""
        return dict(self._get("/api/v1/rollouts", {"limit": limit, "after": after}))

    def iter_rollouts(self, page_size: int = 100) -> Iterator[JSON]:
        """Every rollout the sidecar holds, page by page."""
        after: Optional[str] = None
        while True:
            page = self.rollouts(limit=page_size, after=after)
            yield from page.get("rollouts") or []
            after = page.get("next") or None
            if not after:
                return

    # ---- the feed of completed attempts ----------------------------------

    def feed_page(self, after: Optional[str] = None, limit: Optional[int] = None, wait: float = 0) -> JSON:
        """One answer of the feed: ``{"attempts": [<trajectories view>...], "next": "<cursor>"}``
        of the attempts completed after cursor ``after`` (default ``self.cursor``).
        With ``wait`` (at most 60 s) an empty answer is held until one
        completes. Does not move ``self.cursor``."""
        if wait < 0 or wait > 60:
            raise ValueError("wait must be between 0 and 60 seconds")
        q: Dict[str, Any] = {"after": after if after is not None else self._cursor, "limit": limit}
        if wait:
            q["wait"] = f"{wait:g}s"
        return dict(self._get("/api/v1/trajectories", q, timeout=self.timeout + wait))

    def feed(
        self,
        wait: float = 30,
        limit: Optional[int] = None,
        max_idle: Optional[float] = None,
        retry_for: Optional[float] = None,
    ) -> Iterator[JSON]:
        """Completed attempts in completion order, forever: each one a
        trajectories view (``attempt["trajectories"]``, ``attempt["rollout_id"]``, ...).

        Starts after ``self.cursor`` and moves it past each attempt it yields,
        so the attempts yielded are never yielded again by this client, and a
        new client given the saved ``cursor`` resumes after them (exactly:
        the feed's cursor is a position in tokentap's completion log, kept
        across sidecar restarts). Each request long-polls for ``wait`` seconds.

        When the sidecar restarts or is briefly unreachable, or answers 5xx or
        429, the feed waits and asks again from the same cursor, with
        exponential backoff (0.25 s doubling to 5 s, with jitter), logging a
        warning on the ``tokentap`` logger; after ``retry_for`` seconds of
        failures (default: never) it raises the last ``Error``. Other errors
        (401, 400, ...) raise at once.

        ``max_idle``: stop (end the iteration) once no attempt has come for
        that many seconds; default: never.
        """
        wait = min(max(float(wait), 0.0), 60.0)
        idle_since = time.monotonic()
        failing_since: Optional[float] = None
        backoff = 0.25
        while True:
            while self._pending:
                attempt, cursor_after = self._pending.pop(0)
                self._cursor = cursor_after
                idle_since = time.monotonic()
                yield attempt
            poll = wait
            if max_idle is not None:
                left = max_idle - (time.monotonic() - idle_since)
                if left <= 0:
                    return
                poll = min(wait, max(left, 0.0))
            after = self._cursor
            try:
                page = self.feed_page(after=after, limit=limit, wait=poll)
            except Error as e:
                if e.status not in _TRANSIENT:
                    raise
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                if retry_for is not None and now - failing_since >= retry_for:
                    raise
                delay = min(backoff, 5.0) * (0.5 + random.random() / 2)
                log.warning("tokentap feed: %s; retrying in %.2fs from cursor %s", e, delay, after)
                time.sleep(delay)
                backoff = min(backoff * 2, 5.0)
                continue
            failing_since, backoff = None, 0.25
            if self._cursor != after:
                continue  # the cursor was set meanwhile: that page is stale
            self._pending = _positions(after, page)

    # ---- weight sync: pause, drain, resume, policy version ---------------

    def pause(self, reason: Optional[str] = None, retry_after: Optional[float] = None, drain: Optional[float] = None) -> JSON:
        """Pauses traced calls (agents get 429 with ``Retry-After``); with
        ``drain`` (seconds) the answer waits until no call is in flight, or
        that long. Returns ``/admin/state`` (check ``in_flight``)."""
        body: JSON = {}
        if reason is not None:
            body["reason"] = reason
        if retry_after is not None:
            body["retry_after_seconds"] = float(retry_after)
        if drain is not None:
            body["drain_seconds"] = float(drain)
        return dict(self._request("POST", "/admin/pause", body, None, self.timeout + (drain or 0))[1])

    def resume(self) -> JSON:
        """Lets traced calls flow again; returns ``/admin/state``."""
        return dict(self._request("POST", "/admin/resume")[1])

    @contextlib.contextmanager
    def paused(self, drain: float = 60, reason: Optional[str] = None, retry_after: Optional[float] = None) -> Generator[JSON, None, None]:
        """Pause, wait up to ``drain`` seconds for the calls in flight to be
        recorded, run the block, resume, even when the block raises::

            with tt.paused(drain=60, reason="weight sync") as state:
                sync_weights()                 # state["in_flight"] == 0 when drained
                tt.set_policy_version("step-13")

        Yields the state after the drain; ``state["in_flight"] > 0`` means the
        drain timed out (those calls finish on the old weights and carry the
        old ``policy_version``).
        """
        state = self.pause(reason=reason, retry_after=retry_after, drain=drain)
        if state.get("in_flight"):
            log.warning("tokentap: %d calls still in flight after a %gs drain", state["in_flight"], drain)
        failed = True
        try:
            yield state
            failed = False
        finally:
            try:
                self.resume()
            except Error:
                if not failed:
                    raise
                # The block's own exception is the one to see.
                log.exception("tokentap: resume after a failed paused block")

    def set_policy_version(self, version: str) -> str:
        """Stamps ``version`` on the calls sent from now on
        (``policy_version`` in the views; kept across restarts; ``""`` clears)."""
        out = self._request("PUT", "/admin/policy-version", {"version": str(version)})[1]
        return str(out["policy_version"])

    def policy_version(self) -> str:
        """The policy version stamped on new calls now (``""`` when none)."""
        return str(self.state().get("policy_version") or "")

    def state(self) -> JSON:
        """``/admin/state``: paused, pause, in_flight, policy_version,
        routing, upstreams, store, otlp."""
        return dict(self._get("/admin/state"))

    # ---- health ----------------------------------------------------------

    def healthy(self) -> bool:
        """``/healthz``: whether the sidecar process serves."""
        return self._answers("/healthz")

    def ready(self) -> bool:
        """``/readyz``: the store takes writes and an upstream answered lately."""
        return self._answers("/readyz")

    def _answers(self, path: str) -> bool:
        try:
            self._get(path)
            return True
        except Error:
            return False


def _positions(after: str, page: JSON) -> List[Tuple[JSON, str]]:
    """Pairs each attempt of a feed page with the cursor after it.

    Each attempt carries it as ``cursor``. From a sidecar too old to say,
    only the page's end is known exactly: when the page's ``next`` shows its
    entries are consecutive the i-th attempt's is ``after + i + 1``;
    otherwise the earlier attempts keep the page's start, so a run that
    stops mid-page and resumes from a saved cursor sees them again rather
    than losing any (within one client they are never repeated).
    """
    attempts = list(page.get("attempts") or [])
    nxt = str(page.get("next") or after)
    start = int(after)
    dense = int(nxt) - start == len(attempts)
    out: List[Tuple[JSON, str]] = []
    for i, a in enumerate(attempts):
        cursor = a.get("cursor")
        if isinstance(cursor, str) and cursor.isdigit():
            out.append((a, cursor))
            continue
        last = i == len(attempts) - 1
        out.append((a, nxt if last else (str(start + i + 1) if dense else after)))
    return out


def _error_of(status: int, raw: bytes, method: str, path: str) -> Error:
    text = raw.decode("utf-8", "replace")
    try:
        body: Any = json.loads(text)
    except ValueError:
        return Error(status, text.strip()[:500] or f"HTTP {status}", None, method, path)
    err: Any = cast(Dict[str, Any], body).get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):  # tokentap's (OpenAI's) shape
        e = cast(Dict[str, Any], err)
        kind = e.get("type")
        return Error(status, str(e.get("message", "")), kind if isinstance(kind, str) else None, method, path)
    if isinstance(err, str):
        return Error(status, err, None, method, path)
    return Error(status, text.strip()[:500], None, method, path)
