package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// checkError fails unless err is an *Error with a status and a JSON body.
func checkError(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status < 400 || e.Status > 599 || e.Type == "" || e.Message == "" {
		t.Fatalf("error %#v is not a complete *Error", err)
	}
	if !json.Valid(e.Body()) {
		t.Fatalf("error body %q is not JSON", e.Body())
	}
}

// FuzzMessages: any body either translates into a JSON object with the
// model, both max-token fields and messages, or is refused with an *Error;
// count_tokens likewise. Never a panic.
func FuzzMessages(f *testing.F) {
	seeds := []string{
		example17,
		req(`"system":"Top.","stream":true,"tools":[{"name":"a","input_schema":{"properties":{"x":{}}}}],"tool_choice":{"type":"tool","name":"a"},"thinking":{"type":"enabled","budget_tokens":1024},"output_config":{"effort":"low","format":{"schema":{"type":"object"}}}`,
			`[{"role":"user","content":[{"type":"text","text":"A"},{"type":"image","source":{"type":"url","url":"u"}}]},{"role":"system","content":"S"},{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"a","input":{"x":[1.5,"é"]}},{"type":"tool_result","content":[{"a":1}]}]},{"role":"system","content":"S2"},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":[{"type":"text","text":"o"},{"type":"image","source":{}},{"type":"tool_reference","name":"R"}]}]}]`),
		req(`"stop_sequences":["x"],"temperature":1,"top_k":2,"top_p":0.5,"cache_salt":"s","vllm_xargs":{"a":1}`, `[{"role":"user","content":""}]`),
		`{"model":"m","max_tokens":1,"messages":[{"role":"system","content":[{"type":"text","text":"x-anthropic-billing-header: a"}]},{"role":"user","content":[]}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, body []byte, fold bool) {
		tr := Translator{now: fixedClock}
		if fold {
			tr.InlineSystem = InlineFold
		}
		r, err := tr.Messages(body)
		if err != nil {
			checkError(t, err)
		} else {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(r.Chat, &m); err != nil {
				t.Fatalf("chat body is not a JSON object: %v\n%s", err, r.Chat)
			}
			for _, k := range []string{"model", "max_tokens", "max_completion_tokens", "messages"} {
				if m[k] == nil {
					t.Fatalf("chat body has no %s: %s", k, r.Chat)
				}
			}
			if _, ok := m["stream_options"]; ok != r.Stream {
				t.Fatalf("stream %v but stream_options %v", r.Stream, ok)
			}
		}
		tok, err := tr.CountTokens(body)
		if err != nil {
			checkError(t, err)
		} else if !json.Valid(tok) {
			t.Fatalf("tokenize body is not JSON: %s", tok)
		}
	})
}

// FuzzAnswer: any chat answer gives a JSON Message or an *Error.
func FuzzAnswer(f *testing.F) {
	weather := `[{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\", \"n\": [1.5e3, -0]}"}}]`
	f.Add([]byte(chatAnswer(msg(`"Checking."`, `"Need the weather."`, weather), `"tool_calls"`, `null`, usage1240)))
	f.Add([]byte(chatAnswer(msg(`null`, `null`, `[]`), `"stop"`, `"</s>"`, `{"prompt_tokens":100,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":80}}`)))
	f.Fuzz(func(t *testing.T, chat []byte) {
		out, err := testRequest().Answer(chat)
		if err != nil {
			checkError(t, err)
			return
		}
		var m struct {
			Type    string            `json:"type"`
			Content []json.RawMessage `json:"content"`
		}
		if err := json.Unmarshal(out, &m); err != nil || m.Type != "message" || len(m.Content) == 0 {
			t.Fatalf("answer %s: %v", out, err)
		}
	})
}

// streamSeeds are chat streams, one event's data per line.
func streamSeeds() []string {
	return []string{
		strings.Join([]string{roleChunk(12), deltaChunk(reasoning("Need the weather.")), deltaChunk(text("Checking.")),
			deltaChunk(tcDelta(`{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","index":0,"function":{"name":"get_weather"}}`)),
			deltaChunk(tcDelta(tcArgs(0, `{"city": "Paris"}`))), finishChunk(text(""), `"tool_calls"`, `null`), usageChunk(usage1240Chunk), "[DONE]"}, "\n"),
		strings.Join([]string{roleChunk(12), deltaChunk(tcDelta(tcOpen(0, "t0", "A", `{"a":`))), deltaChunk(tcDelta(tcOpen(1, "t1", "B", `{"b":`))),
			deltaChunk(tcDelta(tcArgs(0, ` 1`), tcArgs(1, ` 2}`))), deltaChunk(`{"content":"x","tool_calls":[` + tcArgs(0, `}`) + `]}`),
			finishChunk(text(""), `"stop"`, `"</s>"`), usageChunk(`{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":2,"created_cache_tokens":1}}`)}, "\n"),
		strings.Join([]string{roleChunk(1), deltaChunk(text("a")), `{"error":{"message":"boom","code":503}}`}, "\n"),
		strings.Join([]string{"data: " + roleChunk(1), ": keep-alive", deltaChunk(`{"reasoning_content":"r","content":"\u00e9\n"}`), "[DONE]"}, "\n"),
	}
}

// FuzzStream: any sequence of events (one per line of the input) gives a
// well-formed Anthropic stream that, after AppendEnd, has ended with
// message_stop or an error. Never a panic.
func FuzzStream(f *testing.F) {
	for _, s := range streamSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := testRequest().NewStream()
		var out []byte
		for _, ev := range bytes.Split(in, []byte("\n")) {
			out = s.AppendEvent(out, ev)
		}
		out = s.AppendEnd(out)
		if !s.Done() {
			t.Fatal("not Done after AppendEnd")
		}
		got := string(out)
		if msg := checkSSE(got); msg != "" {
			t.Fatalf("%s\ninput %q\noutput %q", msg, in, got)
		}
		events := strings.Split(strings.TrimSuffix(got, "\n\n"), "\n\n")
		if last := events[len(events)-1]; !strings.HasPrefix(last, "event: message_stop\n") && !strings.HasPrefix(last, "event: error\n") {
			t.Fatalf("stream does not end with message_stop or error: %q", got)
		}
		if got != "" && !strings.HasPrefix(got, "event: message_start\n") && !strings.HasPrefix(got, "event: error\n") {
			t.Fatalf("stream does not start with message_start: %q", got)
		}
	})
}
