// Package responses translates the OpenAI Responses API, which the Codex
// CLI and the OpenAI Agents SDK speak, to and from vLLM's chat completions,
// so that tokentap records every such call with its exact prompt and output
// token IDs like any chat call (vLLM's native /v1/responses returns none).
//
// The translation follows vLLM's own Responses layer (the non-Harmony
// "simple" path of vllm/entrypoints/openai/responses), field by field, so
// the agent receives what vLLM's native endpoint would send and the model
// sees the prompt it would render (vLLM's render-parity tests pair exactly
// these chat and Responses requests):
//
//	id := responses.PreviousResponseID(body)      // "" or an id to look up
//	req, err := responses.TranslateRequest(body, storedHistory(id))
//	// send req.Chat() to /v1/chat/completions
//	out, hist, err := req.Answer(chatJSON)         // non-stream
//	st := req.NewStream()                          // stream:
//	dst = st.AppendEvent(dst[:0], chatEventData)   //   per chat SSE event
//	dst = st.AppendEnd(dst[:0], err)               //   if the upstream stopped early
//	hist = st.History()
//
// previous_response_id is resolved by tokentap, not vLLM: the proxy stores
// the History of each finished response (when the request allows it) and
// hands it back to TranslateRequest, which prepends the stored input and
// output items, function calls and reasoning included, as OpenAI does.
//
// Everything here is a pure function of its input bytes: no I/O, no
// package state. Bodies are scanned in place, never decoded into maps, so
// tool parameters and call arguments keep their bytes and key order.
package responses
