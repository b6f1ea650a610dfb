package vllmsim

import (
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	chatPath  = "/v1/chat/completions"
	sayHi     = `"messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Say hi"}]`
	eventType = "text/event-stream; charset=utf-8"
)

func TestChatKeyOrder(t *testing.T) {
	s := newSim(Options{})
	r := post(t, s, chatPath, `{"model":"`+testModel+`",`+sayHi+`,"logprobs":true,"top_logprobs":2,"return_token_ids":true}`)
	mustOK(t, r, "application/json")
	n := parseNode(t, r.body)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"", []string{"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage", "prompt_logprobs", "prompt_token_ids", "kv_transfer_params"}},
		{"choices.0", []string{"index", "message", "logprobs", "finish_reason", "stop_reason", "token_ids"}},
		{"choices.0.message", []string{"role", "content", "refusal", "annotations", "audio", "function_call", "tool_calls", "reasoning"}},
		{"choices.0.logprobs", []string{"content"}},
		{"choices.0.logprobs.content.0", []string{"token", "logprob", "bytes", "top_logprobs"}},
		{"choices.0.logprobs.content.0.top_logprobs.0", []string{"token", "logprob", "bytes"}},
		{"usage", []string{"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}},
	} {
		if got := keysAt(t, n, tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("keys of %q = %v, want %v", tc.path, got, tc.want)
		}
	}
	if n.s(t, "object") != "chat.completion" || n.s(t, "model") != testModel || n.i(t, "created") != fixedTime.Unix() {
		t.Errorf("header fields: %s", r.body)
	}
	if got := n.length(t, "choices.0.message.tool_calls"); got != 0 {
		t.Errorf("tool_calls has %d entries, want []", got)
	}
	for _, p := range []string{"service_tier", "system_fingerprint", "prompt_logprobs", "kv_transfer_params", "usage.prompt_tokens_details", "choices.0.message.refusal", "choices.0.message.reasoning"} {
		if !n.isNull(p) {
			t.Errorf("%s is not null", p)
		}
	}
	// Compact JSON: no space after separators anywhere outside strings.
	if strings.Contains(string(r.body), `": `) || strings.Contains(string(r.body), `, "`) {
		t.Errorf("body is not compact: %s", r.body)
	}
}

func TestChatStreamKeyOrder(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy})
	r := post(t, s, chatPath, `{`+sayHi+`,"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true,"logprobs":true}`)
	mustOK(t, r, eventType)
	cs := chunks(t, r.body)
	if len(cs) != 5 {
		t.Fatalf("%d chunks, want role + 3 tokens + usage", len(cs))
	}
	for i, tc := range []struct {
		top, choice, delta []string
	}{
		{[]string{"id", "object", "created", "model", "choices", "prompt_token_ids"}, []string{"index", "delta", "logprobs", "finish_reason"}, []string{"role", "content"}},
		{[]string{"id", "object", "created", "model", "choices"}, []string{"index", "delta", "logprobs", "finish_reason", "token_ids"}, []string{"content"}},
		{[]string{"id", "object", "created", "model", "choices"}, []string{"index", "delta", "logprobs", "finish_reason", "token_ids"}, []string{"content"}},
		{[]string{"id", "object", "created", "model", "choices"}, []string{"index", "delta", "logprobs", "finish_reason", "stop_reason", "token_ids"}, []string{"content"}},
	} {
		c := cs[i]
		if got := keysAt(t, c, ""); !slices.Equal(got, tc.top) {
			t.Errorf("chunk %d keys %v, want %v", i, got, tc.top)
		}
		if got := keysAt(t, c, "choices.0"); !slices.Equal(got, tc.choice) {
			t.Errorf("chunk %d choice keys %v, want %v", i, got, tc.choice)
		}
		if got := keysAt(t, c, "choices.0.delta"); !slices.Equal(got, tc.delta) {
			t.Errorf("chunk %d delta keys %v, want %v", i, got, tc.delta)
		}
		if c.s(t, "id") != cs[0].s(t, "id") || c.i(t, "created") != cs[0].i(t, "created") {
			t.Errorf("chunk %d changes id or created", i)
		}
	}
	if got := keysAt(t, cs[4], ""); !slices.Equal(got, []string{"id", "object", "created", "model", "choices", "usage"}) {
		t.Errorf("usage chunk keys %v", got)
	}
	if got := keysAt(t, cs[4], "usage"); !slices.Equal(got, []string{"prompt_tokens", "total_tokens", "completion_tokens"}) {
		t.Errorf("usage chunk usage keys %v (prompt_tokens_details must be excluded)", got)
	}
	if cs[4].length(t, "choices") != 0 {
		t.Errorf("usage chunk choices not []")
	}
	last := cs[3]
	if last.s(t, "choices.0.delta.content") != "" || last.s(t, "choices.0.finish_reason") != "stop" || !last.isNull("choices.0.stop_reason") {
		t.Errorf("finish chunk: %s", shape(last))
	}
	if got := last.ids(t, "choices.0.token_ids"); !slices.Equal(got, []int64{tokImEnd}) {
		t.Errorf("finish chunk token_ids %v, want [%d]", got, tokImEnd)
	}
	if last.s(t, "choices.0.logprobs.content.0.token") != "<|im_end|>" {
		t.Errorf("EOS logprob token %q", last.s(t, "choices.0.logprobs.content.0.token"))
	}
}

// TestChatNullVsAbsent pins which ID keys exist, and when they are null,
// with and without return_token_ids, and on a pre-0.10.2 server.
func TestChatNullVsAbsent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		extra      string
		wantKeys   bool // prompt_token_ids / token_ids keys present
		wantValues bool // ... and lists rather than null
	}{
		{"requested", Options{}, `,"return_token_ids":true`, true, true},
		{"false", Options{}, `,"return_token_ids":false`, true, false},
		{"absent", Options{}, ``, true, false},
		{"null", Options{}, `,"return_token_ids":null`, true, false},
		{"old vLLM", Options{NoTokenIDs: true}, `,"return_token_ids":true`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.opts)
			n := parseNode(t, post(t, s, chatPath, `{`+sayHi+tc.extra+`}`).body)
			for _, p := range []string{"prompt_token_ids", "choices.0.token_ids"} {
				v := n.at(p)
				switch {
				case !tc.wantKeys && v != nil:
					t.Errorf("non-stream %s present", p)
				case tc.wantKeys && v == nil:
					t.Errorf("non-stream %s absent", p)
				case tc.wantKeys && (v.kind == 'a') != tc.wantValues:
					t.Errorf("non-stream %s kind %c", p, v.kind)
				}
			}
			cs := chunks(t, post(t, s, chatPath, `{`+sayHi+`,"stream":true`+tc.extra+`}`).body)
			role := cs[0]
			if role.has("choices.0.token_ids") {
				t.Errorf("role chunk has token_ids")
			}
			if v := role.at("prompt_token_ids"); (v != nil) != tc.wantKeys || (v != nil && (v.kind == 'a') != tc.wantValues) {
				t.Errorf("role chunk prompt_token_ids = %v", v)
			}
			for i, c := range cs[1:] {
				if c.has("prompt_token_ids") {
					t.Errorf("chunk %d has a prompt_token_ids key", i+1)
				}
				v := c.at("choices.0.token_ids")
				if (v != nil) != tc.wantKeys || (v != nil && (v.kind == 'a') != tc.wantValues) {
					t.Errorf("chunk %d token_ids = %v", i+1, v)
				}
			}
		})
	}
}

// chatResult is a non-stream chat answer and the same request streamed.
type chatResult struct {
	body   *node
	stream []*node
}

func chatBoth(t *testing.T, s *Server, fields string) chatResult {
	t.Helper()
	r := post(t, s, chatPath, `{`+fields+`}`, "X-Request-Id", "both")
	mustOK(t, r, "application/json")
	rs := post(t, s, chatPath, `{`+fields+`,"stream":true,"stream_options":{"include_usage":true}}`, "X-Request-Id", "both")
	mustOK(t, rs, eventType)
	return chatResult{parseNode(t, r.body), chunks(t, rs.body)}
}

// TestChatInvariants checks the properties the proxy relies on, for a range
// of request kinds, in non-stream and stream form.
func TestChatInvariants(t *testing.T) {
	weatherTool := `"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}]`
	for _, tc := range []struct {
		name   string
		opts   Options
		fields string
	}{
		{"plain", Options{}, sayHi},
		{"n=3", Options{}, sayHi + `,"n":3,"seed":7`},
		{"logprobs", Options{}, sayHi + `,"logprobs":true,"top_logprobs":3`},
		{"max_tokens", Options{}, sayHi + `,"max_tokens":3,"logprobs":true`},
		{"stop", Options{Policy: func([]Message, int) string { return "Let me look. <search>cats</search> then more" }}, sayHi + `,"stop":["</search>"]`},
		{"tool call", Options{}, `"messages":[{"role":"user","content":"What's the weather like in Paris?"}],` + weatherTool + `,"logprobs":true`},
		{"emoji", Options{Policy: func([]Message, int) string { return "I love cats 🐱 ✨" }}, `"messages":[{"role":"user","content":"Repeat after me: I love cats 🐱"}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.opts)
			res := chatBoth(t, s, tc.fields+`,"return_token_ids":true`)
			n := res.body
			prompt := n.ids(t, "prompt_token_ids")
			if int64(len(prompt)) != n.i(t, "usage.prompt_tokens") {
				t.Errorf("len(prompt_token_ids)=%d, usage.prompt_tokens=%d", len(prompt), n.i(t, "usage.prompt_tokens"))
			}
			total := 0
			for i := 0; i < n.length(t, "choices"); i++ {
				p := "choices." + strconv.Itoa(i)
				ids := n.ids(t, p+".token_ids")
				total += len(ids)
				if n.i(t, p+".index") != int64(i) {
					t.Errorf("choice %d has index %d", i, n.i(t, p+".index"))
				}
				if n.has(p + ".logprobs.content") {
					if got := n.length(t, p+".logprobs.content"); got != len(ids) {
						t.Errorf("choice %d: %d logprob entries for %d tokens", i, got, len(ids))
					}
				}
				if n.s(t, p+".finish_reason") == "stop" && n.isNull(p+".stop_reason") {
					if ids[len(ids)-1] != tokImEnd {
						t.Errorf("choice %d stops without EOS: %v", i, ids)
					}
					if c := n.at(p + ".message.content"); c.kind == 's' && s.Detokenize(ids) != c.str+"<|im_end|>" {
						t.Errorf("decode(token_ids)=%q, content=%q", s.Detokenize(ids), c.str)
					}
				}
				// Streaming yields the same IDs and the same text.
				if got := streamIDs(t, res.stream, int64(i)); !slices.Equal(got, ids) {
					t.Errorf("choice %d: stream IDs %v, non-stream %v", i, got, ids)
				}
				var text strings.Builder
				for _, c := range res.stream {
					if c.length(t, "choices") > 0 && c.i(t, "choices.0.index") == int64(i) {
						if v := c.at("choices.0.delta.content"); v != nil && v.kind == 's' {
							text.WriteString(v.str)
						}
					}
				}
				if c := n.at(p + ".message.content"); c.kind == 's' && text.String() != c.str {
					t.Errorf("stream text %q, non-stream %q", text.String(), c.str)
				}
			}
			if int64(total) != n.i(t, "usage.completion_tokens") {
				t.Errorf("sum of token_ids %d, usage.completion_tokens %d", total, n.i(t, "usage.completion_tokens"))
			}
			if n.i(t, "usage.total_tokens") != n.i(t, "usage.prompt_tokens")+n.i(t, "usage.completion_tokens") {
				t.Errorf("total_tokens is not the sum")
			}
			usage := res.stream[len(res.stream)-1]
			if usage.i(t, "usage.prompt_tokens") != int64(len(prompt)) || usage.i(t, "usage.completion_tokens") != int64(total) {
				t.Errorf("stream usage %d/%d", usage.i(t, "usage.prompt_tokens"), usage.i(t, "usage.completion_tokens"))
			}
			// Every role chunk repeats the full prompt IDs.
			for i := 0; i < n.length(t, "choices"); i++ {
				if got := res.stream[i].ids(t, "prompt_token_ids"); !slices.Equal(got, prompt) {
					t.Errorf("role chunk %d prompt_token_ids differ", i)
				}
			}
		})
	}
}

func TestChatPromptIsTemplate(t *testing.T) {
	s := newSim(Options{})
	n := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":[{"type":"text","text":"Repeat after me:"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"I love cats 🐱"}]}],"return_token_ids":true}`).body)
	got := s.Detokenize(n.ids(t, "prompt_token_ids"))
	want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nRepeat after me:\nI love cats 🐱<|im_end|>\n<|im_start|>assistant\n"
	if got != want {
		t.Fatalf("decoded prompt %q, want %q", got, want)
	}
	if got := s.RenderChat([]Message{{Role: "user", Content: "Repeat after me:\nI love cats 🐱"}}, true); got != want {
		t.Fatalf("RenderChat %q", got)
	}
	if ids := n.ids(t, "prompt_token_ids"); ids[0] != tokImStart || ids[len(ids)-3] != tokImStart {
		t.Errorf("special tokens not atomic: %v", ids)
	}
}

func TestChatN(t *testing.T) {
	s := newSim(Options{})
	res := chatBoth(t, s, sayHi+`,"n":2,"return_token_ids":true`)
	n := res.body
	a, b := n.ids(t, "choices.0.token_ids"), n.ids(t, "choices.1.token_ids")
	if slices.Equal(a, b) {
		t.Errorf("the two samples are identical")
	}
	// Stream: two role chunks first, then token chunks interleaved.
	if res.stream[0].i(t, "choices.0.index") != 0 || res.stream[1].i(t, "choices.0.index") != 1 {
		t.Fatalf("role chunks not for index 0 then 1")
	}
	if res.stream[2].i(t, "choices.0.index") != 0 || res.stream[3].i(t, "choices.0.index") != 1 {
		t.Errorf("token chunks do not interleave")
	}
}

func TestChatDeterminism(t *testing.T) {
	s := newSim(Options{})
	body := `{` + sayHi + `,"return_token_ids":true}`
	r1 := post(t, s, chatPath, body, "X-Request-Id", "x")
	r2 := post(t, newSim(Options{}), chatPath, body, "X-Request-Id", "x")
	if string(r1.body) != string(r2.body) {
		t.Fatalf("same request, different answers:\n%s\n%s", r1.body, r2.body)
	}
	r3 := post(t, s, chatPath, `{`+sayHi+`,"return_token_ids":true,"seed":42}`, "X-Request-Id", "x")
	if string(r1.body) == string(r3.body) {
		t.Errorf("seed does not change the output")
	}
	n := parseNode(t, r1.body)
	if l := n.length(t, "choices.0.token_ids"); l < 6 || l > 41 {
		t.Errorf("natural length %d outside 5..40 (+EOS)", l)
	}
}

func TestChatStopString(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "Let me look. <search>cats</search> then more" }})
	res := chatBoth(t, s, sayHi+`,"stop":["</search>","never"],"return_token_ids":true`)
	n := res.body
	if got := n.s(t, "choices.0.message.content"); got != "Let me look. <search>cats" {
		t.Errorf("content %q", got)
	}
	if n.s(t, "choices.0.finish_reason") != "stop" || n.s(t, "choices.0.stop_reason") != "</search>" {
		t.Errorf("finish %s / %s", n.s(t, "choices.0.finish_reason"), n.s(t, "choices.0.stop_reason"))
	}
	ids := n.ids(t, "choices.0.token_ids")
	if got := s.Detokenize(ids); got != "Let me look. <search>cats</search>" {
		t.Errorf("tokens decode to %q: they must end with the token completing the stop string", got)
	}
	// While a stop string could still match, vLLM's detokenizer withholds
	// its length minus one characters (8 here), so deltas lag the tokens and
	// the stop text itself is never sent.
	var deltas []string
	for _, c := range res.stream[1 : len(res.stream)-1] {
		deltas = append(deltas, c.s(t, "choices.0.delta.content"))
	}
	want := []string{"", "", "Let", " ", "me", " look.", " ", "<sea", "r", "c", "h>cats", ""}
	if !slices.Equal(deltas, want) {
		t.Errorf("deltas %q, want %q", deltas, want)
	}
	last := res.stream[len(res.stream)-2]
	if last.s(t, "choices.0.finish_reason") != "stop" || last.s(t, "choices.0.stop_reason") != "</search>" {
		t.Errorf("finish chunk %s", r(last.at("choices.0")))
	}
}

// TestChatOtherEOS: Qwen also stops on <|endoftext|>; that token is not the
// tokenizer's EOS, so it is reported as a stop token ID.
func TestChatOtherEOS(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "Done<|endoftext|>ignored" }})
	res := chatBoth(t, s, sayHi+`,"return_token_ids":true`)
	n := res.body
	if n.s(t, "choices.0.message.content") != "Done" || n.i(t, "choices.0.stop_reason") != tokEndOfText {
		t.Errorf("got %s", r(n.at("choices.0")))
	}
	last := res.stream[len(res.stream)-2]
	if last.i(t, "choices.0.stop_reason") != tokEndOfText || last.s(t, "choices.0.finish_reason") != "stop" {
		t.Errorf("finish chunk %s", r(last.at("choices.0")))
	}
}

func TestChatMaxTokens(t *testing.T) {
	s := newSim(Options{})
	for _, field := range []string{`"max_tokens":3`, `"max_completion_tokens":3`, `"max_tokens":100,"max_completion_tokens":3`} {
		n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,`+field+`,"return_token_ids":true}`).body)
		ids := n.ids(t, "choices.0.token_ids")
		if len(ids) != 3 || slices.Contains(ids, tokImEnd) {
			t.Errorf("%s: token_ids %v", field, ids)
		}
		if n.s(t, "choices.0.finish_reason") != "length" || !n.isNull("choices.0.stop_reason") {
			t.Errorf("%s: finish %s", field, n.s(t, "choices.0.finish_reason"))
		}
		if s.Detokenize(ids) != n.s(t, "choices.0.message.content") {
			t.Errorf("%s: content is not the decoded tokens", field)
		}
	}
}

func TestChatIgnoreEOSAndMinTokens(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy})
	n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"max_tokens":30,"ignore_eos":true,"return_token_ids":true}`).body)
	if ids := n.ids(t, "choices.0.token_ids"); len(ids) != 30 || slices.Contains(ids, tokImEnd) {
		t.Errorf("ignore_eos: %d tokens", len(ids))
	}
	n = parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"min_tokens":10,"return_token_ids":true}`).body)
	if ids := n.ids(t, "choices.0.token_ids"); len(ids) != 11 || ids[10] != tokImEnd {
		t.Errorf("min_tokens: %v", ids)
	}
}

func TestChatStopTokenIDs(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "one two three four" }})
	stopID := s.Tokenize(" three")[0]
	n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"stop_token_ids":[`+strconv.FormatInt(stopID, 10)+`],"return_token_ids":true}`).body)
	if n.s(t, "choices.0.message.content") != "one two" || n.i(t, "choices.0.stop_reason") != stopID {
		t.Errorf("content %q stop_reason %v", n.s(t, "choices.0.message.content"), shape(n.at("choices.0.stop_reason")))
	}
	if ids := n.ids(t, "choices.0.token_ids"); ids[len(ids)-1] != stopID {
		t.Errorf("token_ids do not end with the stop token: %v", ids)
	}
}

var toolIDRe = regexp.MustCompile(`^chatcmpl-tool-[0-9a-f]{16}$`)

func TestChatToolCall(t *testing.T) {
	tools := `"tools":[{"type":"function","function":{"name":"get_weather","description":"Get the weather","parameters":{"type":"object","properties":{"location":{"type":"string"}},"required":["location"]}}}]`
	msgs := `"messages":[{"role":"user","content":"What's the weather like in Paris?"}]`
	s := newSim(Options{})

	t.Run("non-stream", func(t *testing.T) {
		n := parseNode(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"tool_choice":"auto","logprobs":true,"return_token_ids":true}`).body)
		if !n.isNull("choices.0.message.content") {
			t.Errorf("content is not null")
		}
		if n.s(t, "choices.0.finish_reason") != "tool_calls" {
			t.Errorf("finish_reason %s", n.s(t, "choices.0.finish_reason"))
		}
		if got := keysAt(t, n, "choices.0.message.tool_calls.0"); !slices.Equal(got, []string{"id", "type", "function"}) {
			t.Errorf("tool call keys %v", got)
		}
		if id := n.s(t, "choices.0.message.tool_calls.0.id"); !toolIDRe.MatchString(id) {
			t.Errorf("tool call id %q", id)
		}
		if n.s(t, "choices.0.message.tool_calls.0.function.name") != "get_weather" ||
			n.s(t, "choices.0.message.tool_calls.0.function.arguments") != `{"location": "Paris"}` {
			t.Errorf("function %s", shape(n.at("choices.0.message.tool_calls.0")))
		}
		ids := n.ids(t, "choices.0.token_ids")
		dec := s.Detokenize(ids)
		if !strings.HasPrefix(dec, "<tool_call>\n{\"name\": \"get_weather\"") || !strings.HasSuffix(dec, "</tool_call><|im_end|>") {
			t.Errorf("decoded output %q", dec)
		}
		if ids[0] != tokToolCallStart || !slices.Contains(ids, tokToolCallEnd) {
			t.Errorf("tool tokens missing: %v", ids)
		}
		prompt := s.Detokenize(n.ids(t, "prompt_token_ids"))
		if !strings.HasPrefix(prompt, "<|im_start|>system\nYou are a helpful assistant.") ||
			!strings.HasSuffix(prompt, "What's the weather like in Paris?<|im_end|>\n<|im_start|>assistant\n") ||
			!strings.Contains(prompt, `"name": "get_weather"`) {
			t.Errorf("prompt %q", prompt)
		}
		if n.length(t, "choices.0.logprobs.content") != len(ids) {
			t.Errorf("logprobs do not cover the tool tokens")
		}
	})

	t.Run("stream with token IDs", func(t *testing.T) {
		nonStream := parseNode(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"return_token_ids":true}`, "X-Request-Id", "t1").body)
		cs := chunks(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"return_token_ids":true,"stream":true}`, "X-Request-Id", "t1").body)
		want := nonStream.ids(t, "choices.0.token_ids")
		if got := streamIDs(t, cs, 0); !slices.Equal(got, want) {
			t.Fatalf("stream IDs %v, want %v", got, want)
		}
		if len(cs) != 1+len(want) {
			t.Fatalf("%d chunks for %d tokens", len(cs), len(want))
		}
		for _, c := range cs[1 : len(cs)-1] {
			if got := keysAt(t, c, "choices.0.delta"); len(got) != 0 {
				t.Errorf("swallowed token chunk has delta keys %v", got)
			}
		}
		last := cs[len(cs)-1]
		if last.s(t, "choices.0.finish_reason") != "tool_calls" {
			t.Errorf("finish_reason %s", last.s(t, "choices.0.finish_reason"))
		}
		if got := keysAt(t, last, "choices.0.delta.tool_calls.0"); !slices.Equal(got, []string{"id", "type", "index", "function"}) {
			t.Errorf("delta tool call keys %v", got)
		}
		if last.s(t, "choices.0.delta.tool_calls.0.id") != nonStream.s(t, "choices.0.message.tool_calls.0.id") ||
			last.s(t, "choices.0.delta.tool_calls.0.function.arguments") != `{"location": "Paris"}` {
			t.Errorf("tool call delta %s", shape(last.at("choices.0.delta")))
		}
	})

	t.Run("stream with logprobs only", func(t *testing.T) {
		// Logprobs also keep swallowed tokens' chunks (with "delta":{}).
		cs := chunks(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"stream":true,"logprobs":true}`).body)
		total := 0
		for _, c := range cs[1:] {
			total += c.length(t, "choices.0.logprobs.content")
			if !c.isNull("choices.0.token_ids") {
				t.Errorf("token_ids not null")
			}
		}
		n := parseNode(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"return_token_ids":true}`).body)
		if want := n.length(t, "choices.0.token_ids"); len(cs) != 1+want || total != want {
			t.Errorf("%d chunks, %d logprob entries for %d tokens", len(cs), total, want)
		}
	})

	t.Run("stream without token IDs", func(t *testing.T) {
		cs := chunks(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"stream":true}`).body)
		// Swallowed tokens are not sent: role chunk, then the finish chunk.
		if len(cs) != 2 || cs[1].s(t, "choices.0.finish_reason") != "tool_calls" {
			t.Fatalf("%d chunks", len(cs))
		}
	})

	t.Run("tool_choice none", func(t *testing.T) {
		n := parseNode(t, post(t, s, chatPath, `{`+msgs+`,`+tools+`,"tool_choice":"none"}`).body)
		if n.length(t, "choices.0.message.tool_calls") != 0 || n.s(t, "choices.0.finish_reason") != "stop" {
			t.Errorf("tool call despite tool_choice none")
		}
	})

	t.Run("no weather", func(t *testing.T) {
		n := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"Tell me a story"}],`+tools+`}`).body)
		if n.length(t, "choices.0.message.tool_calls") != 0 || n.at("choices.0.message.content").kind != 's' {
			t.Errorf("unexpected tool call")
		}
	})

	t.Run("required and named", func(t *testing.T) {
		n := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"Tell me a story"}],`+tools+`,"tool_choice":"required"}`).body)
		if n.s(t, "choices.0.finish_reason") != "tool_calls" || n.s(t, "choices.0.message.content") != "" || n.length(t, "choices.0.message.tool_calls") != 1 {
			t.Errorf("required: %s", r(n))
		}
		n = parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"Tell me a story"}],`+tools+`,"tool_choice":{"type":"function","function":{"name":"get_weather"}}}`).body)
		if n.s(t, "choices.0.finish_reason") != "stop" || n.length(t, "choices.0.message.tool_calls") != 1 {
			t.Errorf("named: %s", r(n))
		}
	})

	t.Run("policy tool call with content", func(t *testing.T) {
		ps := newSim(Options{Policy: func([]Message, int) string {
			return "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Oslo\", \"days\": 2.50}}\n</tool_call>"
		}})
		n := parseNode(t, post(t, ps, chatPath, `{`+msgs+`,`+tools+`}`).body)
		if n.s(t, "choices.0.message.content") != "Let me check.\n" ||
			n.s(t, "choices.0.message.tool_calls.0.function.arguments") != `{"location": "Oslo", "days": 2.5}` {
			t.Errorf("got %s", r(n))
		}
		cs := chunks(t, post(t, ps, chatPath, `{`+msgs+`,`+tools+`,"stream":true}`).body)
		var content strings.Builder
		for _, c := range cs[1:] {
			if v := c.at("choices.0.delta.content"); v != nil {
				content.WriteString(v.str)
			}
		}
		if content.String() != "Let me check.\n" {
			t.Errorf("streamed content %q", content.String())
		}
	})
}

// r prints a node back as its shape, for failure messages.
func r(n *node) string { return shape(n) }

func TestChatLogprobs(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "Héllo 🐱 wörld" }})
	for _, top := range []int{0, 1, 5} {
		n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"logprobs":true,"top_logprobs":`+strconv.Itoa(top)+`,"return_token_ids":true}`).body)
		ids := n.ids(t, "choices.0.token_ids")
		for i, id := range ids {
			p := "choices.0.logprobs.content." + strconv.Itoa(i)
			tok := n.s(t, p+".token")
			if want := s.Detokenize([]int64{id}); tok != want {
				t.Errorf("entry %d token %q, want %q", i, tok, want)
			}
			if got := n.ids(t, p+".bytes"); string(bytesOf(got)) != tok {
				t.Errorf("entry %d bytes %v", i, got)
			}
			lp := n.f(t, p+".logprob")
			if lp >= 0 || lp == float64(int64(lp)) {
				t.Errorf("entry %d logprob %v is not a negative non-integral value", i, lp)
			}
			if got := n.length(t, p+".top_logprobs"); got != top {
				t.Errorf("entry %d has %d top_logprobs, want %d", i, got, top)
			}
			if top > 0 && (n.s(t, p+".top_logprobs.0.token") != tok || n.f(t, p+".top_logprobs.0.logprob") != lp) {
				t.Errorf("entry %d: sampled token is not first in top_logprobs", i)
			}
			for j := 1; j < top; j++ {
				if n.f(t, p+".top_logprobs."+strconv.Itoa(j)+".logprob") >= n.f(t, p+".top_logprobs."+strconv.Itoa(j-1)+".logprob") {
					t.Errorf("entry %d: top_logprobs not in decreasing order", i)
				}
			}
		}
		if last := n.s(t, "choices.0.logprobs.content."+strconv.Itoa(len(ids)-1)+".token"); last != "<|im_end|>" {
			t.Errorf("last entry %q, want <|im_end|>", last)
		}
	}
	// Logprobs are printed as Python floats: never integral-looking.
	body := string(post(t, s, chatPath, `{`+sayHi+`,"logprobs":true,"top_logprobs":5}`).body)
	for _, m := range regexp.MustCompile(`"logprob":(-?[0-9.e+-]+)`).FindAllStringSubmatch(body, -1) {
		if !strings.ContainsAny(m[1], ".e") {
			t.Errorf("logprob %s printed like an int", m[1])
		}
	}

	t.Run("return_tokens_as_token_ids", func(t *testing.T) {
		n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"logprobs":true,"top_logprobs":2,"return_tokens_as_token_ids":true,"return_token_ids":true}`).body)
		ids := n.ids(t, "choices.0.token_ids")
		for i, id := range ids {
			p := "choices.0.logprobs.content." + strconv.Itoa(i)
			if got := n.s(t, p+".token"); got != "token_id:"+strconv.FormatInt(id, 10) {
				t.Errorf("token %q", got)
			}
			// bytes stay those of the decoded text; inside top_logprobs
			// they are those of the "token_id:N" string.
			if got := string(bytesOf(n.ids(t, p+".bytes"))); got != s.Detokenize([]int64{id}) {
				t.Errorf("bytes %q", got)
			}
			if got := string(bytesOf(n.ids(t, p+".top_logprobs.0.bytes"))); got != "token_id:"+strconv.FormatInt(id, 10) {
				t.Errorf("top bytes %q", got)
			}
		}
	})
}

func bytesOf(ids []int64) []byte {
	b := make([]byte, len(ids))
	for i, v := range ids {
		b[i] = byte(v)
	}
	return b
}

func TestChatEcho(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return " there" }})
	msgs := `"messages":[{"role":"user","content":"Greet me"},{"role":"assistant","content":"Hello"}],"add_generation_prompt":false,"continue_final_message":true`
	n := parseNode(t, post(t, s, chatPath, `{`+msgs+`,"echo":true,"return_token_ids":true}`).body)
	if got := n.s(t, "choices.0.message.content"); got != "Hello there" {
		t.Errorf("echo content %q", got)
	}
	if !strings.HasSuffix(s.Detokenize(n.ids(t, "prompt_token_ids")), "<|im_start|>assistant\nHello") {
		t.Errorf("continue_final_message left the message closed")
	}
	// echo implies prompt_logprobs: one entry per prompt token, first null.
	pl := n.at("prompt_logprobs")
	if pl == nil || pl.kind != 'a' || len(pl.items) != n.length(t, "prompt_token_ids") || pl.items[0].kind != 'z' {
		t.Fatalf("prompt_logprobs %s", r(pl))
	}
	second := pl.items[1]
	if got := second.keys[0]; got != strconv.FormatInt(n.ids(t, "prompt_token_ids")[1], 10) {
		t.Errorf("first key of prompt_logprobs[1] is %s, not the prompt token", got)
	}
	if got := keysAt(t, second, second.keys[0]); !slices.Equal(got, []string{"logprob", "rank", "decoded_token"}) {
		t.Errorf("prompt logprob keys %v", got)
	}
	cs := chunks(t, post(t, s, chatPath, `{`+msgs+`,"echo":true,"stream":true}`).body)
	if cs[1].s(t, "choices.0.delta.content") != "Hello" || cs[1].has("choices.0.token_ids") {
		t.Errorf("echo chunk %s", r(cs[1]))
	}
}

func TestChatPolicySeesMessages(t *testing.T) {
	var got []Message
	var samples []int
	s := newSim(Options{Policy: func(m []Message, i int) string {
		got = m
		samples = append(samples, i)
		return "ok"
	}})
	post(t, s, chatPath, `{"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}]},{"role":"tool","content":"42","tool_call_id":"c1"}],"n":2}`)
	want := []Message{
		{Role: "user", Content: "a\nb"},
		{Role: "assistant", ToolCalls: []ToolCall{{ID: "c1", Name: "f", Arguments: `{"x":1}`}}},
		{Role: "tool", Content: "42", ToolCallID: "c1"},
	}
	// Sample 0 is asked once more first: does the policy take this conversation?
	if !reflect.DeepEqual(got, want) || !slices.Equal(samples, []int{0, 0, 1}) {
		t.Fatalf("policy saw %+v samples %v", got, samples)
	}
}

func TestStreamOptions(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy})
	for _, tc := range []struct {
		name       string
		opts       string
		usage      bool
		continuous bool
	}{
		{"absent", ``, false, false},
		{"empty object", `,"stream_options":{}`, true, false},
		{"include_usage", `,"stream_options":{"include_usage":true}`, true, false},
		{"include_usage false", `,"stream_options":{"include_usage":false}`, false, false},
		{"include_usage null", `,"stream_options":{"include_usage":null}`, false, false},
		{"continuous", `,"stream_options":{"continuous_usage_stats":true}`, true, true},
		{"continuous without usage", `,"stream_options":{"include_usage":false,"continuous_usage_stats":true}`, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{chatPath, "/v1/completions"} {
				body := `{` + sayHi + `,"stream":true` + tc.opts + `}`
				if path != chatPath {
					body = `{"prompt":"Hello","max_tokens":3,"stream":true` + tc.opts + `}`
				}
				cs := chunks(t, post(t, s, path, body).body)
				last := cs[len(cs)-1]
				if hasUsageChunk := last.length(t, "choices") == 0; hasUsageChunk != tc.usage {
					t.Errorf("%s: usage chunk %v, want %v", path, hasUsageChunk, tc.usage)
				}
				P := int64(0)
				if tc.usage {
					P = last.i(t, "usage.prompt_tokens")
				}
				for i, c := range cs {
					if c.length(t, "choices") == 0 {
						continue
					}
					u := c.at("usage")
					switch {
					case tc.continuous && (u == nil || u.kind != 'o'):
						t.Errorf("%s chunk %d: no usage", path, i)
					case tc.continuous:
						// Cumulative per choice: the chat role chunk (chunk 0)
						// has 0, the token chunk i has i; completions chunk i
						// carries token i+1.
						want := int64(i)
						if path != chatPath {
							want = int64(i + 1)
						}
						// Completions chunks dump every field, chat chunks only set ones.
						wantKeys := []string{"prompt_tokens", "total_tokens", "completion_tokens"}
						if path != chatPath {
							wantKeys = append(wantKeys, "prompt_tokens_details")
						}
						if got := keysAt(t, c, "usage"); !slices.Equal(got, wantKeys) {
							t.Errorf("%s chunk %d usage keys %v", path, i, got)
						}
						if c.i(t, "usage.completion_tokens") != want || c.i(t, "usage.prompt_tokens") != P ||
							c.i(t, "usage.total_tokens") != P+want {
							t.Errorf("%s chunk %d usage %d/%d/%d, want completion %d", path, i,
								c.i(t, "usage.prompt_tokens"), c.i(t, "usage.total_tokens"), c.i(t, "usage.completion_tokens"), want)
						}
					case path == chatPath && u != nil:
						t.Errorf("chat chunk %d has usage", i)
					case path != chatPath && tc.continuous:
					case path != chatPath && (u == nil || u.kind != 'z'):
						t.Errorf("completions chunk %d usage is not null", i)
					}
				}
			}
		})
	}
}

func TestChatUnicodeEscaping(t *testing.T) {
	s := newSim(Options{Policy: func([]Message, int) string { return "tab\tquote\" back\\ nl\n ctl\x01 é 🐱 \u2028" }})
	body := string(post(t, s, chatPath, `{`+sayHi+`}`).body)
	want := `"content":"tab\tquote\" back\\ nl\n ctl\u0001 é 🐱 ` + "\u2028" + `"`
	if !strings.Contains(body, want) {
		t.Errorf("content not escaped like Python json.dumps(ensure_ascii=False):\n%s", body)
	}
	if !utf8.ValidString(body) {
		t.Errorf("invalid UTF-8 in body")
	}
}
