"""tokentap's Python client against a real `sidecar --demo` (never a mock of tokentap)."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
from typing import Any, Dict, List

try:
    import tokentap
except ImportError:  # run from the source tree without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import tokentap

from tokentap import Client, Error, to_agentlightning, to_verl

import sidecar
from sidecar import MODEL, Sidecar, chat

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


def two_turns(tt: Client, rid: str, aid: Any = 0) -> List[Dict[str, Any]]:
    """A two-turn conversation whose second prompt extends the first (the
    qwen2.5 demo template renders history back as sampled)."""
    base = tt.base_url(rid, aid)
    msgs: List[Dict[str, Any]] = [SYSTEM, {"role": "user", "content": "What is the capital of France?"}]
    a1 = chat(base, msgs)
    msgs = msgs + [a1["choices"][0]["message"], {"role": "user", "content": "And of Italy?"}]
    a2 = chat(base, msgs)
    return [a1, a2]


def tearDownModule() -> None:
    sidecar.cleanup_build()


class SidecarTest(unittest.TestCase):
    """A test class with one real sidecar of its own, started with ARGS."""

    ARGS: "tuple[str, ...]" = ()
    sc: Sidecar

    @classmethod
    def setUpClass(cls) -> None:
        cls.sc = Sidecar(*cls.ARGS)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.sc.close()


class ViewsAndOutputs(SidecarTest):

    def setUp(self) -> None:
        self.tt = Client(self.sc.url, timeout=10)

    def test_base_url(self) -> None:
        self.assertEqual(self.tt.base_url("r7", 0), self.sc.url + "/rollout/r7/attempt/0/v1")
        self.assertEqual(Client(self.sc.url + "/").base_url("a.b:c-d", "x"), self.sc.url + "/rollout/a.b:c-d/attempt/x/v1")
        for bad in ["", "..", "a/b", "a b", "x" * 129]:
            with self.assertRaises(ValueError):
                self.tt.base_url(bad, 0)

    def test_views_and_ready_outputs_field_by_field(self) -> None:
        rid = "views-1"
        two_turns(self.tt, rid)
        self.assertEqual(self.tt.reward(rid, 0, 1.0), 3)  # calls took 1 and 2
        self.assertEqual(self.tt.complete(rid, 0), {"calls": 2, "last_sequence_id": 3})

        calls = self.tt.calls(rid, "latest")
        self.assertEqual((calls["rollout_id"], calls["attempt_id"], calls["complete"]), (rid, "0", True))
        self.assertEqual([c["sequence_id"] for c in calls["calls"]], [1, 2])
        self.assertEqual(calls["rewards"], [{"sequence_id": 3, "name": "primary", "value": 1.0}])
        c1, c2 = calls["calls"]
        for c in (c1, c2):
            self.assertTrue(c["token_ids_valid"], c["token_ids_problem"])
            self.assertEqual(len(c["choices"][0]["logprobs"]), len(c["choices"][0]["token_ids"]))

        # Trajectory: one sequence of both turns, and to_verl copies it.
        view = self.tt.trajectories(rid, 0)
        self.assertEqual(len(view["trajectories"]), 1, view)
        t = view["trajectories"][0]
        v = to_verl(t, view)
        self.assertEqual(v["prompt_ids"], t["prompt_ids"])
        self.assertEqual(v["response_ids"], t["response_ids"])
        self.assertEqual(v["response_mask"], t["response_mask"])
        self.assertEqual(v["response_logprobs"], t["response_logprobs"])
        self.assertEqual(v["num_turns"], len(t["turns"]))
        self.assertEqual(v["reward_score"], t["reward"])
        self.assertEqual(v["extra_fields"]["sequence_ids"], t["sequence_ids"])
        self.assertEqual(v["extra_fields"]["finish_reason"], t["finish_reason"])
        self.assertEqual((v["extra_fields"]["rollout_id"], v["extra_fields"]["attempt_id"]), (rid, "0"))
        # ... and against the calls it was merged from.
        self.assertEqual(v["num_turns"], 2)
        self.assertEqual(v["reward_score"], 1.0)
        self.assertEqual(v["prompt_ids"], c1["prompt_token_ids"])
        self.assertEqual(v["prompt_ids"] + v["response_ids"], c2["prompt_token_ids"] + c2["choices"][0]["token_ids"])
        n = len(v["response_ids"])
        self.assertEqual(len(v["response_mask"]), n)
        self.assertEqual(len(v["response_logprobs"]), n)
        want_mask = [0] * n
        for turn, call in zip(t["turns"], (c1, c2)):
            self.assertEqual(turn["sequence_id"], call["sequence_id"])
            s, e = turn["start"], turn["end"]
            self.assertEqual(v["response_ids"][s:e], call["choices"][0]["token_ids"])
            self.assertEqual(v["response_logprobs"][s:e], call["choices"][0]["logprobs"])
            want_mask[s:e] = [1] * (e - s)
        self.assertEqual(v["response_mask"], want_mask)
        for i in range(n):
            if want_mask[i] == 0:
                self.assertEqual(v["response_logprobs"][i], 0.0)
        self.assertEqual(sum(v["response_mask"]), len(c1["choices"][0]["token_ids"]) + len(c2["choices"][0]["token_ids"]))
        json.dumps(v)  # plain JSON-able values

        # Triplets: one per call, and to_agentlightning copies each.
        trip = self.tt.triplets(rid)
        self.assertEqual(len(trip["triplets"]), 2)
        for tr, call in zip(trip["triplets"], (c1, c2)):
            a = to_agentlightning(tr, trip)
            self.assertEqual(set(a), {"prompt", "response", "reward", "metadata"})
            self.assertEqual(a["prompt"], {"token_ids": tr["prompt_token_ids"]})
            self.assertEqual(a["response"], {"token_ids": tr["response_token_ids"], "logprobs": tr["response_logprobs"]})
            self.assertEqual(a["reward"], tr["reward"])
            self.assertEqual(a["prompt"]["token_ids"], call["prompt_token_ids"])
            self.assertEqual(a["response"]["token_ids"], call["choices"][0]["token_ids"])
            self.assertEqual(a["response"]["logprobs"], call["choices"][0]["logprobs"])
            m = a["metadata"]
            self.assertEqual((m["sequence_id"], m["choice_index"]), (call["sequence_id"], 0))
            self.assertEqual(m["finish_reason"], call["choices"][0]["finish_reason"])
            self.assertEqual(m["model"], tr["model"])
            self.assertEqual(m["server"], {"model": tr["model"], "version": tr.get("policy_version")})
            self.assertEqual((m["rollout_id"], m["attempt_id"]), (rid, "0"))
            json.dumps(a)
        # Agent Lightning's rule: the reward goes to the last call only.
        self.assertEqual([tr["reward"] for tr in trip["triplets"]], [None, 1.0])

    def test_targeted_reward_for_one_choice(self) -> None:
        rid = "grpo-1"
        out = chat(self.tt.base_url(rid, 0), [SYSTEM, {"role": "user", "content": "Pick a number."}], n=3)
        self.assertEqual(len(out["choices"]), 3)
        self.assertEqual(self.tt.reward(rid, 0, 0.5, name="judge", sequence_id=1, choice_index=2), 2)
        self.assertEqual(self.tt.reward(rid, 0, -1.0, sequence_id=1, choice_index=0), 3)
        self.tt.complete(rid, 0)
        trip = self.tt.triplets(rid, 0)["triplets"]
        self.assertEqual([(t["choice_index"], t["reward"]) for t in trip], [(0, -1.0), (1, None), (2, 0.5)])
        rewards = self.tt.calls(rid, 0)["rewards"]
        self.assertEqual(rewards[0]["target_sequence_id"], 1)
        self.assertEqual(rewards[0]["target_choice_index"], 2)
        self.assertEqual(rewards[0]["name"], "judge")
        traj = self.tt.trajectories(rid, 0)["trajectories"]
        self.assertEqual(len(traj), 3)  # each choice starts its own branch
        self.assertEqual(sorted((t["choice_index"], to_verl(t)["reward_score"]) for t in traj), [(0, -1.0), (1, None), (2, 0.5)])
        agl = [to_agentlightning(t) for t in trip]
        self.assertEqual([a["metadata"]["choice_index"] for a in agl], [0, 1, 2])
        self.assertEqual([a["reward"] for a in agl], [-1.0, None, 0.5])

    def test_rollouts_list(self) -> None:
        for rid in ("list-a", "list-b", "list-c"):
            chat(self.tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
        page = self.tt.rollouts(limit=1, after="list-a")
        self.assertEqual([r["rollout_id"] for r in page["rollouts"]], ["list-b"])
        self.assertEqual(page["next"], "list-b")
        ids = [r["rollout_id"] for r in self.tt.iter_rollouts(page_size=2)]
        self.assertEqual(ids, sorted(ids))
        self.assertTrue({"list-a", "list-b", "list-c"} <= set(ids))
        b = next(r for r in self.tt.iter_rollouts() if r["rollout_id"] == "list-b")
        self.assertEqual((b["calls"], b["attempts"][0]["attempt_id"], b["attempts"][0]["complete"]), (1, "0", False))

    def test_errors(self) -> None:
        with self.assertRaises(Error) as cm:
            self.tt.calls("no-such-rollout", "latest")
        e = cm.exception
        self.assertEqual(e.status, 404)
        self.assertEqual(e.type, "NotFoundError")
        self.assertIn("no-such-rollout", e.message)
        self.assertIn("404", str(e))
        self.assertIn(e.message, str(e))

        rid = "err-1"
        chat(self.tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
        self.tt.complete(rid, 0)
        with self.assertRaises(Error) as cm:
            self.tt.complete(rid, 0)
        self.assertEqual((cm.exception.status, cm.exception.type), (409, "ConflictError"))
        self.assertIn("already complete", cm.exception.message)
        with self.assertRaises(Error) as cm:
            self.tt.reward(rid, 0, 1.0)
        self.assertEqual(cm.exception.status, 409)
        with self.assertRaises(Error) as cm:
            self.tt.reward("err-2", 0, 1.0, sequence_id=999)
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("sequence_id", cm.exception.message)
        with self.assertRaises(Error) as cm:
            self.tt.set_policy_version("x" * 300)
        self.assertEqual(cm.exception.status, 400)

        # Nothing listening: status 0, and within the timeout.
        dead = Client(f"http://127.0.0.1:{sidecar.free_port()}", timeout=2)
        t0 = time.monotonic()
        with self.assertRaises(Error) as cm:
            dead.state()
        self.assertEqual(cm.exception.status, 0)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertFalse(dead.healthy())
        self.assertTrue(self.tt.healthy() and self.tt.ready())

    def test_timeout_on_a_silent_server(self) -> None:
        # A server that accepts and never answers: the call ends at the timeout.
        with socket.socket() as srv:
            srv.bind(("127.0.0.1", 0))
            srv.listen(1)
            tt = Client(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.5)
            t0 = time.monotonic()
            with self.assertRaises(Error) as cm:
                tt.calls("r", 0)
            self.assertEqual(cm.exception.status, 0)
            self.assertLess(time.monotonic() - t0, 2)

    def test_outputs_accept_array_likes(self) -> None:
        class Arr:  # what numpy arrays and torch tensors offer
            def __init__(self, xs: List[Any]) -> None:
                self.xs = xs

            def tolist(self) -> List[Any]:
                return list(self.xs)

        t = {"prompt_ids": Arr([1, 2]), "response_ids": Arr([3, 4, 5]), "response_mask": Arr([1, 0, 1]),
             "response_logprobs": Arr([-0.5, 0, -0.25]), "turns": [{"sequence_id": 1, "start": 0, "end": 1}, {"sequence_id": 2, "start": 2, "end": 3}],
             "reward": 1, "sequence_ids": [1, 2]}
        v = to_verl(t)
        self.assertEqual((v["prompt_ids"], v["response_ids"], v["response_mask"]), ([1, 2], [3, 4, 5], [1, 0, 1]))
        self.assertEqual((v["num_turns"], v["reward_score"]), (2, 1.0))
        bad = dict(t, response_mask=[1])
        with self.assertRaises(ValueError):
            to_verl(bad)


class Tensors(unittest.TestCase):
    def test_to_tensors(self) -> None:
        sample = to_verl({"prompt_ids": [1], "response_ids": [2, 3], "response_mask": [1, 0], "response_logprobs": [-0.1, 0], "turns": [], "reward": None})
        for backend in ("numpy", "torch"):
            try:
                __import__(backend)
            except ImportError:
                with self.assertRaises(ImportError):
                    tokentap.to_tensors(sample, backend)
                continue
            out = tokentap.to_tensors(sample, backend)
            self.assertEqual(out["response_ids"].tolist(), [2, 3])
            self.assertEqual(sample["response_ids"], [2, 3])  # the input is left alone


class AdminToken(SidecarTest):
    TOKEN = "s3cret-admin-token-for-tests"
    ARGS = ("--admin-token", TOKEN)

    def test_token_sent_and_never_shown(self) -> None:
        rid = "tok-1"
        tt = Client(self.sc.url, token=self.TOKEN, timeout=10)
        self.assertNotIn(self.TOKEN, repr(tt))
        self.assertNotIn(self.TOKEN, str(tt))
        # Agent routes need no token.
        chat(tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
        tt.reward(rid, 0, 1.0)
        tt.complete(rid, 0)
        self.assertEqual(len(tt.triplets(rid)["triplets"]), 1)
        self.assertFalse(tt.state()["paused"])

        for client in (Client(self.sc.url), Client(self.sc.url, token="wrong-" + self.TOKEN)):
            with self.assertRaises(Error) as cm:
                client.calls(rid)
            e = cm.exception
            self.assertEqual((e.status, e.type), (401, "AuthenticationError"))
            for text in (str(e), repr(e), e.message, repr(e.args)):
                self.assertNotIn(self.TOKEN, text)
        # Errors of an authorized client do not carry the token either.
        with self.assertRaises(Error) as cm:
            tt.calls("missing")
        self.assertNotIn(self.TOKEN, str(cm.exception) + repr(cm.exception))

    def test_token_not_in_logs(self) -> None:
        rid = "tok-feed"
        tt = Client(self.sc.url, token=self.TOKEN, timeout=10)
        chat(tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
        tt.complete(rid, 0)
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        logger = logging.getLogger("tokentap")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        try:
            # A feed against a dead port logs its retries: never the token.
            dead = Client(f"http://127.0.0.1:{sidecar.free_port()}", token=self.TOKEN, timeout=1)
            with self.assertRaises(Error):
                for _ in dead.feed(wait=1, retry_for=1.0):
                    pass
            got = [a["rollout_id"] for a in tt.feed(wait=1, max_idle=1)]
            self.assertIn(rid, got)
        finally:
            logger.removeHandler(handler)
        self.assertIn("retrying", stream.getvalue())
        self.assertNotIn(self.TOKEN, stream.getvalue())
        self.assertNotIn(self.TOKEN, self.sc.logs())


def slow_call(port: int, rid: str) -> "tuple[socket.socket, bytes]":
    """Starts a traced call whose body is not all sent yet: it is in flight
    until the rest is sent."""
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}).encode()
    s = socket.create_connection(("127.0.0.1", port))
    head = (f"POST /rollout/{rid}/attempt/0/v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    s.sendall(head + body[:10])
    return s, body[10:]


class PauseDrain(SidecarTest):

    def test_paused_drains_and_resumes(self) -> None:
        tt = Client(self.sc.url, timeout=10)
        rid = "pause-1"
        s, rest = slow_call(self.sc.port, rid)
        try:
            for _ in range(100):
                if tt.state()["in_flight"] == 1:
                    break
                time.sleep(0.02)
            self.assertEqual(tt.state()["in_flight"], 1)
            # The drain waits for the call in flight, finished half a second later.
            threading.Timer(0.5, lambda: s.sendall(rest)).start()
            t0 = time.monotonic()
            with tt.paused(drain=10, reason="weight sync", retry_after=2) as state:
                waited = time.monotonic() - t0
                self.assertGreaterEqual(waited, 0.4)
                self.assertLess(waited, 5)
                self.assertEqual(state["in_flight"], 0)
                self.assertTrue(state["paused"])
                self.assertEqual(state["pause"]["reason"], "weight sync")
                self.assertEqual(state["pause"]["retry_after_seconds"], 2)
                # New traced calls are refused while paused.
                with self.assertRaises(urllib.error.HTTPError) as cm:
                    chat(tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
                self.assertEqual(cm.exception.code, 429)
                self.assertEqual(cm.exception.headers["Retry-After"], "2")
                self.assertEqual(tt.set_policy_version("step-13"), "step-13")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
            self.assertTrue(reply.startswith(b"HTTP/1.1 200"), reply[:100])
        finally:
            s.close()
        self.assertFalse(tt.state()["paused"])
        self.assertEqual(tt.policy_version(), "step-13")
        chat(tt.base_url(rid, 0), [{"role": "user", "content": "hi"}])
        calls = tt.calls(rid, 0)["calls"]
        self.assertEqual([c.get("policy_version") for c in calls], [None, "step-13"])

    def test_drain_times_out_with_calls_in_flight(self) -> None:
        tt = Client(self.sc.url, timeout=10)
        s, rest = slow_call(self.sc.port, "pause-2")
        try:
            for _ in range(100):
                if tt.state()["in_flight"] == 1:
                    break
                time.sleep(0.02)
            with self.assertLogs("tokentap", "WARNING"):
                with tt.paused(drain=0.3) as state:
                    self.assertEqual(state["in_flight"], 1)
            s.sendall(rest)
        finally:
            s.close()
        self.assertFalse(tt.state()["paused"])

    def test_resumes_when_the_block_raises(self) -> None:
        tt = Client(self.sc.url, timeout=10)
        with self.assertRaises(KeyError):
            with tt.paused(drain=1):
                self.assertTrue(tt.state()["paused"])
                raise KeyError("sync failed")
        self.assertFalse(tt.state()["paused"])
        # pause/resume by hand, too
        self.assertTrue(tt.pause(reason="manual")["paused"])
        self.assertFalse(tt.resume()["paused"])
        tt.set_policy_version("")
        self.assertEqual(tt.policy_version(), "")


class Feed(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="tokentap-py-data-")
        self.sc = Sidecar(data=self.dir)

    def tearDown(self) -> None:
        self.sc.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def attempt(self, tt: Client, rid: str) -> None:
        two_turns(tt, rid)
        tt.reward(rid, 0, 1.0)
        tt.complete(rid, 0)

    def test_feed_resumes_across_a_restart(self) -> None:
        tt = Client(self.sc.url, timeout=5)
        self.assertEqual(tt.cursor, "0")
        self.attempt(tt, "feed-a")
        self.attempt(tt, "feed-b")
        got: List[str] = []
        for a in tt.feed(wait=5):
            got.append(a["rollout_id"])
            self.assertEqual(len(a["trajectories"]), 1)
            self.assertTrue(a["complete"])
            if len(got) == 2:
                break
        self.assertEqual(got, ["feed-a", "feed-b"])
        self.assertEqual(tt.cursor, "2")

        # The sidecar goes away while the trainer tails; the feed waits it out.
        self.sc.stop()
        seen: List[str] = []
        errors: List[BaseException] = []

        def tail() -> None:
            try:
                for a in tt.feed(wait=2, max_idle=20):
                    seen.append(a["rollout_id"])
                    if len(seen) == 1:
                        return
            except BaseException as e:  # surfaced below
                errors.append(e)

        th = threading.Thread(target=tail)
        with self.assertLogs("tokentap", "WARNING") as logs:
            th.start()
            time.sleep(1.0)  # a few refused connections, then the sidecar is back
            self.sc.start()
            self.attempt(tt, "feed-c")
            th.join(30)
        self.assertFalse(th.is_alive())
        self.assertEqual(errors, [])
        self.assertEqual(seen, ["feed-c"])
        self.assertTrue(any("retrying" in line for line in logs.output))
        self.assertEqual(tt.cursor, "3")

        # A new client from a saved cursor resumes exactly after it.
        other = Client(self.sc.url, timeout=5)
        other.cursor = "1"
        self.assertEqual([a["rollout_id"] for a in other.feed(wait=0.5, max_idle=1)], ["feed-b", "feed-c"])
        self.assertEqual(other.cursor, "3")
        with self.assertRaises(ValueError):
            other.cursor = "abc"

    def test_stopping_mid_page_never_repeats(self) -> None:
        tt = Client(self.sc.url, timeout=5)
        for rid in ("page-a", "page-b", "page-c"):
            self.attempt(tt, rid)
        # One page holds all three; the consumer stops after the first.
        for a in tt.feed(wait=1, limit=3):
            self.assertEqual(a["rollout_id"], "page-a")
            break
        self.assertEqual(tt.cursor, "1")
        rest = [a["rollout_id"] for a in tt.feed(wait=0.5, max_idle=1)]
        self.assertEqual(rest, ["page-b", "page-c"])
        self.assertEqual(tt.cursor, "3")
        # The feed_page primitive, for a trainer that wants pages.
        page = tt.feed_page(after="0", limit=2)
        self.assertEqual(([a["rollout_id"] for a in page["attempts"]], page["next"]), (["page-a", "page-b"], "2"))
        self.assertEqual([a["cursor"] for a in page["attempts"]], ["1", "2"])  # each attempt's resume point
        self.assertEqual(tt.cursor, "3")  # unmoved
        # Setting the cursor back replays from there.
        tt.cursor = 2
        self.assertEqual([a["rollout_id"] for a in tt.feed(wait=0.5, max_idle=1)], ["page-c"])

    def test_feed_raises_on_a_bad_request(self) -> None:
        tt = Client(self.sc.url, timeout=5)
        with self.assertRaises(ValueError):
            tt.feed_page(wait=61)
        with self.assertRaises(Error) as cm:
            next(iter(tt.feed(wait=1, limit=5000)))
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("limit", cm.exception.message)


if __name__ == "__main__":
    unittest.main()
