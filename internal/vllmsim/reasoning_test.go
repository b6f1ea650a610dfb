package vllmsim

import (
	"slices"
	"strings"
	"testing"
)

const thinkAnswer = "<think>\nLet me think.\n</think>\n\nThe answer is 4."

func thinkPolicy([]Message, int) string { return thinkAnswer }

func TestReasoningResponse(t *testing.T) {
	ask := `"messages":[{"role":"user","content":"What is 2+2?"}],"return_token_ids":true`
	askTools := `"messages":[{"role":"user","content":"What is x?"}],"tools":` + searchTool + `,"return_token_ids":true`
	null := "<null>"
	for _, tc := range []struct {
		name       string
		opts       Options
		body       string
		reasoning  string // null for JSON null
		content    string
		finish     string
		firstToken int64 // 0: not checked
	}{
		{"qwen3 splits the think block", Options{Template: TemplateQwen3, Policy: thinkPolicy}, ask,
			"\nLet me think.\n", "\n\nThe answer is 4.", "stop", tokThinkStart},
		{"qwen2.5 has no reasoning parser", Options{Policy: thinkPolicy}, ask,
			null, thinkAnswer, "stop", 0},
		{"qwen3 truncated think block is all reasoning", Options{Template: TemplateQwen3, Policy: thinkPolicy}, ask + `,"max_tokens":4`,
			"\nLet me", null, "length", tokThinkStart},
		{"qwen3 thinking off: no think block, all content", Options{Template: TemplateQwen3, Policy: func([]Message, int) string { return "Four." }},
			ask + `,"chat_template_kwargs":{"enable_thinking":false}`, null, "Four.", "stop", 0},
		{"qwen3 reasoning_effort none: thinking off", Options{Template: TemplateQwen3, Policy: func([]Message, int) string { return "Four." }},
			ask + `,"reasoning_effort":"none"`, null, "Four.", "stop", 0},
		{"qwen3 reasoning_effort high: thinking on", Options{Template: TemplateQwen3, Policy: thinkPolicy}, ask + `,"reasoning_effort":"high"`,
			"\nLet me think.\n", "\n\nThe answer is 4.", "stop", tokThinkStart},
		{"qwen3 enable_thinking beats reasoning_effort", Options{Template: TemplateQwen3, Policy: func([]Message, int) string { return "Four." }},
			ask + `,"reasoning_effort":"high","chat_template_kwargs":{"enable_thinking":false}`, null, "Four.", "stop", 0},
		{"qwen3 agent calls a tool after thinking", Options{Template: TemplateQwen3, AgentPolicy: AgentPolicy}, askTools,
			"\nI should call search to answer this.\n", "\n\n", "tool_calls", tokThinkStart},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.opts)
			n := parseNode(t, post(t, s, chatPath, `{`+tc.body+`}`).body)
			msg := "choices.0.message."
			check := func(field, want string) {
				t.Helper()
				if want == null {
					if !n.isNull(msg + field) {
						t.Errorf("%s = %s, want null", field, shape(n.at(msg+field)))
					}
				} else if got := n.s(t, msg+field); got != want {
					t.Errorf("%s = %q, want %q", field, got, want)
				}
			}
			check("reasoning", tc.reasoning)
			check("content", tc.content)
			if got := n.s(t, "choices.0.finish_reason"); got != tc.finish {
				t.Errorf("finish_reason %q, want %q", got, tc.finish)
			}
			ids := n.ids(t, "choices.0.token_ids")
			if tc.firstToken != 0 && ids[0] != tc.firstToken {
				t.Errorf("token_ids start %v", ids[:3])
			}
			// token_ids are what was sampled, think tokens included.
			if dec := s.Detokenize(ids); tc.finish != "length" && !strings.HasPrefix(dec, strings.TrimPrefix(tc.content, "\n\n")) && !strings.Contains(dec, "<think>") {
				t.Errorf("decoded token_ids %q", dec)
			}
			if tc.finish == "tool_calls" {
				if got := n.s(t, msg+"tool_calls.0.function.name"); got != "search" {
					t.Errorf("tool name %q", got)
				}
				if args := n.s(t, msg+"tool_calls.0.function.arguments"); args != `{"query": "What is x?"}` {
					t.Errorf("arguments %q", args)
				}
			}
		})
	}
}

func TestBuiltinGeneratorThinksUnderQwen3(t *testing.T) {
	s := newSim(Options{Template: TemplateQwen3})
	n := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"Hi"}],"return_token_ids":true}`).body)
	ids := n.ids(t, "choices.0.token_ids")
	dec := s.Detokenize(ids)
	if ids[0] != tokThinkStart || !strings.Contains(dec, "\n</think>\n\n") || ids[len(ids)-1] != tokImEnd {
		t.Fatalf("output %q", dec)
	}
	r := n.s(t, "choices.0.message.reasoning")
	c := n.s(t, "choices.0.message.content")
	if "<think>"+r+"</think>"+c+"<|im_end|>" != dec || strings.TrimSpace(c) == "" {
		t.Errorf("reasoning %q content %q, decoded %q", r, c, dec)
	}
	off := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"Hi"}],"chat_template_kwargs":{"enable_thinking":false}}`).body)
	if !off.isNull("choices.0.message.reasoning") || strings.Contains(off.s(t, "choices.0.message.content"), "think") {
		t.Errorf("thinking off: %s", shape(off.at("choices.0.message")))
	}
}

// TestReasoningStream checks the deltas of a qwen3 stream: reasoning first,
// then content, the think tags never streamed (their chunks carry an empty
// delta when token IDs are requested), and the same IDs as non-stream.
func TestReasoningStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  Options
		body  string
		tools bool
	}{
		{"answer", Options{Template: TemplateQwen3, Policy: thinkPolicy}, `"messages":[{"role":"user","content":"What is 2+2?"}]`, false},
		{"tool call", Options{Template: TemplateQwen3, AgentPolicy: AgentPolicy}, `"messages":[{"role":"user","content":"What is x?"}],"tools":` + searchTool, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(tc.opts)
			full := parseNode(t, post(t, s, chatPath, `{`+tc.body+`,"return_token_ids":true}`).body)
			cs := chunks(t, post(t, s, chatPath, `{`+tc.body+`,"return_token_ids":true,"stream":true}`).body)
			var reasoning, content strings.Builder
			var ids []int64
			phase := "reasoning"
			for _, c := range cs[1:] {
				d := c.at("choices.0.delta")
				keys := keysAt(t, c, "choices.0.delta")
				ids = append(ids, c.ids(t, "choices.0.token_ids")...)
				switch {
				case slices.Equal(keys, []string{"reasoning"}):
					if phase != "reasoning" {
						t.Errorf("reasoning delta after content: %s", shape(d))
					}
					reasoning.WriteString(d.at("reasoning").str)
				case len(keys) == 0:
				case keys[0] == "content":
					phase = "content"
					content.WriteString(d.at("content").str)
				case keys[0] == "tool_calls":
				default:
					t.Errorf("delta keys %v", keys)
				}
			}
			if got, want := reasoning.String(), full.s(t, "choices.0.message.reasoning"); got != want {
				t.Errorf("streamed reasoning %q, want %q", got, want)
			}
			if got, want := content.String(), full.s(t, "choices.0.message.content"); got != want {
				t.Errorf("streamed content %q, want %q", got, want)
			}
			if !slices.Equal(ids, full.ids(t, "choices.0.token_ids")) {
				t.Errorf("streamed IDs %v, want %v", ids, full.ids(t, "choices.0.token_ids"))
			}
			// The <think> token's chunk has an empty delta.
			if got := keysAt(t, cs[1], "choices.0.delta"); len(got) != 0 || cs[1].ids(t, "choices.0.token_ids")[0] != tokThinkStart {
				t.Errorf("first token chunk %s", shape(cs[1]))
			}
			if tc.tools && cs[len(cs)-1].s(t, "choices.0.finish_reason") != "tool_calls" {
				t.Errorf("last chunk %s", shape(cs[len(cs)-1]))
			}
			// Without token IDs the tag chunks are not sent at all.
			plain := chunks(t, post(t, s, chatPath, `{`+tc.body+`,"stream":true}`).body)
			for _, c := range plain[1:] {
				if len(keysAt(t, c, "choices.0.delta")) == 0 {
					t.Errorf("empty delta sent without token IDs: %s", shape(c))
				}
			}
		})
	}
}
