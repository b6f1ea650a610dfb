package vllmsim

import (
	"net/http"
	"strings"
	"testing"
)

// Verbatim examples from shared/reference/vllm-wire.md (the wire-format
// reference). Tests compare the simulator's output with them.

// §1.3: real capture without return_token_ids (vLLM 0.11, Qwen3-Next).
const docChatNoIDs = `{"id":"chatcmpl-da25fbde39eb48d981b07670c3ce3d82","object":"chat.completion","created":1760073333,"model":"Qwen/Qwen3-Next-80B-A3B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! I'm doing great, …","refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning_content":null},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":14,"total_tokens":68,"completion_tokens":54,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"kv_transfer_params":null}`

// §2.2: real capture, default stream request (role chunk and first token chunk).
const docChatStreamNoIDs = `data: {"id":"chatcmpl-edcac873c27143ddad0085ebab042a40","object":"chat.completion.chunk","created":1760073516,"model":"Qwen/Qwen3-Next-80B-A3B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}

data: {"id":"chatcmpl-edcac873c27143ddad0085ebab042a40","object":"chat.completion.chunk","created":1760073516,"model":"Qwen/Qwen3-Next-80B-A3B-Instruct","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null,"token_ids":null}]}
`

// §2.3: real capture of a completions chunk after the leak fix (PR #27561).
const docComplStreamAfter = `data: {"id":"cmpl-d1eb817714c94cb2b5fb559b5d2fd7fa","object":"text_completion","created":1761553358,"model":"/home/jovyan/qwen3-8b","choices":[{"index":0,"text":" Sir","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":null}`

// §2.5: request.
const docChatStreamReq = `{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hi"}],"max_tokens":16,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`

// §2.5: response body.
const docChatStream = `data: {"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,45764,15588,151645,198,151644,77091,198]}

data: {"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null,"token_ids":[13048]}]}

data: {"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":"!"},"logprobs":null,"finish_reason":null,"token_ids":[0]}]}

data: {"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":[151645]}]}

data: {"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[],"usage":{"prompt_tokens":21,"total_tokens":24,"completion_tokens":3}}

data: [DONE]

`

// §2.6: request.
const docComplStreamReq = `{"model":"Qwen/Qwen2.5-1.5B-Instruct","prompt":["The capital of France is","Hello"],"max_tokens":2,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`

// §2.6: response body.
const docComplStream = `data: {"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"text":" Paris","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":[785,6722,315,9625,374],"token_ids":[12095]}],"usage":null}

data: {"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":1,"text":",","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":[9707],"token_ids":[11]}],"usage":null}

data: {"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"text":".","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":[13]}],"usage":null}

data: {"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":1,"text":" I","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":[358]}],"usage":null}

data: {"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[],"usage":{"prompt_tokens":6,"total_tokens":10,"completion_tokens":4}}

data: [DONE]

`

// §3.1: request.
const docChatReq = `{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hi"}],"max_tokens":16,"temperature":0,"logprobs":true,"top_logprobs":1,"return_token_ids":true}`

// §3.1: response.
const docChat = `{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!","refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning":null},"logprobs":{"content":[{"token":"Hi","logprob":-0.0123,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.0123,"bytes":[72,105]}]},{"token":"!","logprob":-0.2051,"bytes":[33],"top_logprobs":[{"token":"!","logprob":-0.2051,"bytes":[33]}]},{"token":"<|im_end|>","logprob":-0.0009,"bytes":[60,124,105,109,95,101,110,100,124,62],"top_logprobs":[{"token":"<|im_end|>","logprob":-0.0009,"bytes":[60,124,105,109,95,101,110,100,124,62]}]}]},"finish_reason":"stop","stop_reason":null,"token_ids":[13048,0,151645]}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":21,"total_tokens":24,"completion_tokens":3,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,45764,15588,151645,198,151644,77091,198],"kv_transfer_params":null}`

// §3.2: request.
const docComplReq = `{"model":"Qwen/Qwen2.5-1.5B-Instruct","prompt":["The capital of France is","Hello"],"n":2,"max_tokens":2,"temperature":0.8,"logprobs":1,"return_token_ids":true}`

// §3.2: response (the reference breaks it into lines for readability; joined here).
const docCompl = `{"id":"cmpl-1b9e0c6f6a3d4c55","object":"text_completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"text":" Paris.","logprobs":{"text_offset":[0,6],"token_logprobs":[-0.11,-0.52],"tokens":[" Paris","."],"top_logprobs":[{" Paris":-0.11},{".":-0.52}]},"finish_reason":"length","stop_reason":null,"token_ids":[12095,13],"prompt_logprobs":null,"prompt_token_ids":[785,6722,315,9625,374]},{"index":1,"text":" Paris,","logprobs":{"text_offset":[0,6],"token_logprobs":[-0.11,-1.3],"tokens":[" Paris",","],"top_logprobs":[{" Paris":-0.11},{",":-1.3,".":-0.52}]},"finish_reason":"length","stop_reason":null,"token_ids":[12095,11],"prompt_logprobs":null,"prompt_token_ids":[785,6722,315,9625,374]},{"index":2,"text":", I","logprobs":{"text_offset":[0,1],"token_logprobs":[-0.7,-0.9],"tokens":[","," I"],"top_logprobs":[{",":-0.7},{" I":-0.9}]},"finish_reason":"length","stop_reason":null,"token_ids":[11,358],"prompt_logprobs":null,"prompt_token_ids":[9707]},{"index":3,"text":"!\n","logprobs":{"text_offset":[0,1],"token_logprobs":[-1.2,-0.4],"tokens":["!","\n"],"top_logprobs":[{"!":-1.2,",":-0.7},{"\n":-0.4}]},"finish_reason":"length","stop_reason":null,"token_ids":[0,198],"prompt_logprobs":null,"prompt_token_ids":[9707]}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":6,"total_tokens":14,"completion_tokens":8,"prompt_tokens_details":null},"kv_transfer_params":null}`

// §6.2: GET /v1/models real capture.
const docModels = `{"object":"list","data":[{"id":"Qwen/Qwen2.5-7B-Instruct","object":"model","created":1788735762,"owned_by":"vllm","root":"Qwen/Qwen2.5-7B-Instruct","parent":null,"max_model_len":32768,"permission":[{"id":"modelperm-ba83413358dd8c4d","object":"model_permission","created":1788735762,"allow_create_engine":false,"allow_sampling":true,"allow_logprobs":true,"allow_search_indices":false,"allow_view":true,"allow_fine_tuning":false,"organization":"*","group":null,"is_blocking":false}]}]}`

// docEvents splits a verbatim SSE excerpt into its JSON payloads ([DONE] and
// elisions dropped).
func docEvents(t *testing.T, s string) []*node {
	t.Helper()
	var out []*node
	for _, ev := range strings.Split(s, "\n\n") {
		ev = strings.TrimSpace(ev)
		if !strings.HasPrefix(ev, "data: {") {
			continue
		}
		out = append(out, parseNode(t, []byte(strings.TrimPrefix(ev, "data: "))))
	}
	return out
}

// completionMaps are the completions fields that are dicts keyed by data.
var completionMaps = []string{"choices[].logprobs.top_logprobs[]"}

// TestDocExampleShapes compares the simulator's bodies and chunks with the
// verbatim examples and captures of vllm-wire.md: same keys in the same
// order, same nesting, same null-ness (IDs and texts differ: the tokenizer
// is not Qwen's).
func TestDocExampleShapes(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy})

	t.Run("chat non-stream §3.1", func(t *testing.T) {
		r := post(t, s, "/v1/chat/completions", docChatReq)
		mustOK(t, r, "application/json")
		if got, want := shape(parseNode(t, r.body)), shape(parseNode(t, []byte(docChat))); got != want {
			t.Fatalf("shape mismatch\n got %s\nwant %s", got, want)
		}
	})
	t.Run("chat non-stream capture §1.3", func(t *testing.T) {
		// The capture is from a release whose message field was still
		// reasoning_content; current vLLM names it reasoning.
		doc := strings.Replace(docChatNoIDs, `"reasoning_content"`, `"reasoning"`, 1)
		r := post(t, s, "/v1/chat/completions", `{"model":"`+testModel+`","messages":[{"role":"user","content":"How are you?"}]}`)
		mustOK(t, r, "application/json")
		if got, want := shape(parseNode(t, r.body)), shape(parseNode(t, []byte(doc))); got != want {
			t.Fatalf("shape mismatch\n got %s\nwant %s", got, want)
		}
	})
	t.Run("chat stream §2.5", func(t *testing.T) {
		r := post(t, s, "/v1/chat/completions", docChatStreamReq)
		mustOK(t, r, "text/event-stream; charset=utf-8")
		got, want := chunks(t, r.body), docEvents(t, docChatStream)
		if len(got) != len(want) {
			t.Fatalf("%d chunks, want %d", len(got), len(want))
		}
		for i := range got {
			if shape(got[i]) != shape(want[i]) {
				t.Errorf("chunk %d\n got %s\nwant %s", i, shape(got[i]), shape(want[i]))
			}
		}
	})
	t.Run("chat stream capture §2.2", func(t *testing.T) {
		r := post(t, s, "/v1/chat/completions", `{"messages":[{"role":"user","content":"Hello"}],"stream":true}`)
		mustOK(t, r, "text/event-stream; charset=utf-8")
		got, want := chunks(t, r.body), docEvents(t, docChatStreamNoIDs)
		for i := range want {
			if shape(got[i]) != shape(want[i]) {
				t.Errorf("chunk %d\n got %s\nwant %s", i, shape(got[i]), shape(want[i]))
			}
		}
	})
	t.Run("completions non-stream §3.2", func(t *testing.T) {
		r := post(t, s, "/v1/completions", docComplReq)
		mustOK(t, r, "application/json")
		got, want := shape(parseNode(t, r.body), completionMaps...), shape(parseNode(t, []byte(docCompl)), completionMaps...)
		if got != want {
			t.Fatalf("shape mismatch\n got %s\nwant %s", got, want)
		}
	})
	t.Run("completions stream §2.6", func(t *testing.T) {
		r := post(t, s, "/v1/completions", docComplStreamReq)
		mustOK(t, r, "text/event-stream; charset=utf-8")
		got, want := chunks(t, r.body), docEvents(t, docComplStream)
		if len(got) != len(want) {
			t.Fatalf("%d chunks, want %d", len(got), len(want))
		}
		for i := range got {
			if shape(got[i]) != shape(want[i]) {
				t.Errorf("chunk %d\n got %s\nwant %s", i, shape(got[i]), shape(want[i]))
			}
			// Same interleaving as the reference: index 0, 1, 0, 1.
			if i < 4 && got[i].i(t, "choices.0.index") != want[i].i(t, "choices.0.index") {
				t.Errorf("chunk %d has index %d", i, got[i].i(t, "choices.0.index"))
			}
		}
		// The two prompts tokenize to 5 and 1 tokens here too.
		if g, w := got[4].at("usage"), want[4].at("usage"); shape(g) != shape(w) || got[4].i(t, "usage.prompt_tokens") != 6 {
			t.Errorf("usage chunk %s", shape(g))
		}
	})
	t.Run("completions stream capture §2.3", func(t *testing.T) {
		r := post(t, s, "/v1/completions", `{"prompt":"Once upon a time","stream":true}`)
		mustOK(t, r, "text/event-stream; charset=utf-8")
		got, want := chunks(t, r.body)[0], docEvents(t, docComplStreamAfter)[0]
		if shape(got) != shape(want) {
			t.Fatalf("shape mismatch\n got %s\nwant %s", shape(got), shape(want))
		}
	})
	t.Run("models §6.2", func(t *testing.T) {
		r := do(t, s, http.MethodGet, "/v1/models", "")
		mustOK(t, r, "application/json")
		if got, want := shape(parseNode(t, r.body)), shape(parseNode(t, []byte(docModels))); got != want {
			t.Fatalf("shape mismatch\n got %s\nwant %s", got, want)
		}
	})
}

// TestChatStreamBytesMatchDoc replays the §2.5 example and compares the body
// byte for byte with the reference, after substituting the simulator's
// token IDs for Qwen's (the prompt is 21 tokens here as well).
func TestChatStreamBytesMatchDoc(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy})
	r := post(t, s, "/v1/chat/completions", docChatStreamReq, "X-Request-Id", "5d2f8c0e9b7a4e21")
	mustOK(t, r, "text/event-stream; charset=utf-8")

	prompt := s.Tokenize(s.RenderChat([]Message{
		{Role: "system", Content: "You are a helpful assistant."},
		{Role: "user", Content: "Say hi"},
	}, true))
	out := s.Tokenize("Hi!")
	if len(prompt) != 21 || len(out) != 2 {
		t.Fatalf("prompt %d tokens, output %d tokens", len(prompt), len(out))
	}
	want := docChatStream
	want = strings.Replace(want, "[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,45764,15588,151645,198,151644,77091,198]", string(appendInts(nil, prompt)), 1)
	want = strings.Replace(want, `"token_ids":[13048]`, `"token_ids":`+string(appendInts(nil, out[:1])), 1)
	want = strings.Replace(want, `"token_ids":[0]`, `"token_ids":`+string(appendInts(nil, out[1:])), 1)
	if string(r.body) != want {
		t.Fatalf("body differs from the reference\n got %q\nwant %q", r.body, want)
	}
}
