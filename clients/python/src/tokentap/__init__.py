"""tokentap: a client for trainers of tokentap, the sidecar beside vLLM that
records every LLM call's exact token IDs by rollout and attempt.

    from tokentap import Client, to_verl
    tt = Client("http://localhost:8100")
    for attempt in tt.feed(wait=30):
        samples = [to_verl(t, attempt) for t in attempt["trajectories"]]

Standard library only (Python >= 3.9).
"""

from ._client import Client, Error
from ._outputs import to_agentlightning, to_tensors, to_verl

__all__ = ["Client", "Error", "to_verl", "to_agentlightning", "to_tensors"]
__version__ = "0.1.0"
