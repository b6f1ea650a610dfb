"""Ready training samples from tokentap's views: pure functions, standard library only.

Every field is copied from the view (never re-tokenized, never padded): the
token IDs are the exact ones vLLM saw and sampled. Inputs may hold plain
lists (the JSON views as ``Client`` returns them) or anything with
``tolist()`` (numpy arrays, torch tensors); outputs are plain lists, which
``to_tensors`` turns into numpy arrays or torch tensors when one of them is
installed.
"""

from __future__ import annotations

import importlib
from typing import Any, Dict, List, Mapping, Optional, Sequence

__all__ = ["to_verl", "to_agentlightning", "to_tensors"]

Sample = Dict[str, Any]


def _list(x: Any) -> List[Any]:
    if x is None:
        return []
    if hasattr(x, "tolist"):  # numpy arrays, torch tensors
        x = x.tolist()
    return list(x)


def _ints(x: Any) -> List[int]:
    return [int(v) for v in _list(x)]


def _floats(x: Any) -> List[float]:
    return [float(v) for v in _list(x)]


def _reward(x: Any) -> Optional[float]:
    return None if x is None else float(x)


def to_verl(trajectory: Mapping[str, Any], view: Optional[Mapping[str, Any]] = None) -> Sample:
    """One trajectory of the trajectories view (``view["trajectories"][i]``, or
    an attempt of ``Client.feed``) as the fields of verl's ``AgentLoopOutput``.

    - ``prompt_ids``: ``trajectory["prompt_ids"]``, the root call's prompt as
      the engine tokenized it (verl left-pads it to the prompt length).
    - ``response_ids``: ``trajectory["response_ids"]``, everything after the
      prompt: each turn's sampled tokens and, between turns, the tokens the
      chat template and the environment (tool results, user turns) inserted
      (verl right-pads it to the response length).
    - ``response_mask``: ``trajectory["response_mask"]``, one per response
      token: 1 where the model sampled it (train on it), 0 where it was
      inserted (no loss).
    - ``response_logprobs``: ``trajectory["response_logprobs"]``, the
      behaviour policy's logprob of each sampled token (for importance
      ratios / rollout correction); 0 on inserted tokens, and 0 where none
      were recorded (run the sidecar with ``--logprobs``).
    - ``num_turns``: ``len(trajectory["turns"])``, the model calls merged
      into this sequence (``turns`` holds each call's sampled span as
      offsets into ``response_ids``).
    - ``reward_score``: ``trajectory["reward"]``, the reward matched to the
      chain's last call (its choice, for a targeted reward); ``None`` when
      none was posted.
    - ``extra_fields``: where it came from: ``rollout_id``, ``attempt_id``
      (from ``view`` when given), ``index``, ``sequence_ids``,
      ``choice_index``, ``turns``, ``finish_reason`` (the last call's),
      ``policy_versions``.

    ``response_mask`` and ``response_logprobs`` have exactly
    ``len(response_ids)`` entries.
    """
    response_ids = _ints(trajectory.get("response_ids"))
    mask = _ints(trajectory.get("response_mask"))
    logprobs = _floats(trajectory.get("response_logprobs"))
    if len(mask) != len(response_ids) or len(logprobs) != len(response_ids):
        raise ValueError(
            f"trajectory {trajectory.get('index')}: {len(response_ids)} response ids, "
            f"{len(mask)} mask entries, {len(logprobs)} logprobs"
        )
    turns = [dict(t) for t in _list(trajectory.get("turns"))]
    extra: Dict[str, Any] = {
        "index": trajectory.get("index"),
        "sequence_ids": _ints(trajectory.get("sequence_ids")),
        "choice_index": trajectory.get("choice_index"),
        "turns": turns,
        "finish_reason": trajectory.get("finish_reason"),
        "policy_versions": list(trajectory.get("policy_versions") or []),
    }
    if view is not None:
        extra["rollout_id"] = view.get("rollout_id")
        extra["attempt_id"] = view.get("attempt_id")
    return {
        "prompt_ids": _ints(trajectory.get("prompt_ids")),
        "response_ids": response_ids,
        "response_mask": mask,
        "response_logprobs": logprobs,
        "num_turns": len(turns),
        "reward_score": _reward(trajectory.get("reward")),
        "extra_fields": extra,
    }


def to_agentlightning(triplet: Mapping[str, Any], view: Optional[Mapping[str, Any]] = None) -> Sample:
    """One triplet of the triplets view (``view["triplets"][i]``) as Agent
    Lightning's ``Triplet`` (``prompt``, ``response``, ``reward``, ``metadata``).

    - ``prompt``: ``{"token_ids": triplet["prompt_token_ids"]}``, the call's
      prompt as the engine tokenized it (for a completions call with several
      prompts, the prompt of this choice).
    - ``response``: ``{"token_ids": triplet["response_token_ids"],
      "logprobs": triplet["response_logprobs"]}``, the choice's sampled
      tokens (EOS included) and their logprobs (``None`` when none were
      recorded). Agent Lightning's v1 verl rollout adapter reads the
      logprobs as ``response["log_probs"]``: use
      ``{**t["response"], "log_probs": t["response"]["logprobs"]}`` there.
    - ``reward``: ``triplet["reward"]``, matched by Agent Lightning's rule
      (the most recent earlier call without a reward) or targeted with
      ``sequence_id``/``choice_index``; ``None`` when none matched.
    - ``metadata``: ``sequence_id``, ``choice_index``, ``finish_reason``,
      ``model``, ``policy_version`` and ``policy_version_end`` (when set),
      ``matched_past`` (when the reward skipped unusable calls),
      ``rollout_id``/``attempt_id`` (from ``view``), and
      ``server: {"model", "version"}`` as Agent Lightning's v1 adapter keeps it.
    """
    logprobs = triplet.get("response_logprobs")
    meta: Dict[str, Any] = {
        "sequence_id": triplet.get("sequence_id"),
        "choice_index": triplet.get("choice_index"),
        "finish_reason": triplet.get("finish_reason"),
        "model": triplet.get("model"),
        "server": {"model": triplet.get("model"), "version": triplet.get("policy_version")},
    }
    for key in ("policy_version", "policy_version_end", "matched_past"):
        if triplet.get(key) is not None:
            meta[key] = triplet[key]
    if view is not None:
        meta["rollout_id"] = view.get("rollout_id")
        meta["attempt_id"] = view.get("attempt_id")
    return {
        "prompt": {"token_ids": _ints(triplet.get("prompt_token_ids"))},
        "response": {
            "token_ids": _ints(triplet.get("response_token_ids")),
            "logprobs": None if logprobs is None else _floats(logprobs),
        },
        "reward": _reward(triplet.get("reward")),
        "metadata": meta,
    }


# dtypes of the list fields of to_verl's sample.
_DTYPES = {
    "prompt_ids": "int64",
    "response_ids": "int64",
    "response_mask": "int64",
    "response_logprobs": "float32",
}


def to_tensors(sample: Mapping[str, Any], backend: str = "torch", fields: Sequence[str] = tuple(_DTYPES)) -> Sample:
    """A copy of ``to_verl``'s sample with its token lists as tensors
    (``backend="torch"``) or arrays (``"numpy"``): ids and mask int64,
    logprobs float32. Needs that library installed; nothing else does."""
    out = dict(sample)
    if backend == "torch":
        torch: Any = importlib.import_module("torch")
        for f in fields:
            out[f] = torch.tensor(_list(sample[f]), dtype=getattr(torch, _DTYPES[f]))
    elif backend == "numpy":
        numpy: Any = importlib.import_module("numpy")
        for f in fields:
            out[f] = numpy.asarray(_list(sample[f]), dtype=_DTYPES[f])
    else:
        raise ValueError("backend must be 'torch' or 'numpy'")
    return out
