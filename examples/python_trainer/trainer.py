#!/usr/bin/env python3
"""A GRPO-style trainer loop on tokentap's feed, standard library only.

Each step it launches agents (G runs of the Search-R1 example agent, each on
the same N questions, so every question gets a group of G attempts), tails
tokentap's feed of completed attempts, groups them per task, computes
group-relative advantages (GRPO), prints a table row and writes the batch as
JSONL in verl's agent-loop terms. Between steps it does the weight sync dance:
pause, drain, stamp the next policy version, resume.

It starts no sidecar: give it one.

    go build -o /tmp/sidecar ./cmd/sidecar && /tmp/sidecar --demo --logprobs --in-memory &
    python3 examples/python_trainer/trainer.py --sidecar http://127.0.0.1:8100

With ``--agent none`` it launches nothing and trains on whatever agents send,
grouping attempts by their rollout id (``--group-by``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Sequence, TextIO, Tuple

try:
    from tokentap import Client, to_verl
except ImportError:  # run from a checkout without installing the client
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "clients", "python", "src"))
    from tokentap import Client, to_verl

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
# search_r1 names its rollouts sr1-<run>-<question index>.
SR1_ID = re.compile(r"^sr1-([0-9a-f]+)-(\d+)$")


def grpo_advantages(rewards: Sequence[float], eps: float = 1e-6) -> List[float]:
    """GRPO's outcome advantage, as verl computes it (compute_grpo_outcome_advantage,
    norm_adv_by_std_in_grpo): (r - mean) / (std + eps) over the group, with the
    sample standard deviation; a group of one gets mean 0 and std 1."""
    n = len(rewards)
    if n == 0:
        return []
    if n == 1:
        return [rewards[0] / (1.0 + eps)]
    mean = sum(rewards) / n
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards) / (n - 1))
    return [(r - mean) / (std + eps) for r in rewards]


def attempt_reward(attempt: Dict[str, Any]) -> float:
    """An attempt's outcome reward: the last trajectory reward it has (Agent
    Lightning's final_reward), 0.0 when none was posted."""
    for t in reversed(attempt.get("trajectories") or []):
        if t.get("reward") is not None:
            return float(t["reward"])
    return 0.0


class Progress:
    """A one-line progress bar on stderr (redrawn on a terminal, else printed once at the end)."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total, self.n, self.out, self.t0 = total, 0, out, time.monotonic()
        self.tty = out.isatty()

    def line(self) -> str:
        width = 30
        full = width * self.n // max(self.total, 1)
        return f"[{'#' * full}{'.' * (width - full)}] {self.n}/{self.total} attempts {time.monotonic() - self.t0:5.1f}s"

    def update(self, n: int) -> None:
        self.n = n
        if self.tty:
            self.out.write("\r" + self.line())
            self.out.flush()

    def close(self) -> None:
        self.out.write(("\r" if self.tty else "") + self.line() + "\n")
        self.out.flush()


def search_r1_bin(given: Optional[str], tmp: str) -> List[str]:
    if given:
        return [given]
    out = os.path.join(tmp, "search_r1")
    print("building examples/search_r1 ...", file=sys.stderr)
    subprocess.run(["go", "build", "-o", out, "./examples/search_r1"], cwd=REPO, check=True)
    return [out]


def launch_search_r1(cmd: List[str], args: argparse.Namespace, cursor: str, step: int, member: int, tmp: str) -> "subprocess.Popen[str]":
    """One run of the Search-R1 agent on the step's questions (the same for every member of the step)."""
    d = os.path.join(tmp, f"step{step}-{member}")
    os.makedirs(d, exist_ok=True)
    argv = cmd + [
        "--base-url", args.sidecar, "--model", args.model, "--rollouts", str(args.tasks),
        "--concurrency", str(args.concurrency), "--seed", str(args.seed + step),
        # Each member of a group is its own draw of the policy (vLLM samples
        # differently per seed), so a question's attempts can differ.
        "--sampling-seed", str(1 + step * args.group_size + member),
        "--feed-cursor", cursor,
        "--triplets", os.path.join(d, "triplets.jsonl"), "--trajectories", os.path.join(d, "trajectories.jsonl"),
    ]
    env = dict(os.environ)
    if args.admin_token:
        argv += ["--admin-token", args.admin_token]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def collect(tt: Client, want: int, key_of: Any, timeout: float) -> Tuple["OrderedDict[str, List[Dict[str, Any]]]", int]:
    """Tails the feed until `want` attempts with a task key came in; returns them by task, and the attempts passed over."""
    groups: "OrderedDict[str, List[Dict[str, Any]]]" = OrderedDict()
    got, skipped = 0, 0
    bar = Progress(want)
    deadline = time.monotonic() + timeout
    for attempt in tt.feed(wait=min(30.0, timeout), max_idle=timeout):
        key = key_of(attempt["rollout_id"])
        if key is None:
            skipped += 1
        else:
            groups.setdefault(key, []).append(attempt)
            got += 1
            bar.update(got)
        if got >= want or time.monotonic() > deadline:
            break
    bar.close()
    return groups, skipped


def step_rows(step: int, groups: "OrderedDict[str, List[Dict[str, Any]]]", policy: str) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """The batch lines (one per trajectory) and the table row of one step."""
    lines: List[Dict[str, Any]] = []
    rewards_all: List[float] = []
    signal, adv_abs, tokens, drifted, trajs = 0, 0.0, 0, 0, 0
    for key, attempts in groups.items():
        rewards = [attempt_reward(a) for a in attempts]
        advs = grpo_advantages(rewards)
        rewards_all += rewards
        if len(set(rewards)) > 1:
            signal += 1
        for a, r, adv in zip(attempts, rewards, advs):
            adv_abs += abs(adv)
            drifted += len(a.get("drift") or [])
            for t in a["trajectories"]:
                s = to_verl(t, a)
                s.update({"uid": key, "step": step, "reward": r, "advantage": adv})
                tokens += sum(s["response_mask"])
                trajs += 1
                lines.append(s)
    n = len(rewards_all)
    mean = sum(rewards_all) / n if n else 0.0
    std = math.sqrt(sum((r - mean) ** 2 for r in rewards_all) / n) if n else 0.0
    row = {"step": step, "attempts": n, "groups": len(groups), "signal": signal, "mean_reward": mean, "reward_std": std,
           "mean_abs_adv": adv_abs / n if n else 0.0, "trajectories": trajs, "sampled_tokens": tokens,
           "drifted": drifted, "policy": policy or "-"}
    return lines, row


HEADER = f"{'step':>4} {'attempts':>8} {'groups':>6} {'w/ signal':>9} {'reward':>6} {'std':>5} {'|adv|':>5} {'trajs':>5} {'tokens':>7} {'drift':>5} {'policy':>8} {'secs':>5}"


def fmt(row: Dict[str, Any]) -> str:
    return (f"{row['step']:>4} {row['attempts']:>8} {row['groups']:>6} {row['signal']:>9} {row['mean_reward']:>6.2f} "
            f"{row['reward_std']:>5.2f} {row['mean_abs_adv']:>5.2f} {row['trajectories']:>5} {row['sampled_tokens']:>7} "
            f"{row['drifted']:>5} {row['policy']:>8} {row['secs']:>5.1f}")


def update_policy(batch: List[Dict[str, Any]]) -> None:
    """Stands in for the optimizer step and the weight sync: a real trainer
    pads the batch into tensors (tokentap.to_tensors), runs its GRPO/PPO
    update, and loads the new weights into every vLLM replica."""


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--sidecar", required=True, help="tokentap's URL, e.g. http://127.0.0.1:8100")
    p.add_argument("--admin-token", default=os.environ.get("TOKENTAP_ADMIN_TOKEN"), help="tokentap's --admin-token (default $TOKENTAP_ADMIN_TOKEN)")
    p.add_argument("--agent", choices=["search_r1", "none"], default="search_r1", help="launch Search-R1 agents, or only read what agents send")
    p.add_argument("--search-r1-bin", help="the built examples/search_r1 (default: go build it)")
    p.add_argument("--model", default="Qwen/Qwen2.5-1.5B-Instruct")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--tasks", type=int, default=8, help="questions (groups) per step")
    p.add_argument("--group-size", type=int, default=4, help="attempts per question (G)")
    p.add_argument("--concurrency", type=int, default=4, help="rollouts at once per agent run")
    p.add_argument("--seed", type=int, default=1, help="question seed of step 0 (step k uses seed+k)")
    p.add_argument("--group-by", default=r"^(.*?)[-_:.]?\d+$", help="with --agent none: a regex whose first group of the rollout id names the task")
    p.add_argument("--cursor", default=None, help="feed cursor to start after (default: the sidecar's end, from now on)")
    p.add_argument("--out", default="python_trainer_batch.jsonl", help="where the batch goes (one verl sample per line)")
    p.add_argument("--timeout", type=float, default=300, help="seconds a step may take")
    args = p.parse_args(argv)
    args.sidecar = args.sidecar.rstrip("/")

    tt = Client(args.sidecar, token=args.admin_token, timeout=30)
    tmp = tempfile.mkdtemp(prefix="python_trainer-")
    try:
        if args.cursor is not None:
            tt.cursor = args.cursor
        else:
            # Start at the feed's end: drain what was completed before this run.
            for _ in tt.feed(wait=0, max_idle=0.5):
                pass
        cmd = search_r1_bin(args.search_r1_bin, tmp) if args.agent == "search_r1" else []
        print(f"trainer on {args.sidecar}: {args.steps} steps of {args.tasks} tasks x {args.group_size} attempts, feed after cursor {tt.cursor}")
        rows: List[Dict[str, Any]] = []
        with open(args.out, "w", encoding="utf-8") as out:
            for step in range(args.steps):
                t0 = time.monotonic()
                start_cursor = tt.cursor
                procs: List["subprocess.Popen[str]"] = []
                if args.agent == "search_r1":
                    # REAL TRAINER: launch your own agents here, each with tt.base_url(rollout_id, attempt).
                    procs = [launch_search_r1(cmd, args, start_cursor, step, g, tmp) for g in range(args.group_size)]

                    def key_of(rid: str) -> Optional[str]:
                        m = SR1_ID.match(rid)
                        return f"q{int(m.group(2)):03d}" if m else None
                else:
                    group_by = re.compile(args.group_by)

                    def key_of(rid: str) -> Optional[str]:
                        m = group_by.match(rid)
                        return m.group(1) if m else None

                groups, skipped = collect(tt, args.tasks * args.group_size, key_of, args.timeout)
                for proc in procs:
                    log, _ = proc.communicate(timeout=args.timeout)
                    if proc.returncode != 0:
                        print(log, file=sys.stderr)
                        raise SystemExit(f"search_r1 exited {proc.returncode}")
                policy = tt.policy_version()
                lines, row = step_rows(step, groups, policy)
                for line in lines:
                    out.write(json.dumps(line) + "\n")
                # Weight sync: no agent call runs while the weights change, and
                # the calls after it carry the new version.
                with tt.paused(drain=60, reason="weight sync"):
                    # REAL TRAINER: your optimizer step on `lines`, then push the weights into vLLM.
                    update_policy(lines)
                    tt.set_policy_version(f"step-{step + 1}")
                row["secs"] = time.monotonic() - t0
                if skipped:
                    row["policy"] += f" (+{skipped} other)"
                rows.append(row)
                if step == 0:
                    print(HEADER)
                print(fmt(row), flush=True)
        total = sum(r["attempts"] for r in rows)
        print(f"batch: {sum(r['trajectories'] for r in rows)} trajectories of {total} attempts -> {args.out} (feed cursor {tt.cursor})")
        if rows and all(r["signal"] == 0 for r in rows):
            print("note: every group's rewards are equal, so every advantage is 0: GRPO learns nothing from this batch"
                  " (a policy that always succeeds or always fails on these questions).")
        return 0 if total else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
