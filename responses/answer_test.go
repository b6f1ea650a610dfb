package responses

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// chatAnswer builds a vLLM chat completion (non-stream, every field dumped
// as vLLM dumps it) with the given message members, finish reason and usage.
func chatAnswer(message, finish, usage string) string {
	return `{"id":"chatcmpl-9f2c1e0b7a6d5c4b","object":"chat.completion","created":1790000000,"model":"my-model","choices":[{"index":0,"message":{"role":"assistant",` +
		message + `,"refusal":null,"annotations":null,"audio":null,"function_call":null},"logprobs":null,"finish_reason":"` + finish +
		`","stop_reason":null,"token_ids":[1,2,3]}],"service_tier":null,"system_fingerprint":null,"usage":` + usage +
		`,"prompt_logprobs":null,"prompt_token_ids":[1,2],"kv_transfer_params":null}`
}

const (
	weatherTool  = `{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}`
	plainUsage   = `{"prompt_tokens":12,"total_tokens":52,"completion_tokens":40,"prompt_tokens_details":null}`
	weatherCall1 = `{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}`
	weatherCall2 = `{"id":"chatcmpl-tool-1b2a3f4e5d6c7b8a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Rome\"}"}}`
)

// The response object of agent-dialects.md §6.1, byte for byte: vLLM's field
// order with nulls kept, reasoning then message then function call, the
// chat tool id as call_id, usage with integer details and vLLM's extras.
func TestAnswerResponseObject(t *testing.T) {
	r := mustTranslate(t, `{"model":"my-model","input":"Weather in Paris?","tools":[`+weatherTool+`],"temperature":0.7}`, nil)
	chat := chatAnswer(`"content":"Checking.","tool_calls":[`+weatherCall1+`],"reasoning":"Need the weather."`, "tool_calls", plainUsage)
	got, hist, err := r.Answer([]byte(chat))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"resp_test","created_at":1790000000,"incomplete_details":null,"instructions":null,"metadata":null,"model":"my-model","object":"response",
		"output":[
		{"id":"rs_0000000000000001","summary":[],"type":"reasoning","content":[{"text":"Need the weather.","type":"reasoning_text"}],"encrypted_content":null,"status":null},
		{"id":"msg_0000000000000002","content":[{"annotations":[],"text":"Checking.","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"},
		{"arguments":"{\"city\": \"Paris\"}","call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"get_weather","type":"function_call","id":"fc_0000000000000003","status":"completed"}],
		"parallel_tool_calls":true,"temperature":0.7,"tool_choice":"auto","tools":[` + weatherTool + `],"top_p":null,"background":false,
		"max_output_tokens":null,"max_tool_calls":null,"previous_response_id":null,"prompt":null,"reasoning":null,"service_tier":"auto",
		"status":"completed","text":null,"top_logprobs":null,"truncation":"disabled",
		"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},
		"output_tokens":40,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":52},
		"user":null,"presence_penalty":0.0,"frequency_penalty":0.0,"kv_transfer_params":null,"ec_transfer_params":null,"input_messages":null,"output_messages":null}`
	if string(got) != compact(t, want) {
		t.Errorf("response\n got %s\nwant %s", got, compact(t, want))
	}
	if string(hist.Input) != `[{"type":"message","role":"user","content":"Weather in Paris?"}]` {
		t.Errorf("history input %s", hist.Input)
	}
	if string(hist.Output) != string(member(got, "output")) {
		t.Errorf("history output %s\nis not the response's output %s", hist.Output, member(got, "output"))
	}
}

func TestAnswer(t *testing.T) {
	tests := []struct {
		name    string
		body    string // the Responses request
		chat    string
		output  string // the response's output array
		status  string
		details string // incomplete_details
		usage   string // when checked
	}{{
		name:   "empty content gives no message item",
		body:   `{"input":"hi","tools":[` + weatherTool + `]}`,
		chat:   chatAnswer(`"content":"","tool_calls":[`+weatherCall1+`],"reasoning":null`, "tool_calls", plainUsage),
		output: `[{"arguments":"{\"city\": \"Paris\"}","call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"get_weather","type":"function_call","id":"fc_0000000000000001","status":"completed"}]`,
		status: "completed", details: "null",
	}, {
		name: "several function calls in one turn",
		body: `{"input":"hi","tools":[` + weatherTool + `]}`,
		chat: chatAnswer(`"content":null,"tool_calls":[`+weatherCall1+`,`+weatherCall2+`,{"id":"chatcmpl-tool-3","type":"function","function":{"name":"get_weather","arguments":"{}"}}],"reasoning":null`, "tool_calls", plainUsage),
		output: `[{"arguments":"{\"city\": \"Paris\"}","call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"get_weather","type":"function_call","id":"fc_0000000000000001","status":"completed"},
			{"arguments":"{\"city\": \"Rome\"}","call_id":"chatcmpl-tool-1b2a3f4e5d6c7b8a","name":"get_weather","type":"function_call","id":"fc_0000000000000002","status":"completed"},
			{"arguments":"{}","call_id":"chatcmpl-tool-3","name":"get_weather","type":"function_call","id":"fc_0000000000000003","status":"completed"}]`,
		status: "completed", details: "null",
	}, {
		name:   "length is incomplete",
		body:   `{"input":"hi","max_output_tokens":3}`,
		chat:   chatAnswer(`"content":"Once upon a","tool_calls":[],"reasoning":null`, "length", plainUsage),
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"Once upon a","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
		status: "incomplete", details: `{"reason":"max_output_tokens"}`,
	}, {
		name:   "usage details are integers",
		body:   `{"input":"hi"}`,
		chat:   chatAnswer(`"content":"ok","tool_calls":[],"reasoning":null`, "stop", `{"prompt_tokens":30,"total_tokens":37,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":16},"completion_tokens_details":{"reasoning_tokens":5}}`),
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"ok","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
		status: "completed", details: "null",
		usage: `{"input_tokens":30,"input_tokens_details":{"cached_tokens":16,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":7,
			"output_tokens_details":{"reasoning_tokens":5,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":37}`,
	}, {
		name:   "no usage gives zeros, never nulls",
		body:   `{"input":"hi"}`,
		chat:   `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"stop"}]}`,
		output: `[]`, status: "completed", details: "null",
		usage: `{"input_tokens":0,"input_tokens_details":{"cached_tokens":0,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":0,
			"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":0}`,
	}, {
		name:   "reasoning_content of older vLLM",
		body:   `{"input":"hi"}`,
		chat:   chatAnswer(`"content":"4","tool_calls":[],"reasoning_content":"2+2"`, "stop", plainUsage),
		output: `[{"id":"rs_0000000000000001","summary":[],"type":"reasoning","content":[{"text":"2+2","type":"reasoning_text"}],"encrypted_content":null,"status":null},{"id":"msg_0000000000000002","content":[{"annotations":[],"text":"4","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
		status: "completed", details: "null",
	}, {
		name:   "reasoning carried in encrypted_content when asked",
		body:   `{"input":"hi","include":["reasoning.encrypted_content"]}`,
		chat:   chatAnswer(`"content":"4","tool_calls":[],"reasoning":"2+2 \"is\" four\n"`, "stop", plainUsage),
		output: `[{"id":"rs_0000000000000001","summary":[],"type":"reasoning","content":[{"text":"2+2 \"is\" four\n","type":"reasoning_text"}],"encrypted_content":"` + carrierPrefix + base64.RawStdEncoding.EncodeToString([]byte("2+2 \"is\" four\n")) + `","status":null},{"id":"msg_0000000000000002","content":[{"annotations":[],"text":"4","type":"output_text","logprobs":null}],"role":"assistant","status":"completed","type":"message"}]`,
		status: "completed", details: "null",
	}, {
		name: "logprobs when included",
		body: `{"input":"hi","include":["message.output_text.logprobs"]}`,
		chat: `{"id":"c","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi!"},"logprobs":{"content":[
			{"token":"Hi","logprob":-0.1,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.1,"bytes":[72,105]},{"token":"Hey","logprob":-2.5,"bytes":[72,101,121]}]},
			{"token":"!","logprob":-0.5,"bytes":null,"top_logprobs":[]}]},"finish_reason":"stop"}]}`,
		output: `[{"id":"msg_0000000000000001","content":[{"annotations":[],"text":"Hi!","type":"output_text","logprobs":[
			{"token":"Hi","bytes":[72,105],"logprob":-0.1,"top_logprobs":[{"token":"Hi","bytes":[72,105],"logprob":-0.1},{"token":"Hey","bytes":[72,101,121],"logprob":-2.5}]},
			{"token":"!","bytes":[33],"logprob":-0.5,"top_logprobs":[]}]}],"role":"assistant","status":"completed","type":"message"}]`,
		status: "completed", details: "null",
	}, {
		name:   "a tool call without id gets one",
		body:   `{"input":"hi","tools":[` + weatherTool + `]}`,
		chat:   chatAnswer(`"content":null,"tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":"{}"}}]`, "tool_calls", plainUsage),
		output: `[{"arguments":"{}","call_id":"chatcmpl-tool-0000000000000001","name":"get_weather","type":"function_call","id":"fc_0000000000000002","status":"completed"}]`,
		status: "completed", details: "null",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustTranslate(t, tt.body, nil)
			got, hist, err := r.Answer([]byte(tt.chat))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(got) {
				t.Fatalf("response is not valid JSON: %s", got)
			}
			if out := string(member(got, "output")); out != compact(t, tt.output) {
				t.Errorf("output\n got %s\nwant %s", out, compact(t, tt.output))
			}
			if st := decoded(member(got, "status")); st != tt.status {
				t.Errorf("status %q, want %q", st, tt.status)
			}
			if d := string(member(got, "incomplete_details")); d != tt.details {
				t.Errorf("incomplete_details %s, want %s", d, tt.details)
			}
			if tt.usage != "" && string(member(got, "usage")) != compact(t, tt.usage) {
				t.Errorf("usage\n got %s\nwant %s", member(got, "usage"), compact(t, tt.usage))
			}
			if string(hist.Output) != string(member(got, "output")) {
				t.Errorf("history output %s", hist.Output)
			}
		})
	}
}

func TestAnswerEchoes(t *testing.T) {
	r := mustTranslate(t, `{"model":"alias","input":"hi","instructions":"Be brief.","metadata":{"run":"7"},"user":"u","top_p":0.8,"max_output_tokens":30000,
		"max_tool_calls":2,"reasoning":{"effort":"low","summary":"auto"},"text":{"format":{"type":"text"},"verbosity":"low"},"service_tier":"flex",
		"include":["message.output_text.logprobs"],"top_logprobs":2,"parallel_tool_calls":false,"presence_penalty":0.5,"truncation":"auto"}`, nil)
	got, _, err := r.Answer([]byte(`{"id":"c","object":"chat.completion","created":1790000001,"model":"served-name","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"kv_transfer_params":{"remote":"x"}}`))
	if err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]string{
		"created_at": `1790000001`, "model": `"served-name"`, "instructions": `"Be brief."`, "metadata": `{"run":"7"}`, "user": `"u"`,
		"top_p": `0.8`, "temperature": `null`, "max_output_tokens": `30000`, "max_tool_calls": `2`, "reasoning": `{"effort":"low","summary":"auto"}`,
		"text": `{"format":{"type":"text"},"verbosity":"low"}`, "service_tier": `"flex"`, "top_logprobs": `2`, "parallel_tool_calls": `false`,
		"presence_penalty": `0.5`, "frequency_penalty": `0.0`, "truncation": `"auto"`, "tool_choice": `"none"`, "tools": `[]`,
		"kv_transfer_params": `{"remote":"x"}`, "previous_response_id": `null`,
	} {
		if v := string(member(got, field)); v != want {
			t.Errorf("%s = %s, want %s", field, v, want)
		}
	}
}

func TestAnswerErrors(t *testing.T) {
	r := mustTranslate(t, `{"input":"hi"}`, nil)
	for _, chat := range []string{`not json`, `[]`, `{"object":"chat.completion","choices":[]}`, `{"choices":[1,2]}`} {
		_, _, err := r.Answer([]byte(chat))
		var e *Error
		if !errors.As(err, &e) || e.Status != 502 {
			t.Errorf("Answer(%s) = %v, want a 502 *Error", chat, err)
		}
	}
}

// A namespaced tool goes to chat flattened ("fs__read") and comes back as
// name and namespace, in the answer and when the call is sent back.
func TestNamespaceRoundTrip(t *testing.T) {
	tools := `[{"type":"namespace","name":"fs","description":"Files","tools":[{"type":"function","name":"read","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}]}]`
	r := mustTranslate(t, `{"input":"read a","tools":`+tools+`}`, nil)
	if !strings.Contains(string(r.Chat()), `"name":"fs__read"`) {
		t.Fatalf("chat tools not flattened: %s", r.Chat())
	}
	got, hist, err := r.Answer([]byte(chatAnswer(`"content":null,"tool_calls":[{"id":"chatcmpl-tool-9","type":"function","function":{"name":"fs__read","arguments":"{\"path\": \"a\"}"}}]`, "tool_calls", plainUsage)))
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"arguments":"{\"path\": \"a\"}","call_id":"chatcmpl-tool-9","name":"read","type":"function_call","id":"fc_0000000000000001","namespace":"fs","status":"completed"}]`
	if out := string(member(got, "output")); out != want {
		t.Errorf("output\n got %s\nwant %s", out, want)
	}
	next := mustTranslate(t, `{"input":[{"type":"function_call_output","call_id":"chatcmpl-tool-9","output":"text of a"}],"previous_response_id":"resp_test","tools":`+tools+`}`, hist)
	wantChat := `{"messages":[{"role":"user","content":"read a"},{"role":"assistant","tool_calls":[{"id":"chatcmpl-tool-9","type":"function","function":{"name":"fs__read","arguments":"{\"path\": \"a\"}"}}]},
		{"role":"tool","tool_call_id":"chatcmpl-tool-9","content":"text of a"}],"tools":[{"type":"function","function":{"name":"fs__read","description":"Files","parameters":{"type":"object","properties":{"path":{"type":"string"}}}}}],"tool_choice":"auto"}`
	// The inner tool has no description of its own; the namespace's is not
	// copied down (vLLM dumps the inner FunctionTool).
	wantChat = strings.Replace(wantChat, `"description":"Files",`, "", 1)
	if string(next.Chat()) != compact(t, wantChat) {
		t.Errorf("next chat\n got %s\nwant %s", next.Chat(), compact(t, wantChat))
	}
}

// previous_response_id: the stored input and the whole output of the
// previous response (reasoning and function calls included, as in OpenAI's
// API) come before the new input; instructions are not carried over; the
// History of the new response holds the whole chain, so one lookup always
// suffices; and the chained request renders exactly as the same
// conversation sent in full (what Codex does) would.
func TestPreviousResponseComposition(t *testing.T) {
	tools := `"tools":[` + weatherTool + `]`
	r1 := mustTranslate(t, `{"instructions":"I1","input":"Weather in Paris and Rome?",`+tools+`}`, nil)
	_, h1, err := r1.Answer([]byte(chatAnswer(`"content":null,"tool_calls":[`+weatherCall1+`,`+weatherCall2+`],"reasoning":"Two cities."`, "tool_calls", plainUsage)))
	if err != nil {
		t.Fatal(err)
	}
	outputs := `[{"type":"function_call_output","call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","output":"18C"},{"type":"function_call_output","call_id":"chatcmpl-tool-1b2a3f4e5d6c7b8a","output":"21C"}]`
	r2 := mustTranslate(t, `{"instructions":"I2","previous_response_id":"`+r1.ID()+`","input":`+outputs+`,`+tools+`}`, h1)
	messages := `[{"role":"system","content":"I2"},{"role":"user","content":"Weather in Paris and Rome?"},
		{"role":"assistant","reasoning":"Two cities.","tool_calls":[` +
		`{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},` +
		`{"id":"chatcmpl-tool-1b2a3f4e5d6c7b8a","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Rome\"}"}}]},
		{"role":"tool","tool_call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","content":"18C"},{"role":"tool","tool_call_id":"chatcmpl-tool-1b2a3f4e5d6c7b8a","content":"21C"}]`
	if got := string(member(r2.Chat(), "messages")); got != compact(t, messages) {
		t.Errorf("turn 2 messages\n got %s\nwant %s", got, compact(t, messages))
	}
	full := `[` + string(h1.Input[1:len(h1.Input)-1]) + `,` + string(h1.Output[1:len(h1.Output)-1]) + `,` + outputs[1:]
	codex := mustTranslate(t, `{"instructions":"I2","input":`+full+`,`+tools+`}`, nil)
	if string(codex.Chat()) != string(r2.Chat()) {
		t.Errorf("the chained request and the full conversation render differently:\n%s\n%s", r2.Chat(), codex.Chat())
	}

	got2, h2, err := r2.Answer([]byte(chatAnswer(`"content":"Paris 18C, Rome 21C.","tool_calls":[],"reasoning":null`, "stop", plainUsage)))
	if err != nil {
		t.Fatal(err)
	}
	if decoded(member(got2, "previous_response_id")) != r1.ID() {
		t.Errorf("previous_response_id echo %s", member(got2, "previous_response_id"))
	}
	if string(h2.Input) != full {
		t.Errorf("turn 2 history input\n got %s\nwant %s", h2.Input, full)
	}
	r3 := mustTranslate(t, `{"previous_response_id":"`+r2.ID()+`","input":"Thanks"}`, h2)
	messages3 := strings.Replace(compact(t, messages), `{"role":"system","content":"I2"},`, "", 1)
	messages3 = messages3[:len(messages3)-1] + `,{"role":"assistant","content":"Paris 18C, Rome 21C."},{"role":"user","content":"Thanks"}]`
	if got := string(member(r3.Chat(), "messages")); got != messages3 {
		t.Errorf("turn 3 messages\n got %s\nwant %s", got, messages3)
	}
	// A History handed in for a request that names no previous response is
	// not used.
	r4 := mustTranslate(t, `{"input":"Thanks"}`, h2)
	if got := string(member(r4.Chat(), "messages")); got != `[{"role":"user","content":"Thanks"}]` {
		t.Errorf("unrequested history used: %s", got)
	}
}
