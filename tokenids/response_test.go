package tokenids

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func prepared(t testing.TB, ep Endpoint, file string, opts Options) Request {
	t.Helper()
	_, req, err := PrepareRequest(ep, readFile(t, file), opts)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// The verbatim vLLM example of a chat answer with return_token_ids and
// logprobs (vllm-wire.md §3.1).
func TestParseResponseChat(t *testing.T) {
	body := readFile(t, "chat_logprobs.json")
	req := prepared(t, Chat, "chat_logprobs.request.json", Options{})
	res, out, err := ParseResponse(&req, body, Strip{})
	if err != nil {
		t.Fatal(err)
	}
	if &out[0] != &body[0] {
		t.Error("body copied although nothing was stripped")
	}
	want := Result{
		ResponseID:     "chatcmpl-5d2f8c0e9b7a4e21",
		Model:          "Qwen/Qwen2.5-1.5B-Instruct",
		PromptTokenIDs: []int64{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 45764, 15588, 151645, 198, 151644, 77091, 198},
		Choices: []Choice{{
			Index: 0, TokenIDs: []int64{13048, 0, 151645}, Logprobs: []float64{-0.0123, -0.2051, -0.0009},
			FinishReason: "stop", Text: "Hi!",
		}},
		Usage: &Usage{PromptTokens: 21, CompletionTokens: 3, TotalTokens: 24},
	}
	want.Prompts = [][]int64{want.PromptTokenIDs}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got  %+v\nwant %+v", res, want)
	}
	if ok, problem := Check(&req, &res); !ok {
		t.Errorf("check: %s", problem)
	}
}

// Stripping gives exactly what vLLM sends when the fields were not
// requested: the keys stay, with null.
func TestParseResponseStrip(t *testing.T) {
	body := readFile(t, "chat_logprobs.json")
	req := prepared(t, Chat, "chat_logprobs.request.json", Options{})
	_, out, err := ParseResponse(&req, body, Strip{TokenIDs: true, Logprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	want := string(readFile(t, "chat_logprobs.json"))
	want = want[:strings.Index(want, `"logprobs":{"content"`)] + `"logprobs":null,"finish_reason"` + want[strings.Index(want, `,"finish_reason"`)+len(`,"finish_reason"`):]
	want = strings.Replace(want, `"token_ids":[13048,0,151645]`, `"token_ids":null`, 1)
	want = strings.Replace(want, `"prompt_token_ids":[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,45764,15588,151645,198,151644,77091,198]`, `"prompt_token_ids":null`, 1)
	if string(out) != want {
		t.Errorf("stripped\n got %s\nwant %s", out, want)
	}
	if &out[0] != &body[0] {
		t.Error("a stripping that only shrinks the body was not done in place")
	}
}

// vllm-wire.md §3.2: two prompts, n=2, prompt-major choices, per-choice
// prompt IDs, completions logprobs.
func TestParseResponseCompletionsSeveralPrompts(t *testing.T) {
	body := readFile(t, "completions_two_prompts_n2.json")
	req := prepared(t, Completions, "completions_two_prompts_n2.request.json", Options{})
	if req.N != 2 || req.Prompts != 2 {
		t.Fatalf("request: n=%d prompts=%d", req.N, req.Prompts)
	}
	res, _, err := ParseResponse(&req, body, Strip{})
	if err != nil {
		t.Fatal(err)
	}
	france, hello := []int64{785, 6722, 315, 9625, 374}, []int64{9707}
	if !reflect.DeepEqual(res.Prompts, [][]int64{france, hello}) || !reflect.DeepEqual(res.PromptTokenIDs, france) {
		t.Errorf("prompts = %v, first = %v", res.Prompts, res.PromptTokenIDs)
	}
	wantChoices := []Choice{
		{Index: 0, PromptIndex: 0, TokenIDs: []int64{12095, 13}, Logprobs: []float64{-0.11, -0.52}, FinishReason: "length", Text: " Paris."},
		{Index: 1, PromptIndex: 0, TokenIDs: []int64{12095, 11}, Logprobs: []float64{-0.11, -1.3}, FinishReason: "length", Text: " Paris,"},
		{Index: 2, PromptIndex: 1, TokenIDs: []int64{11, 358}, Logprobs: []float64{-0.7, -0.9}, FinishReason: "length", Text: ", I"},
		{Index: 3, PromptIndex: 1, TokenIDs: []int64{0, 198}, Logprobs: []float64{-1.2, -0.4}, FinishReason: "length", Text: "!\n"},
	}
	if !reflect.DeepEqual(res.Choices, wantChoices) {
		t.Errorf("choices\n got %+v\nwant %+v", res.Choices, wantChoices)
	}
	if ok, problem := Check(&req, &res); !ok {
		t.Errorf("check: %s", problem)
	}
}

// A server older than 0.10.2 ignores return_token_ids; the real capture
// shows the keys present with null.
func TestParseResponseWithoutIDs(t *testing.T) {
	body := readFile(t, "chat_no_return.json")
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	res, _, err := ParseResponse(&req, body, Strip{TokenIDs: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.PromptTokenIDs != nil || res.Choices[0].TokenIDs != nil || res.Usage.CompletionTokens != 54 {
		t.Errorf("result = %+v", res)
	}
	ok, problem := Check(&req, &res)
	if ok || !strings.Contains(problem, "no prompt_token_ids") || !strings.Contains(problem, "1 of 1 choices have no token_ids") {
		t.Errorf("check = %v %q", ok, problem)
	}
}

func TestParseResponseToolCall(t *testing.T) {
	body := `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[{"id":"chatcmpl-tool-ab","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}],"reasoning":null},"logprobs":null,"finish_reason":"tool_calls","stop_reason":null,"token_ids":[151657,198,5,151658,151645]}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":2,"total_tokens":7,"completion_tokens":5,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":[1,2],"kv_transfer_params":null}`
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	res, _, err := ParseResponse(&req, []byte(body), Strip{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Choices[0]
	if c.Text != "" || c.FinishReason != "tool_calls" || string(c.ToolCalls) != `[{"id":"chatcmpl-tool-ab","type":"function","function":{"name":"get_weather","arguments":"{\"location\": \"Paris\"}"}}]` {
		t.Errorf("choice = %+v (tool calls %s)", c, c.ToolCalls)
	}
	if ok, problem := Check(&req, &res); !ok {
		t.Error(problem)
	}
}

func TestParseError(t *testing.T) {
	tests := []struct {
		body string
		want APIError
		ok   bool
	}{
		{"{\"error\":{\"message\":\"The model `gpt-4` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}", APIError{"The model `gpt-4` does not exist.", "NotFoundError", 404}, true},
		{`{"object":"error","message":"old","type":"BadRequestError","param":null,"code":400}`, APIError{"old", "BadRequestError", 400}, true},
		{`{"error":"Unauthorized"}`, APIError{Message: "Unauthorized"}, true},
		{`{"detail":"Not Found"}`, APIError{Message: "Not Found"}, true},
		{`{"choices":[]}`, APIError{}, false},
		{`not json`, APIError{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseError([]byte(tt.body))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: got %+v %v, want %+v %v", tt.body, got, ok, tt.want, tt.ok)
		}
	}
}

// streamFile feeds an SSE capture through an EventReader and a Stream, one
// byte per read to exercise framing across reads, and returns the bytes that
// would be forwarded.
func streamFile(t *testing.T, file string, req *Request, strip Strip) (Result, string, *Stream) {
	t.Helper()
	st := NewStream(req, strip)
	er := NewEventReader(iotest.OneByteReader(bytes.NewReader(readFile(t, file))), 1<<20)
	var fwd strings.Builder
	for {
		ev, err := er.Next()
		if err == io.EOF {
			fwd.Write(er.Rest())
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := st.Event(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		fwd.Write(ev.Raw[:ev.DataStart])
		fwd.Write(out)
		fwd.Write(ev.Raw[ev.DataStart+len(ev.Data):])
	}
	return st.Result(), fwd.String(), st
}

// vllm-wire.md §2.5, chat stream with return_token_ids and a usage chunk.
func TestStreamChat(t *testing.T) {
	req := prepared(t, Chat, "chat_stream.request.json", Options{})
	res, fwd, st := streamFile(t, "chat_stream.sse", &req, Strip{})
	if fwd != string(readFile(t, "chat_stream.sse")) {
		t.Error("stream not forwarded byte for byte")
	}
	if !st.Done() || st.Events() != 5 {
		t.Errorf("done=%v events=%d", st.Done(), st.Events())
	}
	want := Result{
		ResponseID:     "chatcmpl-5d2f8c0e9b7a4e21",
		Model:          "Qwen/Qwen2.5-1.5B-Instruct",
		PromptTokenIDs: []int64{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 45764, 15588, 151645, 198, 151644, 77091, 198},
		Choices:        []Choice{{Index: 0, TokenIDs: []int64{13048, 0, 151645}, FinishReason: "stop", Text: "Hi!"}},
		Usage:          &Usage{PromptTokens: 21, CompletionTokens: 3, TotalTokens: 24},
	}
	want.Prompts = [][]int64{want.PromptTokenIDs}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("got  %+v\nwant %+v", res, want)
	}
	if ok, problem := Check(&req, &res); !ok {
		t.Error(problem)
	}
}

func TestStreamChatStrip(t *testing.T) {
	req := prepared(t, Chat, "chat_stream.request.json", Options{})
	_, fwd, _ := streamFile(t, "chat_stream.sse", &req, Strip{TokenIDs: true})
	want := string(readFile(t, "chat_stream.sse"))
	want = strings.Replace(want, `"prompt_token_ids":[151644,8948,198,2610,525,264,10950,17847,13,151645,198,151644,872,198,45764,15588,151645,198,151644,77091,198]`, `"prompt_token_ids":null`, 1)
	for _, ids := range []string{"[13048]", "[0]", "[151645]"} {
		want = strings.Replace(want, `"token_ids":`+ids, `"token_ids":null`, 1)
	}
	if fwd != want {
		t.Errorf("stripped stream\n got %s\nwant %s", fwd, want)
	}
}

// vllm-wire.md §2.6: two prompts interleaved, prompt IDs on each choice's
// first chunk only, all keys present.
func TestStreamCompletions(t *testing.T) {
	req := prepared(t, Completions, "completions_stream.request.json", Options{})
	res, _, _ := streamFile(t, "completions_stream.sse", &req, Strip{})
	if !reflect.DeepEqual(res.Prompts, [][]int64{{785, 6722, 315, 9625, 374}, {9707}}) {
		t.Errorf("prompts = %v", res.Prompts)
	}
	want := []Choice{
		{Index: 0, PromptIndex: 0, TokenIDs: []int64{12095, 13}, FinishReason: "length", Text: " Paris."},
		{Index: 1, PromptIndex: 1, TokenIDs: []int64{11, 358}, FinishReason: "length", Text: ", I"},
	}
	if !reflect.DeepEqual(res.Choices, want) {
		t.Errorf("choices\n got %+v\nwant %+v", res.Choices, want)
	}
	if ok, problem := Check(&req, &res); !ok {
		t.Error(problem)
	}
}

func TestStreamShapes(t *testing.T) {
	chat := Request{Endpoint: Chat, N: 2, Prompts: 1, TokenIDs: true, Logprobs: true}
	events := []string{
		// n=2: both role chunks repeat the prompt.
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[1,2,3]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[1,2,3]}`,
		// Speculative decoding: several IDs per chunk.
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":"Hé \"x\""},"logprobs":{"content":[{"token":"H","logprob":-0.5,"bytes":[72],"top_logprobs":[]},{"token":"é","logprob":-1e-3,"bytes":[195,169],"top_logprobs":[]}]},"finish_reason":null,"token_ids":[10,11]}]}`,
		// A tool-parser-buffered token: empty delta, IDs kept.
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":{"content":[{"token":"<tool_call>","logprob":-0.25,"bytes":null,"top_logprobs":[]}]},"finish_reason":null,"token_ids":[151657]}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"loc"}}]},"logprobs":{"content":[{"token":"x","logprob":-0.125,"bytes":[120],"top_logprobs":[]}]},"finish_reason":null,"token_ids":[12]}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ation\": 1}"}}]},"logprobs":{"content":[{"token":"<|im_end|>","logprob":-0.0625,"bytes":null,"top_logprobs":[]}]},"finish_reason":"tool_calls","stop_reason":null,"token_ids":[151645]}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":1,"delta":{"content":""},"logprobs":{"content":[{"token":"<|im_end|>","logprob":-0.75,"bytes":null,"top_logprobs":[]}]},"finish_reason":"stop","stop_reason":null,"token_ids":[151645]}],"usage":{"prompt_tokens":3,"total_tokens":9,"completion_tokens":6}}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":9,"completion_tokens":6}}`,
		`[DONE]`,
	}
	st := NewStream(&chat, Strip{})
	for _, ev := range events {
		if _, err := st.Event([]byte(ev)); err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
	}
	res := st.Result()
	want := []Choice{
		{Index: 0, TokenIDs: []int64{151657, 12, 151645}, Logprobs: []float64{-0.25, -0.125, -0.0625}, FinishReason: "tool_calls",
			ToolCalls: []byte(`[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"location\": 1}"}}]`)},
		{Index: 1, TokenIDs: []int64{10, 11, 151645}, Logprobs: []float64{-0.5, -0.001, -0.75}, FinishReason: "stop", Text: "Hé \"x\""},
	}
	if !reflect.DeepEqual(res.Choices, want) {
		t.Errorf("choices\n got %+v\nwant %+v", res.Choices, want)
	}
	if ok, problem := Check(&chat, &res); !ok {
		t.Error(problem)
	}
}

func TestStreamErrorEvent(t *testing.T) {
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	st := NewStream(&req, Strip{})
	for _, ev := range []string{
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[1]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a"},"logprobs":null,"finish_reason":null,"token_ids":[5]}]}`,
		`{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`,
		`[DONE]`,
	} {
		if _, err := st.Event([]byte(ev)); err != nil {
			t.Fatal(err)
		}
	}
	res := st.Result()
	if res.Error == nil || *res.Error != (APIError{"Internal server error", "InternalServerError", 500}) {
		t.Errorf("error = %+v", res.Error)
	}
	if !reflect.DeepEqual(res.Choices[0].TokenIDs, []int64{5}) {
		t.Errorf("tokens so far = %v", res.Choices[0].TokenIDs)
	}
}

func TestStreamBadEventIsForwarded(t *testing.T) {
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	st := NewStream(&req, Strip{TokenIDs: true})
	for _, ev := range []string{`{"choices":[{"token_ids":[1,}]}`, `not json`, `{"a":1} trailing`} {
		out, err := st.Event([]byte(ev))
		if err == nil || string(out) != ev {
			t.Errorf("%s: out=%s err=%v", ev, out, err)
		}
	}
}

func TestCheck(t *testing.T) {
	chat := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	ok := Result{Prompts: [][]int64{{1, 2}}, PromptTokenIDs: []int64{1, 2}, Choices: []Choice{{TokenIDs: []int64{3}}}, Usage: &Usage{PromptTokens: 2, CompletionTokens: 1}}
	tests := []struct {
		name    string
		req     Request
		mutate  func(*Result)
		problem string
	}{
		{"valid", chat, func(*Result) {}, ""},
		{"valid without usage", chat, func(r *Result) { r.Usage = nil }, ""},
		{"prompt length", chat, func(r *Result) { r.Usage = &Usage{PromptTokens: 3, CompletionTokens: 1} }, "prompt_token_ids hold 2 IDs, usage.prompt_tokens is 3"},
		{"completion length", chat, func(r *Result) { r.Usage = &Usage{PromptTokens: 2, CompletionTokens: 2} }, "token_ids hold 1 IDs, usage.completion_tokens is 2"},
		{"missing prompt", chat, func(r *Result) { r.Prompts = nil }, "prompt 0: no prompt_token_ids"},
		{"missing choice ids", chat, func(r *Result) { r.Choices = []Choice{{}} }, "1 of 1 choices have no token_ids"},
		{"too few choices", Request{Endpoint: Chat, N: 2, Prompts: 1, TokenIDs: true}, func(*Result) {}, "1 choices, expected 2"},
		{"logprob count", chat, func(r *Result) { r.Choices = []Choice{{TokenIDs: []int64{3}, Logprobs: []float64{-1, -2}}} }, "choice 0: 2 logprobs for 1 token IDs"},
		{"logprobs missing", Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true, Logprobs: true}, func(*Result) {}, "choice 0: logprobs requested but none returned"},
		{"echo", Request{Endpoint: Completions, N: 1, Prompts: 1, Echo: true}, func(r *Result) { r.Prompts = nil }, "token IDs not requested"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ok
			tt.mutate(&res)
			valid, problem := Check(&tt.req, &res)
			if valid != (tt.problem == "") || !strings.Contains(problem, tt.problem) || (tt.problem == "" && problem != "") {
				t.Errorf("Check = %v %q, want problem %q", valid, problem, tt.problem)
			}
		})
	}
}

// Differential check against encoding/json on the verbatim bodies: every
// token ID the scanner reads is the one encoding/json reads.
func TestParseResponseAgreesWithEncodingJSON(t *testing.T) {
	for _, file := range []string{"chat_logprobs.json", "completions_two_prompts_n2.json", "chat_no_return.json"} {
		body := readFile(t, file)
		ep := Chat
		if strings.HasPrefix(file, "completions") {
			ep = Completions
		}
		req := Request{Endpoint: ep, N: 1, Prompts: 1, TokenIDs: true}
		if ep == Completions {
			req.N, req.Prompts = 2, 2
		}
		res, _, err := ParseResponse(&req, body, Strip{})
		if err != nil {
			t.Fatal(err)
		}
		ref := decodeReference(t, body)
		if !reflect.DeepEqual(res.PromptTokenIDs, ref.prompt) {
			t.Errorf("%s: prompt %v vs %v", file, res.PromptTokenIDs, ref.prompt)
		}
		for i, c := range res.Choices {
			if !reflect.DeepEqual(c.TokenIDs, ref.choices[i]) {
				t.Errorf("%s: choice %d %v vs %v", file, i, c.TokenIDs, ref.choices[i])
			}
		}
	}
}

type reference struct {
	prompt  []int64
	choices [][]int64
}

func decodeReference(t testing.TB, body []byte) reference {
	var v struct {
		PromptTokenIDs []int64 `json:"prompt_token_ids"`
		Choices        []struct {
			TokenIDs       []int64 `json:"token_ids"`
			PromptTokenIDs []int64 `json:"prompt_token_ids"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	r := reference{prompt: v.PromptTokenIDs}
	for _, c := range v.Choices {
		r.choices = append(r.choices, c.TokenIDs)
		if r.prompt == nil {
			r.prompt = c.PromptTokenIDs
		}
	}
	return r
}

// Chunks vLLM sends only because return_token_ids is on are dropped when
// the client did not ask for the IDs.
func TestStreamDropsChunksOnlyThereForIDs(t *testing.T) {
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	swallowed := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":null,"token_ids":[151657]}]}`
	finishing := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":[151645]}]}`
	withUsage := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":null,"token_ids":[7]}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}`

	strip := NewStream(&req, Strip{TokenIDs: true})
	if out, err := strip.Event([]byte(swallowed)); out != nil || err != nil {
		t.Errorf("swallowed chunk forwarded: %s %v", out, err)
	}
	for _, ev := range []string{finishing, withUsage} {
		if out, err := strip.Event([]byte(ev)); out == nil || err != nil {
			t.Errorf("chunk dropped: %s", ev)
		}
	}
	if ids := strip.Result().Choices[0].TokenIDs; !reflect.DeepEqual(ids, []int64{151657, 151645, 7}) {
		t.Errorf("IDs of dropped chunks lost: %v", ids)
	}
	keep := NewStream(&req, Strip{})
	if out, _ := keep.Event([]byte(swallowed)); string(out) != swallowed {
		t.Error("a client that asked for the IDs must get the chunk")
	}
}
