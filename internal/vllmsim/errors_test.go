package vllmsim

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrors covers every error vLLM answers before streaming starts: the
// status, the body's exact type and param, and the message (exact when it
// is a fixed vLLM string, by substring for pydantic's listings).
func TestErrors(t *testing.T) {
	s := newSim(Options{MaxModelLen: 64})
	str := func(s string) *string { return &s }
	tools := `"tools":[{"type":"function","function":{"name":"get_weather"}}]`
	for _, tc := range []struct {
		name    string
		path    string
		body    string
		status  int
		typ     string
		param   *string // nil: null
		message string  // exact unless contains is set
		contain bool
	}{
		{"bad JSON", chatPath, `{"messages":`, 400, "Bad Request", str("body.12"),
			"1 validation error:\n  {'type': 'json_invalid', 'loc': ('body', 12), 'msg': 'JSON decode error', 'input': {}, 'ctx': {'error': 'Expecting value'}}", false},
		{"empty body", chatPath, ``, 400, "Bad Request", str("body"),
			"1 validation error:\n  {'type': 'missing', 'loc': ('body',), 'msg': 'Field required', 'input': None}", false},
		{"body not an object", chatPath, `[1]`, 400, "Bad Request", str("body"),
			"1 validation error:\n  {'type': 'model_attributes_type', 'loc': ('body',), 'msg': 'Input should be a valid dictionary or object to extract fields from', 'input': [1]}", false},
		{"missing messages", chatPath, `{"model":"` + testModel + `","max_tokens":5}`, 400, "Bad Request", str("body.messages"),
			"1 validation error:\n  {'type': 'missing', 'loc': ('body', 'messages'), 'msg': 'Field required', 'input': {'model': 'Qwen/Qwen2.5-1.5B-Instruct', 'max_tokens': 5}}", false},
		{"messages not a list", chatPath, `{"messages":"hi"}`, 400, "Bad Request", str("body.messages"),
			"{'type': 'list_type', 'loc': ('body', 'messages'), 'msg': 'Input should be a valid list', 'input': 'hi'}", true},
		{"message without role", chatPath, `{"messages":[{"content":"hi"}]}`, 400, "Bad Request", str("body.messages.0.role"),
			"'msg': 'Field required'", true},
		{"two type errors", chatPath, `{"messages":[],"n":"x","temperature":[1.5]}`, 400, "Bad Request", str("body.n"),
			"2 validation errors:\n  {'type': 'int_parsing', 'loc': ('body', 'n'), 'msg': 'Input should be a valid integer, unable to parse string as an integer', 'input': 'x'}\n  {'type': 'float_type', 'loc': ('body', 'temperature'), 'msg': 'Input should be a valid number', 'input': [1.5]}", false},
		{"fractional int", chatPath, `{"messages":[],"max_tokens":2.5}`, 400, "Bad Request", str("body.max_tokens"),
			"'type': 'int_from_float'", true},
		{"bad stop", chatPath, `{"messages":[],"stop":5}`, 400, "Bad Request", str("body.stop.str"), "'type': 'string_type'", true},
		{"unknown model", chatPath, `{"model":"gpt-4","messages":[]}`, 404, "NotFoundError", str("model"), "The model `gpt-4` does not exist.", false},
		{"unknown model, completions", complPath, `{"model":"gpt-4","prompt":"x"}`, 404, "NotFoundError", str("model"), "The model `gpt-4` does not exist.", false},
		{"stream_options without stream", chatPath, `{"messages":[],"stream_options":{"include_usage":true}}`, 400, "Bad Request", str("stream_options"),
			"1 validation error:\n  {'type': 'value_error', 'loc': ('body',), 'msg': 'Value error, Stream options can only be defined when `stream=True`. (parameter=stream_options)', 'input': {'messages': [], 'stream_options': {'include_usage': True}}, 'ctx': {'error': VLLMValidationError('Stream options can only be defined when `stream=True`.')}}", false},
		{"stream_options with stream false", complPath, `{"prompt":"x","stream":false,"stream_options":{"include_usage":true}}`, 400, "Bad Request", str("stream_options"),
			"Stream options can only be defined when `stream=True`.", true},
		{"top_logprobs without logprobs", chatPath, `{"messages":[],"top_logprobs":2}`, 400, "Bad Request", str("top_logprobs"),
			"when using `top_logprobs`, `logprobs` must be set to true.", true},
		{"negative top_logprobs", chatPath, `{"messages":[],"logprobs":true,"top_logprobs":-3}`, 400, "Bad Request", str("top_logprobs"),
			"`top_logprobs` must be a positive value or -1. (parameter=top_logprobs, value=-3)", true},
		{"top_logprobs not a number", chatPath, `{"messages":[],"logprobs":true,"top_logprobs":"x"}`, 400, "Bad Request", str("top_logprobs"),
			"`top_logprobs` must be an integer. (parameter=top_logprobs, value=x)", true},
		{"prompt_logprobs with stream", chatPath, `{"messages":[],"stream":true,"prompt_logprobs":1}`, 400, "Bad Request", str("prompt_logprobs"),
			"`prompt_logprobs` are not available when `stream=True`.", true},
		{"prompt_logprobs with stream, completions", complPath, `{"prompt":"x","stream":true,"prompt_logprobs":1}`, 400, "Bad Request", str("prompt_logprobs"),
			"`prompt_logprobs` are not available when `stream=True`.", true},
		{"missing prompt", complPath, `{"max_tokens":5}`, 400, "Bad Request", str("prompt"),
			"Value error, Either prompt or prompt_embeds must be provided and non-empty. (parameter=prompt)", true},
		{"empty prompt", complPath, `{"prompt":""}`, 400, "Bad Request", str("prompt"),
			"Either prompt or prompt_embeds must be provided and non-empty.", true},
		{"prompt wrong type", complPath, `{"prompt":5}`, 400, "Bad Request", str("body.prompt.list[int]"),
			"4 validation errors:\n  {'type': 'list_type', 'loc': ('body', 'prompt', 'list[int]'), 'msg': 'Input should be a valid list', 'input': 5}", true},
		{"negative token ID", complPath, `{"prompt":[1,-2]}`, 400, "Bad Request", str("body.prompt.list[int].1"),
			"'type': 'greater_than_equal'", true},
		{"token out of vocabulary", complPath, `{"prompt":[1,200000]}`, 400, "BadRequestError", nil, "Token id 200000 is out of vocabulary", false},
		{"completions logprobs negative", complPath, `{"prompt":"x","logprobs":-2}`, 400, "Bad Request", str("logprobs"),
			"`logprobs` must be a positive value or -1.", true},
		{"context length", chatPath, `{"messages":[{"role":"user","content":"` + strings.Repeat("word ", 80) + `"}]}`, 400, "BadRequestError", str("input_tokens"),
			"This model's maximum context length is 64 tokens. However, your request has 100 input tokens. Please reduce the length of the input messages.", false},
		{"max_tokens too large", chatPath, `{"messages":[{"role":"user","content":"Say hi"}],"max_tokens":100}`, 400, "BadRequestError", str("max_tokens"),
			"'max_tokens' or 'max_completion_tokens' is too large: 100. This model's maximum context length is 64 tokens and your request has 21 input tokens (100 > 64 - 21).", false},
		{"max_tokens too large, completions", complPath, `{"prompt":"Hello","max_tokens":64}`, 400, "BadRequestError", str("max_tokens"),
			"'max_tokens' or 'max_completion_tokens' is too large: 64. This model's maximum context length is 64 tokens and your request has 1 input tokens (64 > 64 - 1).", false},
		{"max_tokens huge", chatPath, `{"messages":[],"max_tokens":9000000000000000000}`, 400, "BadRequestError", str("max_tokens"),
			"'max_tokens' or 'max_completion_tokens' is too large: 9000000000000000000. This model's maximum context length is 64 tokens and your request has 14 input tokens (9000000000000000000 > 64 - 14).", false},
		{"max_tokens zero", chatPath, `{"messages":[],"max_tokens":0}`, 400, "BadRequestError", str("max_tokens"), "max_tokens must be at least 1, got 0.", false},
		{"n zero", chatPath, `{"messages":[],"n":0}`, 400, "BadRequestError", str("n"), "n must be at least 1, got 0.", false},
		{"negative temperature", chatPath, `{"messages":[],"temperature":-1}`, 400, "BadRequestError", str("temperature"), "temperature must be non-negative, got -1.0.", false},
		{"too many logprobs", chatPath, `{"messages":[],"logprobs":true,"top_logprobs":21}`, 400, "BadRequestError", nil, "Requested sample logprobs of 21, which is greater than max allowed: 20", false},
		{"empty tools", chatPath, `{"messages":[],"tools":[]}`, 400, "Bad Request", str("tools"), "`tools` must not be an empty array.", true},
		{"tool_choice without tools", chatPath, `{"messages":[],"tool_choice":"auto"}`, 400, "Bad Request", str("tool_choice"), "When using `tool_choice`, `tools` must be set.", true},
		{"bad tool_choice", chatPath, `{"messages":[],` + tools + `,"tool_choice":"always"}`, 400, "Bad Request", str("tool_choice"),
			"Invalid value for `tool_choice`: always! Only named tools, \"none\", \"auto\" or \"required\" are supported.", true},
		{"unknown named tool", chatPath, `{"messages":[],` + tools + `,"tool_choice":{"type":"function","function":{"name":"nope"}}}`, 400, "Bad Request", str("tool_choice"),
			"The tool specified in `tool_choice` does not match any of the specified `tools`", true},
		{"tool without name", chatPath, `{"messages":[],"tools":[{"type":"function","function":{}}]}`, 400, "Bad Request", str("body.tools.0.function.name"), "'msg': 'Field required'", true},
		{"continue_final_message with add_generation_prompt", chatPath, `{"messages":[{"role":"assistant","content":"x"}],"continue_final_message":true}`, 400, "BadRequestError", nil,
			"Cannot set both `continue_final_message` and `add_generation_prompt` to True.", false},
		{"tokenize unknown model", "/tokenize", `{"model":"x","prompt":"hi"}`, 404, "NotFoundError", str("model"), "The model `x` does not exist.", false},
		{"tokenize missing prompt", "/tokenize", `{}`, 400, "Bad Request", str("body.prompt"), "'msg': 'Field required'", true},
		{"detokenize missing tokens", "/detokenize", `{}`, 400, "Bad Request", str("body.tokens"), "'msg': 'Field required'", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bodies := []string{tc.body}
			if streamVariant[tc.name] {
				// Errors found before generation are plain JSON even for a
				// streaming request: no SSE at all.
				bodies = append(bodies, `{"stream":true,`+tc.body[1:])
			}
			for _, body := range bodies {
				r := post(t, s, tc.path, body)
				if r.code != tc.status {
					t.Fatalf("%s: status %d, want %d: %s", body, r.code, tc.status, r.body)
				}
				if ct := r.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("content type %q", ct)
				}
				n := parseNode(t, r.body)
				if got := keysAt(t, n, ""); !slices.Equal(got, []string{"error"}) {
					t.Fatalf("top keys %v", got)
				}
				if got := keysAt(t, n, "error"); !slices.Equal(got, []string{"message", "type", "param", "code"}) {
					t.Fatalf("error keys %v", got)
				}
				if n.s(t, "error.type") != tc.typ || n.i(t, "error.code") != int64(tc.status) {
					t.Errorf("type %q code %d", n.s(t, "error.type"), n.i(t, "error.code"))
				}
				switch {
				case tc.param == nil && !n.isNull("error.param"):
					t.Errorf("param %s, want null", r.body)
				case tc.param != nil && (n.at("error.param").kind != 's' || n.s(t, "error.param") != *tc.param):
					t.Errorf("param %s, want %q", shapeOrStr(n.at("error.param")), *tc.param)
				}
				msg := n.s(t, "error.message")
				if tc.contain && !strings.Contains(msg, tc.message) || !tc.contain && msg != tc.message {
					t.Errorf("message\n got %q\nwant %q", msg, tc.message)
				}
			}
		})
	}
}

// streamVariant names the cases also checked with "stream":true added.
var streamVariant = map[string]bool{
	"unknown model": true, "unknown model, completions": true,
	"top_logprobs without logprobs": true, "context length": true, "max_tokens too large": true,
	"max_tokens too large, completions": true, "n zero": true, "token out of vocabulary": true,
	"tool_choice without tools": true,
}

func shapeOrStr(n *node) string {
	if n != nil && n.kind == 's' {
		return n.str
	}
	if n == nil {
		return "<absent>"
	}
	return shape(n)
}

// Python truthiness: an empty stream_options object is not "defined".
func TestStreamOptionsEmptyWithoutStream(t *testing.T) {
	s := newSim(Options{})
	if r := post(t, s, chatPath, `{`+sayHi+`,"stream_options":{}}`); r.code != http.StatusOK {
		t.Fatalf("status %d: %s", r.code, r.body)
	}
}

func TestRoutingErrors(t *testing.T) {
	s := newSim(Options{})
	for _, tc := range []struct {
		method, path string
		status       int
		body         string
		allow        string
	}{
		{"GET", "/nope", 404, `{"detail":"Not Found"}`, ""},
		{"POST", "/v1/embeddings", 404, `{"detail":"Not Found"}`, ""},
		{"POST", "/v1/responses", 404, `{"detail":"Not Found"}`, ""},
		{"GET", chatPath, 405, `{"detail":"Method Not Allowed"}`, "POST"},
		{"POST", "/health", 405, `{"detail":"Method Not Allowed"}`, "GET, HEAD"},
		{"DELETE", "/v1/models", 405, `{"detail":"Method Not Allowed"}`, "GET, HEAD"},
	} {
		r := do(t, s, tc.method, tc.path, "")
		if r.code != tc.status || string(r.body) != tc.body || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.code, r.body)
		}
		if r.header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: Allow %q", tc.method, tc.path, r.header.Get("Allow"))
		}
	}
}

func TestAPIKey(t *testing.T) {
	s := newSim(Options{APIKey: "sk-test"})
	const unauthorized = `{"error":"Unauthorized"}`
	for _, tc := range []struct {
		method, path, auth string
		status             int
	}{
		{"POST", chatPath, "", 401},
		{"POST", chatPath, "Bearer wrong", 401},
		{"POST", chatPath, "Basic sk-test", 401},
		{"POST", chatPath, "Bearer sk-test", 200},
		{"POST", chatPath, "bearer sk-test", 200},
		{"GET", "/v1/models", "", 401},
		{"GET", "/v1/unknown", "", 401}, // the middleware runs before routing
		{"GET", "/v1/unknown", "Bearer sk-test", 404},
		{"POST", "/inference/v1/generate", "", 401},
		{"GET", "/health", "", 200},
		{"GET", "/version", "", 200},
		{"POST", "/tokenize", "", 200},
	} {
		body := ""
		if tc.method == "POST" {
			body = `{` + sayHi + `}`
			if tc.path == "/tokenize" {
				body = `{"prompt":"hi"}`
			}
		}
		var hdr []string
		if tc.auth != "" {
			hdr = []string{"Authorization", tc.auth}
		}
		r := do(t, s, tc.method, tc.path, body, hdr...)
		if r.code != tc.status {
			t.Errorf("%s %s %q: status %d, want %d", tc.method, tc.path, tc.auth, r.code, tc.status)
		}
		if tc.status == 401 && string(r.body) != unauthorized {
			t.Errorf("401 body %s", r.body)
		}
	}
}

func TestFailAfter(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "one two three four five" }})
	r := post(t, s, chatPath, `{`+sayHi+`}`, "X-Vllmsim-Fail-After", "2")
	if r.code != 500 || string(r.body) != `{"error":{"message":"Internal server error","type":"InternalServerError","param":null,"code":500}}` {
		t.Fatalf("non-stream: %d %s", r.code, r.body)
	}
	const errEvent = `{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`
	for _, tc := range []struct {
		path, body string
		head       int // events before the token chunks
	}{
		{chatPath, `{` + sayHi + `,"stream":true,"stream_options":{}}`, 1},
		{complPath, `{"prompt":"Hi","stream":true,"stream_options":{}}`, 0},
	} {
		for _, n := range []int{0, 2, 100} {
			r := post(t, s, tc.path, tc.body, "X-Vllmsim-Fail-After", strconv.Itoa(n))
			mustOK(t, r, eventType)
			ev := sseEvents(t, r.body)
			tokens := len(ev) - 2 - tc.head
			if n < 100 && tokens != n {
				t.Errorf("%s fail after %d: %d token chunks", tc.path, n, tokens)
			}
			if ev[len(ev)-2] != errEvent {
				t.Errorf("%s: error event %q", tc.path, ev[len(ev)-2])
			}
			for _, e := range ev[:len(ev)-2] {
				if strings.Contains(e, `"usage":{`) {
					t.Errorf("usage chunk sent before the failure")
				}
			}
		}
	}
}
