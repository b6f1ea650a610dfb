package responses

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
)

func TestTranslateRequest(t *testing.T) {
	carrier := carrierPrefix + base64.RawStdEncoding.EncodeToString([]byte("Use ls."))
	tests := []struct {
		name string
		body string
		chat string
	}{{
		// agent-dialects.md §5.5, the pair vLLM's render-parity test asserts.
		name: "render parity pair",
		body: `{"instructions":"Be helpful.","tools":[{"type":"function","name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}],"tool_choice":"auto",
			"input":[{"role":"user","content":"Weather in NYC?"},
			{"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"location\":\"NYC\"}"},
			{"type":"function_call_output","call_id":"call_1","output":"72F"},
			{"role":"user","content":"Thanks"}]}`,
		chat: `{"messages":[{"role":"system","content":"Be helpful."},{"role":"user","content":"Weather in NYC?"},
			{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\":\"NYC\"}"}}]},
			{"role":"tool","tool_call_id":"call_1","content":"72F"},{"role":"user","content":"Thanks"}],
			"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}],
			"tool_choice":"auto"}`,
	}, {
		// What Codex sends (agent-dialects.md §6.3): developer context,
		// reasoning sent back without its text but with the carrier tokentap
		// gave it, two parallel calls and their outputs; built-in and custom
		// tools; a JSON schema output; service fields that vLLM ignores.
		name: "codex turn",
		body: `{"model":"qwen3","instructions":"You are Codex.","input":[
			{"type":"message","role":"developer","content":[{"type":"input_text","text":"<permissions>"}]},
			{"type":"message","role":"user","content":[{"type":"input_text","text":"list files"}]},
			{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"` + carrier + `"},
			{"type":"function_call","id":"fc_1","name":"shell","arguments":"{\"command\":[\"ls\"]}","call_id":"chatcmpl-tool-a"},
			{"type":"function_call","id":"fc_2","name":"shell","arguments":"{\"command\":[\"pwd\"]}","call_id":"chatcmpl-tool-b"},
			{"type":"function_call_output","call_id":"chatcmpl-tool-a","output":"a.txt"},
			{"type":"function_call_output","call_id":"chatcmpl-tool-b","output":"/w"}],
			"tools":[{"type":"function","name":"shell","description":"Run","strict":false,"parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}}},"required":["command"]}},
			{"type":"local_shell"},{"type":"web_search"},{"type":"custom","name":"apply_patch","format":{"type":"grammar"}}],
			"tool_choice":"auto","parallel_tool_calls":true,"reasoning":{"effort":"high","summary":"auto"},"store":false,"stream":true,
			"include":["reasoning.encrypted_content"],"prompt_cache_key":"abc","client_metadata":{"x":"y"},
			"text":{"verbosity":"low","format":{"type":"json_schema","strict":true,"schema":{"type":"object"},"name":"codex_output_schema"}}}`,
		chat: `{"model":"qwen3","messages":[{"role":"system","content":"You are Codex."},
			{"role":"developer","content":[{"type":"text","text":"<permissions>"}]},
			{"role":"user","content":[{"type":"text","text":"list files"}]},
			{"role":"assistant","reasoning":"Use ls.","tool_calls":[
				{"id":"chatcmpl-tool-a","type":"function","function":{"name":"shell","arguments":"{\"command\":[\"ls\"]}"}},
				{"id":"chatcmpl-tool-b","type":"function","function":{"name":"shell","arguments":"{\"command\":[\"pwd\"]}"}}]},
			{"role":"tool","tool_call_id":"chatcmpl-tool-a","content":"a.txt"},
			{"role":"tool","tool_call_id":"chatcmpl-tool-b","content":"/w"}],
			"tools":[{"type":"function","function":{"name":"shell","description":"Run","parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}}},"required":["command"]},"strict":false}}],
			"tool_choice":"auto","reasoning_effort":"high",
			"response_format":{"type":"json_schema","json_schema":{"name":"codex_output_schema","schema":{"type":"object"},"strict":true}},
			"stream":true,"stream_options":{"include_usage":true}}`,
	}, {
		// Reasoning sent back: content[0].text, else summary[0].text; a foreign
		// encrypted_content is accepted and ignored. Reasoning and an assistant
		// message fill the preceding assistant message while unset; only the
		// first part of an assistant message is used.
		name: "reasoning and assistant items",
		body: `{"input":[{"role":"user","content":"q"},
			{"type":"reasoning","summary":[{"type":"summary_text","text":"S"}]},
			{"type":"message","role":"assistant","content":[{"type":"output_text","text":"A1","annotations":[]},{"type":"output_text","text":"A2"}]},
			{"role":"user","content":"q2"},
			{"type":"reasoning","content":[{"type":"reasoning_text","text":"C"}],"summary":[{"type":"summary_text","text":"S2"}],"encrypted_content":"gAAAAforeign"},
			{"type":"reasoning","summary":[],"encrypted_content":"gAAAAforeign"},
			{"role":"assistant","content":"plain"}]}`,
		chat: `{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"A1","reasoning":"S"},{"role":"user","content":"q2"},
			{"role":"assistant","reasoning":"C"},{"role":"assistant","content":"plain","reasoning":""}]}`,
	}, {
		// Content parts become chat parts; a namespaced call is flattened as
		// its tool is; a function_call_output may carry content parts.
		name: "images namespaces and part outputs",
		body: `{"input":[{"role":"user","content":[{"type":"input_text","text":"look"},{"type":"input_image","image_url":"data:image/png;base64,AAAA","detail":"auto"}]},
			{"type":"function_call","call_id":"c1","name":"read","namespace":"fs","arguments":"{}"},
			{"type":"function_call_output","call_id":"c1","output":[{"type":"input_text","text":"ok"},{"type":"input_image","image_url":"https://x/y.png"}]}],
			"tools":[{"type":"namespace","name":"fs","description":"Files","tools":[{"type":"function","name":"read","parameters":{"type":"object","properties":{}}},{"type":"custom","name":"x"}]}]}`,
		chat: `{"messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},
			{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"fs__read","arguments":"{}"}}]},
			{"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"ok"},{"type":"image_url","image_url":{"url":"https://x/y.png"}}]}],
			"tools":[{"type":"function","function":{"name":"fs__read","parameters":{"type":"object","properties":{}}}}],"tool_choice":"auto"}`,
	}, {
		// Sampling fields keep their names (null means unset), max_output_tokens
		// is chat's max_completion_tokens, logprobs come from include, vLLM's
		// extras pass through, and fields chat would not know are left out.
		name: "sampling and extras",
		body: `{"model":"m","input":"hi","instructions":"","temperature":0.2,"top_p":null,"top_k":20,"seed":7,"stop":["\n\n"],
			"max_output_tokens":64,"include":["message.output_text.logprobs"],"top_logprobs":3,"truncation":"auto","presence_penalty":0.5,
			"chat_template_kwargs":{"enable_thinking":false},"cache_salt":"s","return_token_ids":true,"user":"u1","metadata":{"k":"v"},
			"service_tier":"flex","parallel_tool_calls":false,"max_tool_calls":3,"stream":false}`,
		chat: `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":64,"temperature":0.2,"top_k":20,"seed":7,
			"stop":["\n\n"],"presence_penalty":0.5,"logprobs":true,"top_logprobs":3,"truncate_prompt_tokens":-1,
			"chat_template_kwargs":{"enable_thinking":false},"cache_salt":"s"}`,
	}, {
		// An unfinished assistant message last is continued (vLLM's
		// should_continue_final_message).
		name: "continue final message",
		body: `{"input":[{"role":"user","content":"Write"},{"type":"message","role":"assistant","status":"in_progress","content":[{"type":"output_text","text":"Once upon"}]}]}`,
		chat: `{"messages":[{"role":"user","content":"Write"},{"role":"assistant","content":"Once upon"}],"add_generation_prompt":false,"continue_final_message":true}`,
	}, {
		name: "named tool choice",
		body: `{"input":"hi","tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"get_weather"}}`,
		chat: `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}],
			"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`,
	}, {
		name: "named tool choice by its bare name in a namespace",
		body: `{"input":"hi","tools":[{"type":"namespace","name":"fs","tools":[{"type":"function","name":"read"}]}],"tool_choice":{"type":"function","name":"read"}}`,
		chat: `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"fs__read"}}],
			"tool_choice":{"type":"function","function":{"name":"fs__read"}}}`,
	}, {
		// After vLLM's render parity, "none" keeps the tools in the prompt.
		name: "tool choice none keeps tools",
		body: `{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":"none","text":{"format":{"type":"json_object"}}}`,
		chat: `{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"none","response_format":{"type":"json_object"}}`,
	}, {
		name: "only built-in tools",
		body: `{"input":"hi","tools":[{"type":"web_search_preview"},{"type":"mcp","server_label":"x"}],"tool_choice":"auto","text":{"format":{"type":"text"}}}`,
		chat: `{"messages":[{"role":"user","content":"hi"}]}`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustTranslate(t, tt.body, nil)
			if got, want := string(r.Chat()), compact(t, tt.chat); got != want {
				t.Errorf("chat body\n got %s\nwant %s", got, want)
			}
			if !json.Valid(r.Chat()) {
				t.Errorf("chat body is not valid JSON: %s", r.Chat())
			}
		})
	}
}

func TestTranslateRequestFlags(t *testing.T) {
	r := mustTranslate(t, `{"input":"hi","stream":true,"store":false}`, nil)
	if !r.Stream() || r.Store() {
		t.Errorf("stream %v store %v, want true false", r.Stream(), r.Store())
	}
	r = mustTranslate(t, `{"input":"hi"}`, nil)
	if r.Stream() || !r.Store() {
		t.Errorf("defaults: stream %v store %v, want false true (OpenAI's default)", r.Stream(), r.Store())
	}
	r, err := TranslateRequest([]byte(`{"input":"hi","request_id":"resp_mine"}`), nil)
	if err != nil || r.ID() != "resp_mine" {
		t.Errorf("request_id names the response: %v %v", r, err)
	}
	r, _ = TranslateRequest([]byte(`{"input":"hi"}`), nil)
	if id := r.ID(); len(id) != len("resp_")+16 || !strings.HasPrefix(id, "resp_") {
		t.Errorf("minted id %q, want resp_ and 16 hex digits", id)
	}
	if r2, _ := TranslateRequest([]byte(`{"input":"hi"}`), nil); r2.ID() == r.ID() {
		t.Errorf("two requests got the same id %s", r.ID())
	}
}

func TestTranslateRequestErrors(t *testing.T) {
	tests := []struct {
		name, body string
		prev       *History
		status     int
		param      string
		message    string // substring
	}{
		{"not JSON", `{"input":`, nil, 400, "", "not valid JSON"},
		{"not an object", `["hi"]`, nil, 400, "", "JSON object"},
		{"invalid UTF-8", "{\"input\":\"\xff\"}", nil, 400, "", "not valid JSON"},
		{"no input", `{"model":"m"}`, nil, 400, "input", "input is required"},
		{"input not string or array", `{"input":3}`, nil, 400, "input", "string or an array"},
		{"prompt template", `{"input":"hi","prompt":{"id":"p"}}`, nil, 400, "prompt", "prompt template is not supported"},
		{"background", `{"input":"hi","background":true}`, nil, 400, "background", "background"},
		{"conversation", `{"input":"hi","conversation":"conv_1"}`, nil, 400, "conversation", "conversation"},
		{"required without tools", `{"input":"hi","tool_choice":"required"}`, nil, 400, "tool_choice",
			"Tool choice 'required' must be specified with 'tools' parameter."},
		{"named function not a tool", `{"input":"hi","tools":[{"type":"function","name":"f"}],"tool_choice":{"type":"function","name":"g"}}`, nil, 400, "tool_choice",
			"Tool choice 'function' not found in 'tools' parameter."},
		{"hosted tool choice", `{"input":"hi","tools":[{"type":"web_search"}],"tool_choice":{"type":"web_search"}}`, nil, 400, "tool_choice", "not supported"},
		{"function tool without name", `{"input":"hi","tools":[{"type":"function"}]}`, nil, 400, "tools", "name"},
		{"unsupported item", `{"input":[{"type":"item_reference","id":"msg_1"}]}`, nil, 400, "input", "Unsupported input item type: item_reference"},
		{"unsupported part", `{"input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}`, nil, 400, "input", "Unsupported content part type: input_file"},
		{"image by file id", `{"input":[{"role":"user","content":[{"type":"input_image","file_id":"f"}]}]}`, nil, 400, "input", "file_id"},
		{"unknown role", `{"input":[{"role":"tool","content":"x"}]}`, nil, 400, "input", "Unsupported message role: tool"},
		{"function call without arguments", `{"input":[{"type":"function_call","call_id":"c","name":"f"}]}`, nil, 400, "input", "arguments"},
		{"both output constraints", `{"input":"hi","text":{"format":{"type":"json_object"}},"structured_outputs":{"json":{}}}`, nil, 400, "text",
			"Cannot specify both structured_outputs and text.format"},
		{"bad truncation", `{"input":"hi","truncation":"middle"}`, nil, 400, "truncation", "truncation"},
		{"unknown previous response", `{"input":"hi","previous_response_id":"resp_gone"}`, nil, 400, "previous_response_id",
			"Previous response with id 'resp_gone' not found."},
		{"corrupt history", `{"input":"hi","previous_response_id":"resp_1"}`, &History{Input: []byte(`{}`), Output: []byte(`[]`)}, 500,
			"previous_response_id", "not two JSON arrays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := TranslateRequest([]byte(tt.body), tt.prev)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want an *Error", err)
			}
			if e.Status != tt.status || e.Param != tt.param || !strings.Contains(e.Message, tt.message) {
				t.Errorf("got %d %q %q, want %d %q ~%q", e.Status, e.Param, e.Message, tt.status, tt.param, tt.message)
			}
			var body struct {
				Error struct {
					Message, Type string
					Param         *string
					Code          any
				}
			}
			if err := json.Unmarshal(e.Body(), &body); err != nil || body.Error.Message != e.Message || body.Error.Type == "" {
				t.Errorf("body %s: %v", e.Body(), err)
			}
		})
	}
}

// OpenAI answers an unknown previous_response_id with 400 and the code
// "previous_response_not_found" (vLLM with 404 and "response_id"); clients
// that recover from a lost chain look for OpenAI's.
func TestPreviousResponseNotFoundBody(t *testing.T) {
	_, err := TranslateRequest([]byte(`{"input":"hi","previous_response_id":"resp_0f09a2"}`), nil)
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		t.Fatalf("err = %v", err)
	}
	want := `{"error":{"message":"Previous response with id 'resp_0f09a2' not found.","type":"invalid_request_error","param":"previous_response_id","code":"previous_response_not_found"}}`
	if string(e.Body()) != want {
		t.Errorf("body\n got %s\nwant %s", e.Body(), want)
	}
	_, err = TranslateRequest([]byte(`{"input":"hi","tool_choice":"required"}`), nil)
	want = `{"error":{"message":"Tool choice 'required' must be specified with 'tools' parameter.","type":"invalid_request_error","param":"tool_choice","code":400}}`
	if !errors.As(err, &e) || string(e.Body()) != want {
		t.Errorf("body\n got %s\nwant %s", e.Body(), want)
	}
}

func TestPreviousResponseID(t *testing.T) {
	for body, want := range map[string]string{
		`{"input":"hi","previous_response_id":"resp_1"}`:      "resp_1",
		`{"previous_response_id":"resp_\u0031","input":"hi"}`: "resp_1",
		`{"input":"hi","previous_response_id":null}`:          "",
		`{"input":"hi"}`: "",
		`{"input":`:      "",
		`[1]`:            "",
	} {
		if got := PreviousResponseID([]byte(body)); got != want {
			t.Errorf("PreviousResponseID(%s) = %q, want %q", body, got, want)
		}
	}
}
