// Package tokenids does tokentap's byte-level work on OpenAI-compatible
// bodies: it injects "return_token_ids" (and optionally logprobs) into chat
// and completions requests, extracts vLLM's prompt and response token IDs,
// logprobs, finish reasons and usage from JSON answers and from SSE streams,
// strips what it injected from what the client receives, and checks the IDs
// for fidelity.
//
// Everything here is a pure function of its input bytes. Bodies are scanned
// in place, never decoded into maps, and a stream is read event by event
// with no allocation per event once its buffers have grown: the cost of a
// call is its token arrays, not its bytes. The shapes handled are those of
// vLLM >= 0.10.2 (../shared/reference/vllm-wire.md): null and absent keys,
// n > 1, several completion prompts, tool calls, echo, usage chunks with
// "choices": [], error events inside a stream, and backends that return no
// IDs at all.
package tokenids
