package vllmsim

import (
	"strings"
	"testing"
)

const (
	sysHelpful = `{"role":"system","content":"You are a helpful assistant."}`
	searchTool = `[{"type":"function","function":{"name":"search","description":"Search the web.","parameters":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}}}]`
	// toolsSys is the system turn both templates render for searchTool
	// after "You are a helpful assistant.".
	toolsSys = "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
		`{"type": "function", "function": {"name": "search", "description": "Search the web.", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}` +
		"\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
	sysTurn  = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
	userQ    = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
	genP     = "<|im_start|>assistant\n"
	callX    = "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call>"
	respX    = "<|im_start|>user\n<tool_response>\nx is 42\n</tool_response><|im_end|>\n"
	askX     = `{"role":"user","content":"What is x?"}`
	userX    = "<|im_start|>user\nWhat is x?<|im_end|>\n"
	toolX    = `{"role":"tool","tool_call_id":"c1","content":"x is 42"}`
	callJSON = `"tool_calls":[{"id":"c1","type":"function","function":{"name":"search","arguments":"{\"query\":\"x\"}"}}]`
)

// renderViaTokenize renders body's conversation through POST /tokenize and
// decodes the IDs again, so that parsing, rendering and tokenisation are all
// exercised.
func renderViaTokenize(t *testing.T, s *Server, body string) string {
	t.Helper()
	r := post(t, s, "/tokenize", body)
	if r.code != 200 {
		t.Fatalf("/tokenize: %d %s", r.code, r.body)
	}
	ids := parseNode(t, r.body).ids(t, "tokens")
	d := post(t, s, "/detokenize", `{"tokens":`+string(appendInts(nil, ids))+`}`)
	return parseNode(t, d.body).s(t, "prompt")
}

func TestTemplates(t *testing.T) {
	for _, tc := range []struct {
		name, template, body, want string
	}{
		{
			"qwen3 first turn", TemplateQwen3,
			`{"messages":[` + sysHelpful + `,{"role":"user","content":"What is 2+2?"}]}`,
			sysTurn + userQ + genP,
		},
		{
			// §3.2: the reasoning of a turn before the last user query is dropped,
			// whether the client sends it back or not.
			"qwen3 think stripped on a new user query", TemplateQwen3,
			`{"messages":[` + sysHelpful + `,{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"The answer is 4.","reasoning":"Let me think."},{"role":"user","content":"And 3+3?"}]}`,
			sysTurn + userQ + "<|im_start|>assistant\nThe answer is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n" + genP,
		},
		{
			"qwen3 inline think split off an old turn", TemplateQwen3,
			`{"messages":[{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"<think>\nLet me think.\n</think>\n\nThe answer is 4."},{"role":"user","content":"And 3+3?"}]}`,
			userQ + "<|im_start|>assistant\nThe answer is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n" + genP,
		},
		{
			// §3.3 echoed: reasoning_content after the last query is kept.
			"qwen3 tool loop, reasoning echoed", TemplateQwen3,
			`{"tools":` + searchTool + `,"messages":[` + sysHelpful + `,` + askX + `,{"role":"assistant","content":"","reasoning_content":"I should search.",` + callJSON + `},` + toolX + `]}`,
			"<|im_start|>system\nYou are a helpful assistant." + toolsSys + userX + "<|im_start|>assistant\n<think>\nI should search.\n</think>\n\n" + callX + "<|im_end|>\n" + respX + genP,
		},
		{
			// §3.3 dropped: no reasoning, not the last message → no think block.
			"qwen3 tool loop, reasoning dropped", TemplateQwen3,
			`{"tools":` + searchTool + `,"messages":[` + sysHelpful + `,` + askX + `,{"role":"assistant","content":null,` + callJSON + `},` + toolX + `]}`,
			"<|im_start|>system\nYou are a helpful assistant." + toolsSys + userX + "<|im_start|>assistant\n" + callX + "<|im_end|>\n" + respX + genP,
		},
		{
			// §3.5: think whitespace normalised; content before the call adds "\n".
			"qwen3 think whitespace and content before a call", TemplateQwen3,
			`{"tools":` + searchTool + `,"messages":[` + askX + `,{"role":"assistant","content":"\n\n","reasoning":"\n\nI should search.\n\n",` + callJSON + `},` + toolX + `]}`,
			"<|im_start|>system\n" + toolsSys[2:] + userX + "<|im_start|>assistant\n<think>\nI should search.\n</think>\n\n\n" + callX + "<|im_end|>\n" + respX + genP,
		},
		{
			// §3.4: the empty think block is only in the generation prompt.
			"qwen3 enable_thinking=false", TemplateQwen3,
			`{"tools":` + searchTool + `,"chat_template_kwargs":{"enable_thinking":false},"messages":[` + sysHelpful + `,` + askX + `,{"role":"assistant","content":"",` + callJSON + `},` + toolX + `]}`,
			"<|im_start|>system\nYou are a helpful assistant." + toolsSys + userX + "<|im_start|>assistant\n" + callX + "<|im_end|>\n" + respX + genP + "<think>\n\n</think>\n\n",
		},
		{
			"qwen3 enable_thinking=0 is not false", TemplateQwen3,
			`{"chat_template_kwargs":{"enable_thinking":0},"messages":[{"role":"user","content":"What is 2+2?"}]}`,
			userQ + genP,
		},
		{
			"qwen3 last assistant message keeps an empty think block", TemplateQwen3,
			`{"messages":[{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"Four."}],"add_generation_prompt":false}`,
			userQ + "<|im_start|>assistant\n<think>\n\n</think>\n\nFour.<|im_end|>\n",
		},
		{
			"qwen3 continue_final_message", TemplateQwen3,
			`{"messages":[{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"Four","reasoning":"Easy."}],"add_generation_prompt":false,"continue_final_message":true}`,
			userQ + "<|im_start|>assistant\n<think>\nEasy.\n</think>\n\nFour",
		},
		{
			"qwen3 tool results grouped, multiple calls", TemplateQwen3,
			`{"tools":` + searchTool + `,"messages":[` + askX + `,{"role":"assistant","content":"Both.","tool_calls":[{"id":"a","type":"function","function":{"name":"search","arguments":"{\"query\":\"x\",\"n\":[1,2.50]}"}},{"id":"b","type":"function","function":{"name":"search","arguments":"\"raw é\""}}]},{"role":"tool","content":"one"},{"role":"tool","content":"two"}]}`,
			"<|im_start|>system\n" + toolsSys[2:] + userX + "<|im_start|>assistant\nBoth.\n" +
				"<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\", \"n\": [1, 2.5]}}\n</tool_call>\n" +
				"<tool_call>\n{\"name\": \"search\", \"arguments\": raw é}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\none\n</tool_response>\n<tool_response>\ntwo\n</tool_response><|im_end|>\n" + genP,
		},
		{
			"qwen3 tool-response user message is not a query", TemplateQwen3,
			`{"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":"A","reasoning":"R"},{"role":"user","content":"<tool_response>\nx\n</tool_response>"}]}`,
			"<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\nR\n</think>\n\nA<|im_end|>\n<|im_start|>user\n<tool_response>\nx\n</tool_response><|im_end|>\n" + genP,
		},
		{
			"qwen2.5 keeps history", TemplateQwen25,
			`{"messages":[` + sysHelpful + `,{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"<think>\nLet me think.\n</think>\n\nThe answer is 4.","reasoning":"ignored"},{"role":"user","content":"And 3+3?"}]}`,
			sysTurn + userQ + "<|im_start|>assistant\n<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>\n<|im_start|>user\nAnd 3+3?<|im_end|>\n" + genP,
		},
		{
			"qwen2.5 tool calls and grouped tool results", TemplateQwen25,
			`{"tools":` + searchTool + `,"messages":[` + askX + `,{"role":"assistant","content":"Let me check.","tool_calls":[{"id":"a","type":"function","function":{"name":"search","arguments":"{\"query\":\"x\"}"}},{"id":"b","type":"function","function":{"name":"search","arguments":"\"raw\""}}]},{"role":"tool","content":"one"},{"role":"tool","content":"two"}]}`,
			"<|im_start|>system\nYou are a helpful assistant." + toolsSys + userX + "<|im_start|>assistant\nLet me check.\n" + callX + "\n" +
				"<tool_call>\n{\"name\": \"search\", \"arguments\": \"raw\"}\n</tool_call><|im_end|>\n" +
				"<|im_start|>user\n<tool_response>\none\n</tool_response>\n<tool_response>\ntwo\n</tool_response><|im_end|>\n" + genP,
		},
		{
			"qwen2.5 call without content", TemplateQwen25,
			`{"messages":[` + sysHelpful + `,` + askX + `,{"role":"assistant","content":null,` + callJSON + `},` + toolX + `]}`,
			sysTurn + userX + "<|im_start|>assistant\n" + callX + "<|im_end|>\n" + respX + genP,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(Options{Template: tc.template})
			if got := renderViaTokenize(t, s, tc.body); got != tc.want {
				t.Errorf("rendered\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestQwen3Tokens(t *testing.T) {
	s := newSim(Options{Template: TemplateQwen3})
	got := s.Tokenize("<think>\n\n</think>\n\n<tool_response>x</tool_response>")
	want := []int64{tokThinkStart, s.Tokenize("\n\n")[0], tokThinkEnd, s.Tokenize("\n\n")[0], tokToolRespStart, s.Tokenize("x")[0], tokToolRespEnd}
	if !equalIDs(got, want) {
		t.Errorf("qwen3 IDs %v, want %v", got, want)
	}
	// In Qwen2.5 these are ordinary text.
	if ids := newSim(Options{}).Tokenize("<think>"); len(ids) == 1 {
		t.Errorf("qwen2.5 knows <think> as one token: %v", ids)
	}
}

func equalIDs(a, b []int64) bool {
	return strings.Trim(string(appendInts(nil, a)), "[]") == strings.Trim(string(appendInts(nil, b)), "[]")
}

func TestValidTemplate(t *testing.T) {
	for _, name := range []string{"", "qwen2.5", "qwen3"} {
		if err := ValidTemplate(name); err != nil {
			t.Errorf("ValidTemplate(%q): %v", name, err)
		}
	}
	if err := ValidTemplate("llama3"); err == nil || !strings.Contains(err.Error(), "llama3") {
		t.Errorf("ValidTemplate(llama3) = %v", err)
	}
	// New still works with an unknown name: qwen2.5.
	s := newSim(Options{Template: "llama3"})
	if got := s.RenderChat(nil, true); got != sysTurn+genP {
		t.Errorf("fallback rendering %q", got)
	}
}

func TestContinueFinalMessageMissing(t *testing.T) {
	// Qwen3 drops an old turn's reasoning: continuing a message whose text
	// the template removed is transformers' ValueError, a 400.
	s := newSim(Options{Template: TemplateQwen3})
	r := post(t, s, "/tokenize", `{"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":"<think>only</think>"}],"add_generation_prompt":false,"continue_final_message":true}`)
	if r.code != 400 || !strings.Contains(string(r.body), "continue_final_message is set") {
		t.Errorf("got %d %s", r.code, r.body)
	}
	r = post(t, s, "/tokenize", `{"messages":[{"role":"user","content":"Q"}],"chat_template_kwargs":[1]}`)
	if r.code != 400 || !strings.Contains(string(r.body), "chat_template_kwargs") {
		t.Errorf("chat_template_kwargs list: %d %s", r.code, r.body)
	}
}
