package vllmsim

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tokentap/tokentap/internal/qwen3"
)

// Real mode: Options.Tokenizer and Options.ChatTemplate set to the pure-Go
// Qwen3 tokenizer and chat template (internal/qwen3), Template "qwen3" for
// vLLM's qwen3 reasoning parser and the hermes tool parser. These tests
// check that the simulator then answers as vLLM serving Qwen/Qwen3-8B does:
// the IDs of trajectories.md §7, prompts that are the template's rendering
// of the request as sent, output IDs that decode to what the parsers made
// of them.

const realModelName = "Qwen/Qwen3-8B"

// loadRealModel loads the tokenizer once per test binary (about a second).
var loadRealModel = sync.OnceValues(func() (*qwen3.Model, error) {
	return qwen3.Load(os.Getenv("QWEN3_TOKENIZER_DIR"))
})

// realModel is the Qwen3 tokenizer scripts/qwen3-tokenizer.sh dumps. As in
// internal/qwen3's tests, the test skips when QWEN3_TOKENIZER_DIR is unset
// (.ci/run sets it, so CI runs these) and fails when it cannot be loaded.
func realModel(tb testing.TB) *qwen3.Model {
	tb.Helper()
	if os.Getenv("QWEN3_TOKENIZER_DIR") == "" {
		tb.Skip("QWEN3_TOKENIZER_DIR unset: run QWEN3_TOKENIZER_DIR=$(scripts/qwen3-tokenizer.sh)")
	}
	m, err := loadRealModel()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// realSim is a real-mode server; opts gives the policy.
func realSim(tb testing.TB, opts Options) (*Server, *qwen3.Model) {
	tb.Helper()
	m := realModel(tb)
	opts.Model, opts.Template = realModelName, TemplateQwen3
	opts.Tokenizer, opts.ChatTemplate = m, m
	return newSim(opts), m
}

// The conversations of trajectories.md §3 (see internal/qwen3's
// render_test.go for why this user query and tool description give
// len(P1) = 151).
const (
	rmSystem     = `{"role":"system","content":"You are a helpful assistant."}`
	rmToolUser   = `{"role":"user","content":"What is x?"}`
	rmTools      = `[{"type":"function","function":{"name":"search","description":"Search.","parameters":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}}}]`
	rmToolResult = `{"role":"tool","tool_call_id":"call_1","content":"x is 42"}`
	// rmToolAnswer is R1 of §3.3: a think block, then the call.
	rmToolAnswer = "<think>\nI should search.\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call><|im_end|>"
)

func rmMsgs(ms ...string) string { return "[" + strings.Join(ms, ",") + "]" }

func rmJSON(s string) string { return string(appendJSONString(nil, s)) }

// rmAssistantCall is the assistant turn a client sends back after R1 of
// §3.3: content null, the call with args as a JSON string, extra fields.
func rmAssistantCall(args, extra string) string {
	return `{"role":"assistant","content":null` + extra + `,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":` + rmJSON(args) + `}}]}`
}

func rmTokenize(t *testing.T, s *Server, body string) []int64 {
	t.Helper()
	r := post(t, s, "/tokenize", body)
	if r.code != 200 {
		t.Fatalf("/tokenize %s: %d %s", body, r.code, r.body)
	}
	n := parseNode(t, r.body)
	ids := n.ids(t, "tokens")
	if n.i(t, "count") != int64(len(ids)) {
		t.Fatalf("/tokenize: count %d for %d tokens", n.i(t, "count"), len(ids))
	}
	return ids
}

// rmText is /tokenize of a plain string.
func rmText(t *testing.T, s *Server, text string) []int64 {
	t.Helper()
	return rmTokenize(t, s, `{"model":"`+realModelName+`","prompt":`+rmJSON(text)+`}`)
}

func rmDetokenize(t *testing.T, s *Server, ids []int64) string {
	t.Helper()
	r := post(t, s, "/detokenize", `{"model":"`+realModelName+`","tokens":`+string(appendInts(nil, ids))+`}`)
	if r.code != 200 {
		t.Fatalf("/detokenize: %d %s", r.code, r.body)
	}
	return parseNode(t, r.body).s(t, "prompt")
}

// rmConv is a conversation as a request carries it.
type rmConv struct{ messages, tools, kwargs string }

func (c rmConv) fields() string {
	b := `"model":"` + realModelName + `","messages":` + c.messages
	if c.tools != "" {
		b += `,"tools":` + c.tools
	}
	if c.kwargs != "" {
		b += `,"chat_template_kwargs":` + c.kwargs
	}
	return b
}

// direct is what the template and tokenizer give for the request's own
// JSON, without the simulator in between: vLLM's prompt IDs.
func (c rmConv) direct(t *testing.T, m *qwen3.Model) []int64 {
	t.Helper()
	var tools, kwargs []byte
	if c.tools != "" {
		tools = []byte(c.tools)
	}
	if c.kwargs != "" {
		kwargs = []byte(c.kwargs)
	}
	text, err := m.Render([]byte(c.messages), tools, true, false, kwargs)
	if err != nil {
		t.Fatalf("render %s: %v", c.messages, err)
	}
	return m.Encode(text)
}

// rmPrompt is /tokenize of a conversation (with the generation prompt),
// checked against the direct rendering: the simulator hands the template
// the messages vLLM would.
func rmPrompt(t *testing.T, s *Server, m *qwen3.Model, c rmConv) []int64 {
	t.Helper()
	ids := rmTokenize(t, s, "{"+c.fields()+"}")
	if want := c.direct(t, m); !slices.Equal(ids, want) {
		t.Fatalf("/tokenize of %s differs from the template's rendering of the request (first difference at %d)", c.messages, firstDiff(ids, want))
	}
	return ids
}

// TestRealModeTokenizeFragments: /tokenize with a prompt gives the IDs of
// trajectories.md §1.
func TestRealModeTokenizeFragments(t *testing.T) {
	s, _ := realSim(t, Options{})
	for _, c := range []struct {
		text string
		want []int64
	}{
		{"<|im_start|>system\n", []int64{151644, 8948, 198}},
		{"<|im_start|>user\n", []int64{151644, 872, 198}},
		{"<|im_start|>assistant\n", []int64{151644, 77091, 198}},
		{"<|im_end|>\n", []int64{151645, 198}},
		{"\n", []int64{198}},
		{"\n\n", []int64{271}},
		{"\n\n\n", []int64{1406}},
		{"<think>\n\n</think>\n\n", []int64{151667, 271, 151668, 271}},
		{".\n", []int64{624}},
		{".\n\n", []int64{382}},
		{"Hi!", []int64{13048, 0}},
		{"<tool_call></tool_call><tool_response></tool_response><|endoftext|>", []int64{151657, 151658, 151665, 151666, 151643}},
	} {
		if got := rmText(t, s, c.text); !slices.Equal(got, c.want) {
			t.Errorf("/tokenize %q = %v, want %v", c.text, got, c.want)
		}
	}
}

// TestRealModeTokenizeVectors: /tokenize with messages (and with a prompt,
// for the sampled answers) reproduces the vectors of trajectories.md §7 that
// concern rendered conversations. C = P1 + R1 is what the engine saw and
// sampled, P2 the next prompt, d their first differing index.
func TestRealModeTokenizeVectors(t *testing.T) {
	s, m := realSim(t, Options{})
	plainUser := `{"role":"user","content":"What is 2+2?"}`
	withTools := func(kw string, ms ...string) rmConv { return rmConv{rmMsgs(ms...), rmTools, kw} }
	spaced, compact := `{"query": "x"}`, `{"query":"x"}`
	echoed := `,"reasoning_content":"I should search."`

	// The exact IDs the reference gives for the first conversation and the
	// sampled tool turn.
	p1Plain := []int64{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198,
		151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198}
	if got := rmPrompt(t, s, m, rmConv{messages: rmMsgs(rmSystem, plainUser)}); !slices.Equal(got, p1Plain) {
		t.Errorf("P1 of §3.2 = %v, want %v", got, p1Plain)
	}
	r1Tool := []int64{151667, 198, 40, 1265, 2711, 624, 151668, 271, 151657, 198, 4913, 606, 788,
		330, 1836, 497, 330, 16370, 788, 5212, 1631, 788, 330, 87, 95642, 151658, 151645}
	if got := rmText(t, s, rmToolAnswer); !slices.Equal(got, r1Tool) {
		t.Errorf("R1 of §3.3 = %v, want %v", got, r1Tool)
	}
	// splitDotNewline makes the model's sample non-canonical: "." and "\n"
	// as two tokens where BPE of the text has ".\n" (§3.6a).
	splitDotNewline := func(ids []int64) []int64 {
		dot, nl, both := rmText(t, s, "."), rmText(t, s, "\n"), rmText(t, s, ".\n")
		if len(dot) != 1 || len(nl) != 1 || len(both) != 1 {
			t.Fatalf(`"." %v, "\n" %v, ".\n" %v: want one token each`, dot, nl, both)
		}
		i := slices.Index(ids, both[0])
		return slices.Concat(ids[:i], dot, nl, ids[i+1:])
	}

	cases := []struct {
		name string
		p1   rmConv
		r1   string                // the sampled answer, as text
		edit func([]int64) []int64 // how the sampled IDs differ from BPE of r1 (nil: they do not)
		p2   rmConv
		// The §7 row; d < 0: P2 extends C, and obs is what lies between.
		lenP1, lenC, d int
		cd, p2d        int64
		obs            []int64
	}{
		{name: "think stripped, new user query (§3.2)",
			p1:    rmConv{messages: rmMsgs(rmSystem, plainUser)},
			r1:    "<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>",
			p2:    rmConv{messages: rmMsgs(rmSystem, plainUser, `{"role":"assistant","content":"The answer is 4."}`, `{"role":"user","content":"And 3+3?"}`)},
			lenP1: 26, lenC: 41, d: 26, cd: 151667, p2d: 785},
		{name: "think stripped although reasoning_content was echoed (§3.2)",
			p1:    rmConv{messages: rmMsgs(rmSystem, plainUser)},
			r1:    "<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>",
			p2:    rmConv{messages: rmMsgs(rmSystem, plainUser, `{"role":"assistant","content":"The answer is 4.","reasoning_content":"Let me think."}`, `{"role":"user","content":"And 3+3?"}`)},
			lenP1: 26, lenC: 41, d: 26, cd: 151667, p2d: 785},
		{name: "reasoning dropped in tool loop (§3.3)",
			p1: withTools("", rmSystem, rmToolUser), r1: rmToolAnswer,
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(spaced, ""), rmToolResult),
			lenP1: 151, lenC: 178, d: 151, cd: 151667, p2d: 151657},
		{name: "reasoning echoed in tool loop (§3.3)",
			p1: withTools("", rmSystem, rmToolUser), r1: rmToolAnswer,
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(spaced, echoed), rmToolResult),
			lenP1: 151, lenC: 178, d: -1,
			obs: []int64{198, 151644, 872, 198, 151665, 198, 87, 374, 220, 19, 17, 198, 151666, 151645, 198, 151644, 77091, 198}},
		{name: "reasoning echoed as reasoning (vLLM's current field name)",
			p1: withTools("", rmSystem, rmToolUser), r1: rmToolAnswer,
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(spaced, `,"reasoning":"I should search."`), rmToolResult),
			lenP1: 151, lenC: 178, d: -1,
			obs: []int64{198, 151644, 872, 198, 151665, 198, 87, 374, 220, 19, 17, 198, 151666, 151645, 198, 151644, 77091, 198}},
		{name: "enable_thinking=false tool loop (§3.4)",
			p1:    withTools(`{"enable_thinking":false}`, rmSystem, rmToolUser),
			r1:    "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call><|im_end|>",
			p2:    withTools(`{"enable_thinking":false}`, rmSystem, rmToolUser, rmAssistantCall(spaced, ""), rmToolResult),
			lenP1: 155, lenC: 174, d: 151, cd: 151667, p2d: 151657},
		{name: "think whitespace (§3.5)",
			p1:    withTools("", rmSystem, rmToolUser),
			r1:    "<think>\n\nI should search.\n\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call><|im_end|>",
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(spaced, `,"reasoning_content":"\nI should search.\n"`), rmToolResult),
			lenP1: 151, lenC: 178, d: 152, cd: 271, p2d: 198},
		{name: "BPE re-split .+\\n (§3.6a)",
			p1: withTools("", rmSystem, rmToolUser), r1: rmToolAnswer, edit: splitDotNewline,
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(spaced, echoed), rmToolResult),
			lenP1: 151, lenC: 179, d: 156, cd: 13, p2d: 624},
		{name: "compact tool args (§3.7)",
			p1:    withTools("", rmSystem, rmToolUser),
			r1:    "<think>\nI should search.\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": " + compact + "}\n</tool_call><|im_end|>",
			p2:    withTools("", rmSystem, rmToolUser, rmAssistantCall(compact, echoed), rmToolResult),
			lenP1: 151, lenC: 177, d: 172, cd: 3252, p2d: 788},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p1 := rmPrompt(t, s, m, tc.p1)
			r1 := rmText(t, s, tc.r1)
			if tc.edit != nil {
				r1 = tc.edit(r1)
			}
			c := slices.Concat(p1, r1)
			p2 := rmPrompt(t, s, m, tc.p2)
			if len(p1) != tc.lenP1 || len(c) != tc.lenC {
				t.Fatalf("len(P1) = %d, len(C) = %d; want %d, %d", len(p1), len(c), tc.lenP1, tc.lenC)
			}
			d := firstDiff(c, p2)
			if tc.d < 0 {
				if d != len(c) || !slices.Equal(p2[len(c):], tc.obs) {
					t.Fatalf("P2 does not extend C by O2: d = %d, after C %v", d, p2[min(d, len(p2)):])
				}
				return
			}
			if d != tc.d || c[d] != tc.cd || p2[d] != tc.p2d {
				t.Fatalf("d = %d, C[d] = %d, P2[d] = %d; want %d, %d, %d", d, c[d], p2[d], tc.d, tc.cd, tc.p2d)
			}
			if tc.edit != nil {
				// A re-split: the same text, other IDs.
				if got, want := rmDetokenize(t, s, c[d:]), rmDetokenize(t, s, p2[d:]); !strings.HasPrefix(want, got) {
					t.Errorf("decode(C[d:]) = %q is not a prefix of decode(P2[d:]) = %q", got, want)
				}
			}
		})
	}

	t.Run("truncated multi-byte (§3.6b)", func(t *testing.T) {
		full := rmText(t, s, "Answer: 𓀀")
		if want := []int64{16141, 25, 220, 124373, 222, 222}; !slices.Equal(full, want) {
			t.Fatalf("/tokenize = %v, want %v", full, want)
		}
		r1 := full[:5] // finish_reason "length" after the first 222
		text := rmDetokenize(t, s, r1)
		if text != "Answer: \uFFFD" {
			t.Fatalf("/detokenize = %q", text)
		}
		again := rmText(t, s, text)
		if d := firstDiff(r1, again); d != 2 || r1[d] != 220 || again[d] != 29333 {
			t.Fatalf("re-encoded %v: d = %d, want 2 (220 vs 29333)", again, d)
		}
	})
}

// rmAnswer is what one chat completion said, stream or not.
type rmAnswer struct {
	prompt, ids        []int64
	reasoning, content *string
	calls              [][2]string // name, arguments
	finish             string
	usage              [2]int64 // prompt, completion (non-stream only)
}

func rmStrPtr(n *node, path string) *string {
	v := n.at(path)
	if v == nil || v.kind != 's' {
		return nil
	}
	return &v.str
}

// rmChat posts a chat completion of c with return_token_ids and reads the
// answer as a client assembles it (a stream from its deltas).
func rmChat(t *testing.T, s *Server, c rmConv, stream bool) rmAnswer {
	t.Helper()
	body := "{" + c.fields() + `,"return_token_ids":true`
	if stream {
		body += `,"stream":true`
	}
	r := post(t, s, chatPath, body+"}")
	if r.code != 200 {
		t.Fatalf("chat: %d %s", r.code, r.body)
	}
	var a rmAnswer
	if !stream {
		n := parseNode(t, r.body)
		a.prompt, a.ids = n.ids(t, "prompt_token_ids"), n.ids(t, "choices.0.token_ids")
		a.reasoning, a.content = rmStrPtr(n, "choices.0.message.reasoning"), rmStrPtr(n, "choices.0.message.content")
		for i := range n.length(t, "choices.0.message.tool_calls") {
			p := "choices.0.message.tool_calls." + strconv.Itoa(i) + ".function."
			a.calls = append(a.calls, [2]string{n.s(t, p+"name"), n.s(t, p+"arguments")})
		}
		a.finish = n.s(t, "choices.0.finish_reason")
		a.usage = [2]int64{n.i(t, "usage.prompt_tokens"), n.i(t, "usage.completion_tokens")}
		return a
	}
	cs := chunks(t, r.body)
	a.prompt = cs[0].ids(t, "prompt_token_ids")
	var reasoning, content strings.Builder
	sawReasoning, sawContent := false, false
	for k, ch := range cs {
		if k > 0 && ch.has("prompt_token_ids") {
			t.Fatalf("chunk %d repeats prompt_token_ids", k)
		}
		if k > 0 {
			a.ids = append(a.ids, ch.ids(t, "choices.0.token_ids")...)
		}
		if v := rmStrPtr(ch, "choices.0.delta.reasoning"); v != nil {
			reasoning.WriteString(*v)
			sawReasoning = true
		}
		if v := rmStrPtr(ch, "choices.0.delta.content"); v != nil && k > 0 {
			content.WriteString(*v)
			sawContent = sawContent || *v != ""
		}
		if tc := ch.at("choices.0.delta.tool_calls"); tc != nil {
			// A client joins a call's deltas by index: the name once, the
			// arguments in pieces.
			for i := range tc.items {
				p := "choices.0.delta.tool_calls." + strconv.Itoa(i) + "."
				j := int(ch.i(t, p+"index"))
				for len(a.calls) <= j {
					a.calls = append(a.calls, [2]string{})
				}
				if v := rmStrPtr(ch, p+"function.name"); v != nil {
					a.calls[j][0] += *v
				}
				if v := rmStrPtr(ch, p+"function.arguments"); v != nil {
					a.calls[j][1] += *v
				}
			}
		}
		if f := rmStrPtr(ch, "choices.0.finish_reason"); f != nil {
			a.finish = *f
		}
	}
	if sawReasoning {
		a.reasoning = new(reasoning.String())
	}
	if sawContent {
		a.content = new(content.String())
	}
	return a
}

// rmCheckDecoded checks that text, the decoding of an answer's token_ids,
// is what the answer says was sampled: "<think>" reasoning "</think>" (the
// qwen3 reasoning parser), the content, then each tool call as the hermes
// parser read it (<tool_call>\n JSON \n</tool_call>, name first, the same
// arguments), then <|im_end|>. It returns the calls' sampled JSON.
func rmCheckDecoded(t *testing.T, text string, a rmAnswer) []string {
	t.Helper()
	rest, ok := strings.CutSuffix(text, "<|im_end|>")
	if !ok {
		t.Fatalf("decoded answer %q does not end with <|im_end|>", text)
	}
	if a.reasoning != nil {
		if rest, ok = strings.CutPrefix(rest, "<think>"+*a.reasoning+"</think>"); !ok {
			t.Fatalf("decoded answer %q does not open with the reasoning %q", text, *a.reasoning)
		}
	}
	if a.content != nil {
		if rest, ok = strings.CutPrefix(rest, *a.content); !ok {
			t.Fatalf("decoded answer %q lacks the content %q", text, *a.content)
		}
	}
	var sampled []string
	for _, call := range a.calls {
		var body string
		if rest, ok = strings.CutPrefix(rest, "<tool_call>\n"); ok {
			body, rest, ok = strings.Cut(rest, "\n</tool_call>")
		}
		if !ok || !strings.HasPrefix(body, `{"name"`) {
			t.Fatalf("decoded answer %q: no <tool_call> block for %v", text, call)
		}
		var parsed struct {
			Name      string `json:"name"`
			Arguments any    `json:"arguments"`
		}
		var args any
		if err := json.Unmarshal([]byte(body), &parsed); err != nil || json.Unmarshal([]byte(call[1]), &args) != nil {
			t.Fatalf("tool call %q / arguments %q: not JSON", body, call[1])
		}
		if parsed.Name != call[0] || !reflect.DeepEqual(parsed.Arguments, args) {
			t.Errorf("sampled call %s, parsed as %v", body, call)
		}
		sampled = append(sampled, body)
	}
	if rest != "" {
		t.Errorf("decoded answer %q has %q the answer does not account for", text, rest)
	}
	return sampled
}

// TestRealModeChat: chat completions with return_token_ids, DemoPolicy and
// the search tool, stream and not. prompt_token_ids is BPE of the template
// rendering of the request; token_ids decode (by /detokenize) to the
// reasoning, content and tool calls the parsers returned, and are BPE of
// that text; usage counts them; the stream carries the same IDs.
func TestRealModeChat(t *testing.T) {
	s, m := realSim(t, Options{AgentPolicy: DemoPolicy})
	user := func(q string) string { return `{"role":"user","content":` + rmJSON(q) + `}` }
	// What the server answered to "Who wrote Hamlet?" (the spaced case
	// below), sent back as the SDK does: content "\n\n", no reasoning.
	hamletCall := `{"role":"assistant","content":"\n\n","tool_calls":[{"id":"chatcmpl-tool-1","type":"function","function":{"name":"search","arguments":"{\"query\": \"Who wrote Hamlet?\"}"}}]}`
	cases := []struct {
		name     string
		messages string
		calls    int
		finish   string
		// compact: DemoPolicy writes the call in compact JSON (a hash of
		// the question picks one question in three), which hermes
		// re-serialises with json.dumps' spacing.
		compact bool
	}{
		{"compact tool call", rmMsgs(rmSystem, user("What is the capital of France?")), 1, "tool_calls", true},
		{"spaced tool call", rmMsgs(rmSystem, user("Who wrote Hamlet?")), 1, "tool_calls", false},
		{"answer after the tool result", rmMsgs(rmSystem, user("Who wrote Hamlet?"), hamletCall,
			`{"role":"tool","tool_call_id":"chatcmpl-tool-1","content":"William Shakespeare wrote Hamlet."}`), 0, "stop", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			conv := rmConv{messages: tc.messages, tools: rmTools}
			want := conv.direct(t, m)
			plain := rmChat(t, s, conv, false)
			streamed := rmChat(t, s, conv, true)
			for _, a := range []struct {
				how string
				rmAnswer
			}{{"non-stream", plain}, {"stream", streamed}} {
				if !slices.Equal(a.prompt, want) {
					t.Errorf("%s: prompt_token_ids differ from Encode(Render(request)) at %d", a.how, firstDiff(a.prompt, want))
				}
				if a.finish != tc.finish || len(a.calls) != tc.calls || a.reasoning == nil || a.content == nil {
					t.Fatalf("%s: finish %q, %d calls, reasoning %v, content %v", a.how, a.finish, len(a.calls), a.reasoning, a.content)
				}
				text := rmDetokenize(t, s, a.ids)
				sampled := rmCheckDecoded(t, text, a.rmAnswer)
				for i, body := range sampled {
					// hermes returns json.dumps(arguments): spaced, whatever was sampled.
					if isCompact := !strings.Contains(body, `": `); isCompact != tc.compact || !strings.Contains(a.calls[i][1], `": `) {
						t.Errorf("%s: sampled %s (compact %v, want %v), arguments %s", a.how, body, isCompact, tc.compact, a.calls[i][1])
					}
				}
				// The simulator samples canonical BPE of its text (a real
				// model need not: trajectories.md §3.6).
				if again := rmText(t, s, text); !slices.Equal(again, a.ids) {
					t.Errorf("%s: token_ids are not BPE of their text (first difference at %d)", a.how, firstDiff(again, a.ids))
				}
			}
			if plain.usage != [2]int64{int64(len(plain.prompt)), int64(len(plain.ids))} {
				t.Errorf("usage %v for %d + %d tokens", plain.usage, len(plain.prompt), len(plain.ids))
			}
			streamed.usage = plain.usage
			if !reflect.DeepEqual(plain, streamed) {
				t.Errorf("the stream said otherwise:\n%+v\n%+v", plain, streamed)
			}
		})
	}
}

// TestRealModeDetokenizeRoundTrip: /detokenize inverts /tokenize (both the
// Qwen3 tokenizer's, special and added tokens included), and /tokenize
// inverts /detokenize on canonical IDs.
func TestRealModeDetokenizeRoundTrip(t *testing.T) {
	s, m := realSim(t, Options{})
	rendered, err := m.Render([]byte(rmMsgs(rmSystem, rmToolUser, rmAssistantCall(`{"query": "x"}`, `,"reasoning":"I should search."`), rmToolResult)), []byte(rmTools), true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{
		rendered,
		rmToolAnswer,
		"héllo wörld — ünïcödé 中文字符 日本語 한국어 🙂👍🏽 𓀀",
		"  leading and trailing spaces   \n\t\ttabs\r\nCRLF\u00a0nbsp",
		"numbers 1234567890 and contractions it's we'LL they've",
		"<|im_start|><|im_end|><|endoftext|><think></think><tool_call></tool_call><tool_response></tool_response>",
		"",
	} {
		ids := rmText(t, s, text)
		if want := m.Encode(text); !slices.Equal(ids, want) {
			t.Errorf("/tokenize %q = %v, want %v", text, ids, want)
		}
		got := rmDetokenize(t, s, ids)
		if got != text {
			t.Errorf("/detokenize(/tokenize(%q)) = %q", text, got)
		}
		if again := rmText(t, s, got); !slices.Equal(again, ids) {
			t.Errorf("/tokenize(/detokenize(%v)) = %v", ids, again)
		}
	}
}

// TestRealModeTruncatedCharacter: a sample cut by max_tokens inside a
// multi-byte character has the token IDs of the partial character, but
// not its text: vLLM's incremental detokenizer (DecodeStream.step, or
// detokenize_incrementally on the slow path) emits nothing while the text
// ends in U+FFFD, and nothing flushes it when the request finishes.
func TestRealModeTruncatedCharacter(t *testing.T) {
	s, _ := realSim(t, Options{Policy: func([]Message, int) string { return "Answer: 𓀀" }})
	body := `{"model":"` + realModelName + `","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false},"max_tokens":5,"return_token_ids":true`
	n := parseNode(t, post(t, s, chatPath, body+"}").body)
	if ids := n.ids(t, "choices.0.token_ids"); !slices.Equal(ids, []int64{16141, 25, 220, 124373, 222}) {
		t.Fatalf("token_ids %v", ids)
	}
	if f := n.s(t, "choices.0.finish_reason"); f != "length" {
		t.Fatalf("finish_reason %q", f)
	}
	if got := n.s(t, "choices.0.message.content"); got != "Answer: " {
		t.Errorf("content %q, want %q", got, "Answer: ")
	}
	var streamed strings.Builder
	for _, c := range chunks(t, post(t, s, chatPath, body+`,"stream":true}`).body) {
		if v := rmStrPtr(c, "choices.0.delta.content"); v != nil {
			streamed.WriteString(*v)
		}
	}
	if streamed.String() != "Answer: " {
		t.Errorf("streamed content %q, want %q", streamed.String(), "Answer: ")
	}
}
