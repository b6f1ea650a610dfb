package tokenids

import (
	"reflect"
	"testing"
)

// A traced stream gets its usage chunk, so that its IDs are checked against
// vLLM's accounting, unless vLLM would send it anyway or the client's
// stream_options are vLLM's to judge.
func TestPrepareRequestTurnsOnUsage(t *testing.T) {
	const ids = `,"return_token_ids":true`
	tests := []struct {
		name       string
		body, want string // want "" means: unchanged
		injected   bool   // tokentap asked for the usage chunk: it is dropped
		usage      bool   // vLLM will send one
	}{
		{"absent", `{"stream":true` + ids + `}`, `{"stream":true` + ids + `,"stream_options":{"include_usage":true}}`, true, true},
		{"absent, with return_token_ids injected too", `{"stream":true}`, `{"stream":true,"return_token_ids":true,"stream_options":{"include_usage":true}}`, true, true},
		{"empty object defaults to true", `{"stream":true,"stream_options":{}` + ids + `}`, "", false, true},
		{"asked", `{"stream":true,"stream_options":{"include_usage":true}` + ids + `}`, "", false, true},
		{"asked with 1", `{"stream":true,"stream_options":{"include_usage":1}` + ids + `}`, "", false, true},
		{"asked, continuous", `{"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}` + ids + `}`, "", false, true},
		{"false", `{"stream":true,"stream_options":{"include_usage":false}` + ids + `}`, `{"stream":true,"stream_options":{"include_usage":true}` + ids + `}`, true, true},
		{"zero", `{"stream":true,"stream_options":{"include_usage":0}` + ids + `}`, `{"stream":true,"stream_options":{"include_usage":true}` + ids + `}`, true, true},
		{"null member", `{"stream":true,"stream_options": { "include_usage" : null }` + ids + `}`, `{"stream":true,"stream_options": { "include_usage" : true }` + ids + `}`, true, true},
		{"null object", `{"stream":true,"stream_options":null` + ids + `}`, `{"stream":true,"stream_options":{"include_usage":true}` + ids + `}`, true, true},
		{"continuous without usage is turned off with it",
			`{"stream":true,"stream_options":{"continuous_usage_stats":true,"include_usage":false}` + ids + `}`,
			`{"stream":true,"stream_options":{"continuous_usage_stats":false,"include_usage":true}` + ids + `}`, true, true},
		{"duplicate include_usage: the last counts, all are fixed",
			`{"stream":true,"stream_options":{"include_usage":true,"include_usage":false}` + ids + `}`,
			`{"stream":true,"stream_options":{"include_usage":true,"include_usage":true}` + ids + `}`, true, true},
		{"duplicate stream_options: the last counts",
			`{"stream":true,"stream_options":{"include_usage":true},"stream_options":null` + ids + `}`,
			`{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}` + ids + `}`, true, true},
		{"not an object: vLLM answers 400", `{"stream":true,"stream_options":"yes"` + ids + `}`, "", false, false},
		{"an array: vLLM answers 400", `{"stream":true,"stream_options":[]` + ids + `}`, "", false, false},
		{"a string include_usage: vLLM reads it", `{"stream":true,"stream_options":{"include_usage":"false"}` + ids + `}`, "", false, false},
		{"not streaming: stream_options would be a 400", `{"messages":[]` + ids + `}`, "", false, false},
		{"not streaming, false kept", `{"stream":false,"stream_options":{"include_usage":false}` + ids + `}`, "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, req, err := PrepareRequest(Chat, []byte(tt.body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.body
			}
			if string(out) != want {
				t.Errorf("body\n got %s\nwant %s", out, want)
			}
			if got := req.Strip().Usage; got != tt.injected {
				t.Errorf("Strip().Usage = %v, want %v", got, tt.injected)
			}
			if req.IncludeUsage != tt.usage || req.ClientUsage != (tt.usage && !tt.injected) {
				t.Errorf("IncludeUsage=%v ClientUsage=%v, want %v %v", req.IncludeUsage, req.ClientUsage, tt.usage, tt.usage && !tt.injected)
			}
		})
	}
}

// A stream whose client did not ask for usage is checked against it, and
// the client does not get the usage chunk vLLM sent only for tokentap; a
// client that asked gets it.
func TestStreamUsageChunk(t *testing.T) {
	events := []string{
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[1,2,3]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null,"token_ids":[7]}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":""},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":[151645]}]}`,
		`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}`,
		`[DONE]`,
	}
	usageChunk := events[3]
	for _, tt := range []struct {
		name      string
		body      string
		forwarded bool
	}{
		{"client did not ask", `{"messages":[],"stream":true,"return_token_ids":true}`, false},
		{"client said false", `{"messages":[],"stream":true,"stream_options":{"include_usage":false},"return_token_ids":true}`, false},
		{"client asked", `{"messages":[],"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, req, err := PrepareRequest(Chat, []byte(tt.body), Options{})
			if err != nil {
				t.Fatal(err)
			}
			st := NewStream(&req, req.Strip())
			var got []string
			for _, ev := range events {
				out, err := st.Event([]byte(ev))
				if err != nil {
					t.Fatal(err)
				}
				if out != nil {
					got = append(got, string(out))
				}
			}
			want := events
			if !tt.forwarded {
				want = append(append([]string(nil), events[:3]...), events[4])
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("client got\n%v\nwant\n%v (usage chunk %s)", got, want, usageChunk)
			}
			res := st.Result()
			if res.Usage == nil || *res.Usage != (Usage{PromptTokens: 3, CompletionTokens: 2, TotalTokens: 5}) {
				t.Errorf("usage not recorded: %+v", res.Usage)
			}
			v := Verify(&req, &res)
			if !v.Valid || !reflect.DeepEqual(v.Checks, []string{CheckIDsPresent, CheckChoiceCount, CheckPromptCount, CheckCompletionCount}) {
				t.Errorf("verdict %+v", v)
			}
			// The counts are really compared: one ID too many fails.
			res.Choices[0].TokenIDs = append(res.Choices[0].TokenIDs, 9)
			if v := Verify(&req, &res); v.Valid {
				t.Error("a count that disagrees with usage passed")
			}
		})
	}
}

func TestVerifyChecks(t *testing.T) {
	chat := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
	withLP := chat
	withLP.Logprobs = true
	good := func() Result {
		return Result{Prompts: [][]int64{{1, 2}}, PromptTokenIDs: []int64{1, 2}, Choices: []Choice{{TokenIDs: []int64{3}}}, Usage: &Usage{PromptTokens: 2, CompletionTokens: 1}}
	}
	all := []string{CheckIDsPresent, CheckChoiceCount, CheckPromptCount, CheckCompletionCount}
	tests := []struct {
		name   string
		req    Request
		mutate func(*Result)
		valid  bool
		checks []string
	}{
		{"against usage", chat, func(*Result) {}, true, all},
		{"no usage: counts unchecked", chat, func(r *Result) { r.Usage = nil }, true, []string{CheckIDsPresent, CheckChoiceCount}},
		{"logprobs", withLP, func(r *Result) { r.Choices[0].Logprobs = []float64{-1} }, true,
			[]string{CheckIDsPresent, CheckChoiceCount, CheckLogprobCount, CheckPromptCount, CheckCompletionCount}},
		{"an earlier failure skips the counts", chat, func(r *Result) { r.Prompts = nil }, false, []string{CheckIDsPresent, CheckChoiceCount}},
		{"count mismatch", chat, func(r *Result) { r.Usage.CompletionTokens = 5 }, false, all},
		{"echo: IDs not requested", Request{Endpoint: Completions, N: 1, Prompts: 1, Echo: true}, func(r *Result) { r.Prompts = nil }, false, []string{CheckChoiceCount}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := good()
			tt.mutate(&res)
			v := Verify(&tt.req, &res)
			if v.Valid != tt.valid || !reflect.DeepEqual(v.Checks, tt.checks) {
				t.Errorf("Verify = %+v, want valid=%v checks %v", v, tt.valid, tt.checks)
			}
			if valid, problem := Check(&tt.req, &res); valid != v.Valid || problem != v.Problem {
				t.Errorf("Check = %v %q, Verify = %+v", valid, problem, v)
			}
		})
	}
}
