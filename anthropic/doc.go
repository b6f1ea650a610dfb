// Package anthropic is the Anthropic Messages dialect as a translator: it
// turns a POST /v1/messages body into the /v1/chat/completions body vLLM's
// own /v1/messages layer would build from it, and turns the chat answer back
// into what that layer would send — a Message, or the Messages SSE stream,
// event by event as the chat chunks arrive. Tracing a Claude Code or
// Anthropic SDK agent then needs nothing vLLM's native endpoint lacks except
// the token IDs, which the chat request carries.
//
// The translation follows vLLM's vllm/entrypoints/anthropic (serving.py,
// protocol.py, inline_system.py) at commit a8c3bdb2, field by field: the
// same message layout (tool results before the user's text, tool-result
// images as their own user turn, thinking as reasoning, billing header
// stripped, inline system turns kept or folded), the same validation, the
// same answer shapes, key order and ids. Where vLLM versions differ, the
// newest is followed and the code says so; where this package deliberately
// does better than vLLM (tool-call deltas that vLLM drops, errors in the
// Anthropic shape, "stop_sequence": null always present), the doc comment
// of the function concerned says so.
//
// Everything is a pure function of its input bytes: no I/O, no package
// state, and JSON object key order preserved throughout (tool inputs and
// schemas are never decoded into maps). Randomness is used only for what
// vLLM draws at random (thinking signatures, ids of id-less calls).
package anthropic
