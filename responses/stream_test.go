package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden streams in testdata")

const (
	callOpen1 = `{"tool_calls":[{"id":"chatcmpl-tool-a","type":"function","index":0,"function":{"name":"get_weather","arguments":""}}]}`
	callArgs1 = `{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\"}"}}]}`
	callOpen2 = `{"tool_calls":[{"id":"chatcmpl-tool-b","type":"function","index":1,"function":{"name":"get_weather","arguments":""}}]}`
	callArgs2 = `{"tool_calls":[{"index":1,"function":{"arguments":"{\"city\": \"Rome\"}"}}]}`
)

// The event lines of agent-dialects.md §6.2, byte for byte. The reference's
// ids are vLLM's bare stream ids; tokentap prefixes its own (msg_, fc_), so
// this test hands out the reference's ids to show the rest is identical.
func TestStreamReferenceEvents(t *testing.T) {
	r := mustTranslate(t, `{"model":"my-model","input":"Weather?","tools":[`+weatherTool+`],"temperature":0.7,"top_p":0.8,
		"max_output_tokens":30000,"request_id":"resp_5d1e0c9a8b7f6e4d","stream":true}`, nil)
	r.ids = func(dst []byte, prefix string) []byte {
		return append(dst, map[string]string{"msg_": "a1b2c3d4e5f60718", "fc_": "0f1e2d3c4b5a6978"}[prefix]...)
	}
	out := feed(r.NewStream(), roleChunk, chunk(`{"content":"Hi"}`),
		chunk(`{"tool_calls":[{"id":"chatcmpl-tool-a","type":"function","index":0,"function":{"name":"get_weather","arguments":"{\"city\":"}}]}`))
	evs, err := parseSSE(out)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{
		0: `{"response":{"id":"resp_5d1e0c9a8b7f6e4d","created_at":1790000000,"incomplete_details":null,"instructions":null,"metadata":null,"model":"my-model","object":"response","output":[],"parallel_tool_calls":true,"temperature":0.7,"tool_choice":"auto","tools":[` + weatherTool + `],"top_p":0.8,"background":false,"max_output_tokens":30000,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto","status":"in_progress","text":null,"top_logprobs":null,"truncation":"disabled","usage":null,"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null},"sequence_number":0,"type":"response.created"}`,
		2: `{"item":{"id":"a1b2c3d4e5f60718","content":[],"role":"assistant","status":"in_progress","type":"message"},"output_index":0,"sequence_number":2,"type":"response.output_item.added"}`,
		3: `{"content_index":0,"item_id":"a1b2c3d4e5f60718","output_index":0,"part":{"annotations":[],"text":"","type":"output_text","logprobs":[]},"sequence_number":3,"type":"response.content_part.added"}`,
		4: `{"content_index":0,"delta":"Hi","item_id":"a1b2c3d4e5f60718","logprobs":[],"output_index":0,"sequence_number":4,"type":"response.output_text.delta"}`,
		9: `{"delta":"{\"city\":","item_id":"0f1e2d3c4b5a6978","output_index":1,"sequence_number":9,"type":"response.function_call_arguments.delta"}`,
	}
	for i, w := range want {
		if i >= len(evs) {
			t.Fatalf("only %d events: %s", len(evs), out)
		}
		if string(evs[i].data) != w {
			t.Errorf("event %d\n got %s\nwant %s", i, evs[i].data, w)
		}
	}
	if !bytes.HasPrefix(out, []byte("event: response.created\ndata: {\"response\":")) {
		t.Errorf("framing: %.60q", out)
	}
}

// A whole stream, reasoning then text then a function call, against its
// golden file (go test -update rewrites it; review the diff).
func TestStreamGolden(t *testing.T) {
	r := mustTranslate(t, `{"model":"my-model","input":"Weather in Paris?","tools":[`+weatherTool+`],"stream":true}`, nil)
	out := feed(r.NewStream(), roleChunk,
		chunk(`{"reasoning":"Need "}`, `"token_ids":[11]`), chunk(`{"reasoning":"the weather."}`, `"token_ids":[12]`),
		chunk(`{"content":"Checking"}`, `"token_ids":[13]`), chunk(`{"content":"."}`, `"token_ids":[14]`),
		chunk(callOpen1, `"token_ids":[15]`), chunk(callArgs1, `"token_ids":[16]`),
		chunk(`{"content":""}`, `"finish_reason":"tool_calls"`, `"stop_reason":null`, `"token_ids":[17]`),
		usageChunk, "[DONE]")
	golden := filepath.Join("testdata", "reasoning_text_call.sse")
	if *update {
		if err := os.WriteFile(golden, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, want) {
		t.Errorf("stream differs from %s:\n%s", golden, out)
	}
	if _, err := checkStream(out); err != nil {
		t.Error(err)
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		events []string
		end    bool  // call End(nil) after the events
		cause  error // passed to End
		names  []string
		status string
		output string // the final output array, when checked
		usage  string // when checked
		error  string // response.error.message of a failed stream
	}{{
		name:   "several function calls in one turn",
		events: []string{roleChunk, chunk(callOpen1), chunk(callArgs1), chunk(callOpen2), chunk(callArgs2), chunk(`{}`, `"finish_reason":"tool_calls"`), usageChunk, "[DONE]"},
		names: []string{"response.created", "response.in_progress",
			"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
			"response.output_item.added", "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
			"response.completed"},
		status: "completed",
		output: `[{"arguments":"{\"city\": \"Paris\"}","call_id":"chatcmpl-tool-a","name":"get_weather","type":"function_call","id":"fc_0000000000000001","status":"completed"},
			{"arguments":"{\"city\": \"Rome\"}","call_id":"chatcmpl-tool-b","name":"get_weather","type":"function_call","id":"fc_0000000000000002","status":"completed"}]`,
	}, {
		// Speculative decoding can put two calls in one chunk.
		name: "two calls in one chunk",
		events: []string{roleChunk, chunk(`{"tool_calls":[{"id":"chatcmpl-tool-a","type":"function","index":0,"function":{"name":"f","arguments":"{}"}},`+
			`{"id":"chatcmpl-tool-b","type":"function","index":1,"function":{"name":"g","arguments":"{\"x\":1}"}}]}`, `"finish_reason":"tool_calls"`), "[DONE]"},
		status: "completed",
		output: `[{"arguments":"{}","call_id":"chatcmpl-tool-a","name":"f","type":"function_call","id":"fc_0000000000000001","status":"completed"},
			{"arguments":"{\"x\":1}","call_id":"chatcmpl-tool-b","name":"g","type":"function_call","id":"fc_0000000000000002","status":"completed"}]`,
	}, {
		// Arguments that arrive before the call's name wait for it.
		name: "arguments before the name",
		events: []string{roleChunk, chunk(`{"tool_calls":[{"id":"chatcmpl-tool-a","index":0,"function":{"arguments":"{\"a\""}}]}`),
			chunk(`{"tool_calls":[{"index":0,"function":{"name":"f","arguments":":1"}}]}`), chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"}"}}]}`), "[DONE]"},
		names: []string{"response.created", "response.in_progress", "response.output_item.added", "response.function_call_arguments.delta",
			"response.function_call_arguments.delta", "response.function_call_arguments.delta", "response.function_call_arguments.done",
			"response.output_item.done", "response.completed"},
		status: "completed",
		output: `[{"arguments":"{\"a\":1}","call_id":"chatcmpl-tool-a","name":"f","type":"function_call","id":"fc_0000000000000001","status":"completed"}]`,
	}, {
		name: "a call that never gets a name is dropped",
		events: []string{roleChunk, chunk(`{"content":"hm"}`), chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}`),
			chunk(`{}`, `"finish_reason":"stop"`), "[DONE]"},
		status: "completed",
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"hm","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
	}, {
		name:   "empty content deltas give no message item",
		events: []string{roleChunk, chunk(`{"content":""}`), chunk(`{}`), chunk(`{"content":""}`, `"finish_reason":"stop"`), usageChunk, "[DONE]"},
		names:  []string{"response.created", "response.in_progress", "response.completed"},
		status: "completed", output: `[]`,
	}, {
		name:   "length is incomplete, still delivered by response.completed",
		events: []string{roleChunk, chunk(`{"content":"Once upon"}`), chunk(`{"content":" a"}`, `"finish_reason":"length"`), usageChunk, "[DONE]"},
		status: "incomplete",
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"Once upon a","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
	}, {
		// vLLM's processor opens a new item on every change of kind.
		name:   "text after a function call is a new message",
		events: []string{roleChunk, chunk(`{"content":"A"}`), chunk(callOpen1), chunk(callArgs1), chunk(`{"content":"B"}`), "[DONE]"},
		status: "completed",
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"A","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"},
			{"arguments":"{\"city\": \"Paris\"}","call_id":"chatcmpl-tool-a","name":"get_weather","type":"function_call","id":"fc_0000000000000002","status":"completed"},
			{"id":"msg_0000000000000003","content":[{"annotations":[],"text":"B","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
	}, {
		// One delta with content before reasoning (key order) is still split
		// reasoning first; arguments for a call already closed are dropped.
		name: "split order and late arguments",
		events: []string{roleChunk, chunk(`{"content":"4","reasoning":"2+2"}`), chunk(callOpen1), chunk(callOpen2),
			chunk(`{"tool_calls":[{"index":0,"function":{"arguments":"late"}}]}`), "[DONE]"},
		status: "completed",
		output: `[{"id":"rs_0000000000000001","summary":[],"type":"reasoning","content":[{"text":"2+2","type":"reasoning_text"}],"encrypted_content":null,"status":null},
			{"id":"msg_0000000000000002","content":[{"annotations":[],"text":"4","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"},
			{"arguments":"","call_id":"chatcmpl-tool-a","name":"get_weather","type":"function_call","id":"fc_0000000000000003","status":"completed"},
			{"arguments":"","call_id":"chatcmpl-tool-b","name":"get_weather","type":"function_call","id":"fc_0000000000000004","status":"completed"}]`,
	}, {
		name: "upstream error after the 200",
		events: []string{roleChunk, chunk(`{"content":"Hi"}`),
			`{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`, "[DONE]", chunk(`{"content":"ignored"}`)},
		names:  []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added", "response.output_text.delta", "response.failed"},
		status: "failed", error: "Internal server error",
	}, {
		name:   "the flat error of old vLLM",
		events: []string{`{"object":"error","message":"boom","type":"x","param":null,"code":500}`},
		names:  []string{"response.created", "response.in_progress", "response.failed"},
		status: "failed", error: "boom",
	}, {
		name:   "an event that is not JSON",
		events: []string{roleChunk, `{"id":`},
		names:  []string{"response.created", "response.in_progress", "response.failed"},
		status: "failed", error: "the upstream sent a stream event that is not a JSON object",
	}, {
		name:   "cut before the generation finished",
		events: []string{roleChunk, chunk(`{"content":"Hi"}`)},
		end:    true, cause: errors.New("connection reset"),
		status: "failed", error: "the upstream stream ended before the response completed: connection reset",
	}, {
		name:   "nothing at all",
		events: nil, end: true,
		names:  []string{"response.created", "response.in_progress", "response.failed"},
		status: "failed", error: "the upstream stream ended before the response completed",
	}, {
		// The generation finished; only the usage chunk and [DONE] were lost.
		// Usage then comes from the token IDs tokentap asked for.
		name:   "cut after the finish reason",
		events: []string{roleChunk, chunk(`{"content":"Hi"}`, `"token_ids":[5,6]`), chunk(`{"content":""}`, `"finish_reason":"stop"`, `"token_ids":[7]`)},
		end:    true,
		status: "completed",
		usage: `{"input_tokens":5,"input_tokens_details":{"cached_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":3,
			"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":8}`,
	}, {
		name:   "done before any chunk",
		events: []string{"[DONE]"},
		names:  []string{"response.created", "response.in_progress", "response.completed"},
		status: "completed", output: `[]`,
	}, {
		name: "usage details are integers",
		events: []string{roleChunk, chunk(`{"content":"ok"}`), chunk(`{}`, `"finish_reason":"stop"`),
			`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1790000000,"model":"my-model","choices":[],"usage":{"prompt_tokens":30,"total_tokens":37,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":16},"completion_tokens_details":{"reasoning_tokens":null}}}`,
			"[DONE]"},
		status: "completed",
		usage: `{"input_tokens":30,"input_tokens_details":{"cached_tokens":16,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":7,
			"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":37}`,
	}, {
		name: "namespaced call",
		body: `{"input":"x","stream":true,"tools":[{"type":"namespace","name":"fs","tools":[{"type":"function","name":"read"}]}]}`,
		events: []string{roleChunk, chunk(`{"tool_calls":[{"id":"chatcmpl-tool-a","type":"function","index":0,"function":{"name":"fs__read","arguments":"{}"}}]}`),
			chunk(`{}`, `"finish_reason":"tool_calls"`), "[DONE]"},
		status: "completed",
		output: `[{"arguments":"{}","call_id":"chatcmpl-tool-a","name":"read","type":"function_call","id":"fc_0000000000000001","namespace":"fs","status":"completed"}]`,
	}, {
		name: "logprobs when included",
		body: `{"input":"x","stream":true,"include":["message.output_text.logprobs"]}`,
		events: []string{roleChunk,
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"reasoning":"r"},"logprobs":{"content":[{"token":"r","logprob":-1.0,"bytes":[114],"top_logprobs":[]}]},"finish_reason":null}]}`,
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[{"token":"Hi","logprob":-0.5,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.5,"bytes":[72,105]}]}]},"finish_reason":null}]}`,
			`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"!"},"logprobs":{"content":[]},"finish_reason":"stop"}]}`,
			"[DONE]"},
		status: "completed",
		output: `[{"id":"rs_0000000000000001","summary":[],"type":"reasoning","content":[{"text":"r","type":"reasoning_text"}],"encrypted_content":null,"status":null},
			{"id":"msg_0000000000000002","content":[{"annotations":[],"text":"Hi!","type":"output_text","logprobs":[{"token":"Hi","bytes":[72,105],"logprob":-0.5,"top_logprobs":[{"token":"Hi","bytes":[72,105],"logprob":-0.5}]}]}],"role":"assistant","status":"completed","type":"message"}]`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body
			if body == "" {
				body = `{"model":"my-model","input":"hi","stream":true,"tools":[` + weatherTool + `]}`
			}
			st := mustTranslate(t, body, nil).NewStream()
			out := feed(st, tt.events...)
			if tt.end {
				out = st.AppendEnd(out, tt.cause)
			}
			if !st.Done() {
				t.Fatalf("stream not done:\n%s", out)
			}
			if more := st.AppendEvent(nil, []byte(chunk(`{"content":"more"}`))); len(more) != 0 {
				t.Errorf("events after the terminal one: %s", more)
			}
			if more := st.AppendEnd(nil, nil); len(more) != 0 {
				t.Errorf("End after the terminal event wrote %s", more)
			}
			evs, err := checkStream(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if tt.names != nil && !slices.Equal(names(evs), tt.names) {
				t.Errorf("events\n got %v\nwant %v", names(evs), tt.names)
			}
			last := evs[len(evs)-1].data
			resp := member(last, "response")
			if st := decoded(member(resp, "status")); st != tt.status {
				t.Errorf("status %q, want %q", st, tt.status)
			}
			if tt.output != "" && string(member(resp, "output")) != compact(t, tt.output) {
				t.Errorf("output\n got %s\nwant %s", member(resp, "output"), compact(t, tt.output))
			}
			if tt.usage != "" && string(member(resp, "usage")) != compact(t, tt.usage) {
				t.Errorf("usage\n got %s\nwant %s", member(resp, "usage"), compact(t, tt.usage))
			}
			h := st.History()
			if tt.status == "failed" {
				errObj := member(resp, "error")
				if decoded(member(errObj, "message")) != tt.error || decoded(member(errObj, "code")) != "server_error" {
					t.Errorf("error %s, want server_error %q", errObj, tt.error)
				}
				if h != nil {
					t.Errorf("a failed stream has a History")
				}
			} else if h == nil || string(h.Output) != string(member(resp, "output")) {
				t.Errorf("history %v does not hold the output", h)
			}
		})
	}
}

// The response.completed of a stream is the object Answer gives for the same
// generation without streaming.
func TestStreamMatchesAnswer(t *testing.T) {
	body := `{"model":"my-model","input":"Weather in Paris?","tools":[` + weatherTool + `],"include":["reasoning.encrypted_content"]}`
	answer, _, err := mustTranslate(t, body, nil).Answer([]byte(chatAnswer(
		`"content":"Checking.","tool_calls":[{"id":"chatcmpl-tool-a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}],"reasoning":"Need the weather."`,
		"tool_calls", `{"prompt_tokens":5,"total_tokens":12,"completion_tokens":7,"prompt_tokens_details":null}`)))
	if err != nil {
		t.Fatal(err)
	}
	st := mustTranslate(t, strings.Replace(body, `"input"`, `"stream":true,"input"`, 1), nil).NewStream()
	out := feed(st, roleChunk, chunk(`{"reasoning":"Need "}`), chunk(`{"reasoning":"the weather."}`), chunk(`{"content":"Checking."}`),
		chunk(callOpen1), chunk(callArgs1), chunk(`{}`, `"finish_reason":"tool_calls"`), usageChunk, "[DONE]")
	evs, err := checkStream(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := member(evs[len(evs)-1].data, "response"); !bytes.Equal(got, answer) {
		t.Errorf("stream's final response\n%s\nnon-stream answer\n%s", got, answer)
	}
}

// What the Codex CLI needs of a stream (agent-dialects.md §6.3,
// codex-rs/codex-api/src/sse/responses.rs): response.created with a
// response; function calls taken from output_item.done with name, string
// arguments and call_id; reasoning_text.delta with content_index;
// response.completed parsing as {id, usage{input_tokens,
// input_tokens_details{cached_tokens int}, output_tokens,
// output_tokens_details{reasoning_tokens int}, total_tokens}} with no null
// inside a details object; and response.completed as the last event.
func TestStreamCodexNeeds(t *testing.T) {
	st := mustTranslate(t, `{"model":"qwen3","instructions":"You are Codex.","input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"ls"}]}],
		"tools":[{"type":"function","name":"shell","parameters":{"type":"object"}},{"type":"local_shell"}],"tool_choice":"auto","parallel_tool_calls":false,
		"reasoning":{"effort":"medium","summary":"auto"},"store":false,"stream":true,"include":["reasoning.encrypted_content"],"prompt_cache_key":"k"}`, nil).NewStream()
	out := feed(st, roleChunk, chunk(`{"reasoning":"Run ls."}`),
		chunk(`{"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","index":0,"function":{"name":"shell","arguments":"{\"command\": [\"ls\"]}"}}]}`),
		chunk(`{}`, `"finish_reason":"tool_calls"`), usageChunk, "[DONE]")
	evs, err := checkStream(out)
	if err != nil {
		t.Fatal(err)
	}
	var calls []map[string]any
	for _, ev := range evs {
		var e struct {
			Type         string          `json:"type"`
			Response     json.RawMessage `json:"response"`
			Item         json.RawMessage `json:"item"`
			ContentIndex *int            `json:"content_index"`
		}
		if err := json.Unmarshal(ev.data, &e); err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case "response.created":
			if len(e.Response) == 0 {
				t.Error("response.created without a response")
			}
		case "response.reasoning_text.delta":
			if e.ContentIndex == nil {
				t.Error("reasoning_text.delta without content_index")
			}
		case "response.output_item.done":
			var item map[string]any
			if err := json.Unmarshal(e.Item, &item); err != nil {
				t.Fatal(err)
			}
			if item["type"] == "function_call" {
				calls = append(calls, item)
			}
		case "response.completed":
			var resp struct {
				ID    string `json:"id"`
				Usage struct {
					InputTokens        int64                      `json:"input_tokens"`
					InputTokensDetails map[string]json.RawMessage `json:"input_tokens_details"`
					OutputTokens       int64                      `json:"output_tokens"`
					OutputDetails      map[string]json.RawMessage `json:"output_tokens_details"`
					TotalTokens        int64                      `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(e.Response, &resp); err != nil {
				t.Fatal(err)
			}
			var cached, reasoning int64
			if resp.ID == "" || json.Unmarshal(resp.Usage.InputTokensDetails["cached_tokens"], &cached) != nil ||
				json.Unmarshal(resp.Usage.OutputDetails["reasoning_tokens"], &reasoning) != nil ||
				string(resp.Usage.InputTokensDetails["cached_tokens"]) == "null" || string(resp.Usage.OutputDetails["reasoning_tokens"]) == "null" {
				t.Errorf("response.completed does not parse as Codex needs: %s", e.Response)
			}
			if resp.Usage.TotalTokens != resp.Usage.InputTokens+resp.Usage.OutputTokens {
				t.Errorf("usage %+v", resp.Usage)
			}
		}
	}
	if len(calls) != 1 || calls[0]["name"] != "shell" || calls[0]["call_id"] != "chatcmpl-tool-1" || calls[0]["arguments"] != `{"command": ["ls"]}` {
		t.Errorf("function calls from output_item.done: %v", calls)
	}
	if evs[len(evs)-1].name != "response.completed" {
		t.Errorf("last event %s", evs[len(evs)-1].name)
	}
	// The reasoning comes back (Codex strips its text, keeps
	// encrypted_content) and reaches the next prompt.
	var reasoningItem json.RawMessage
	for _, ev := range evs {
		if ev.name == "response.output_item.done" && bytes.Contains(ev.data, []byte(`"type":"reasoning"`)) {
			reasoningItem = member(ev.data, "item")
		}
	}
	var item map[string]any
	if err := json.Unmarshal(reasoningItem, &item); err != nil {
		t.Fatal(err)
	}
	back, _ := json.Marshal(map[string]any{"type": "reasoning", "id": item["id"], "summary": []any{}, "encrypted_content": item["encrypted_content"]})
	next := mustTranslate(t, `{"input":[{"role":"user","content":"ls"},`+string(back)+`,{"type":"function_call","call_id":"chatcmpl-tool-1","name":"shell","arguments":"{}"}]}`, nil)
	if !strings.Contains(string(next.Chat()), `{"role":"assistant","reasoning":"Run ls.","tool_calls":[`) {
		t.Errorf("reasoning not carried back: %s", next.Chat())
	}
}
