package vllmsim

import (
	"strings"
	"testing"
)

func TestAgentPolicy(t *testing.T) {
	search := []Tool{{Name: "search", Params: []string{"q", "n"}, Required: []string{"q"}}}
	ask := []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "What  is\nx?"}}
	withResult := append(append([]Message(nil), ask...),
		Message{Role: "assistant", ToolCalls: []ToolCall{{ID: "c", Name: "search", Arguments: `{"q": "What is x?"}`}}},
		Message{Role: "tool", Content: "x is 42.", ToolCallID: "c"})
	for _, tc := range []struct {
		name string
		req  PolicyRequest
		want []string // alternatives (pretty, compact)
	}{
		{"no tools", PolicyRequest{Messages: ask, Thinking: true}, []string{""}},
		{"tool_choice none", PolicyRequest{Messages: ask, Tools: search, ToolChoice: "none", Thinking: true}, []string{""}},
		{"call", PolicyRequest{Messages: ask, Tools: search, ToolChoice: "auto", Thinking: true}, []string{
			"<think>\nI should call search to answer this.\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"What is x?\"}}\n</tool_call>",
			"<think>\nI should call search to answer this.\n</think>\n\n<tool_call>\n{\"name\":\"search\",\"arguments\":{\"q\":\"What is x?\"}}\n</tool_call>",
		}},
		{"call, no required param, thinking off", PolicyRequest{Messages: ask, Tools: []Tool{{Name: "lookup"}}, ToolChoice: "auto"}, []string{
			"<tool_call>\n{\"name\": \"lookup\", \"arguments\": {\"query\": \"What is x?\"}}\n</tool_call>",
			"<tool_call>\n{\"name\":\"lookup\",\"arguments\":{\"query\":\"What is x?\"}}\n</tool_call>",
		}},
		{"answer after the result", PolicyRequest{Messages: withResult, Tools: search, ToolChoice: "auto", Thinking: true}, []string{
			"<think>\nThe tool says: x is 42. That answers the question.\n</think>\n\nThe answer is x is 42.",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for sample := 0; sample < 12; sample++ {
				r := tc.req
				r.Sample = sample
				got := AgentPolicy(r)
				ok := false
				for _, w := range tc.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("sample %d: %q", sample, got)
				}
				seen[got] = true
			}
			if len(seen) != len(tc.want) {
				t.Errorf("saw %d variants over 12 samples, want %d", len(seen), len(tc.want))
			}
		})
	}
}

func TestDemoPolicy(t *testing.T) {
	r1 := []Message{{Role: "user", Content: strings.Replace(searchR1Prompt, "%s", "What is the capital of France?", 1)}}
	if got, want := DemoPolicy(PolicyRequest{Messages: r1}), SearchR1Policy(r1, 0); got != want || got == "" {
		t.Errorf("Search-R1 conversation: %q, want %q", got, want)
	}
	req := PolicyRequest{Messages: []Message{{Role: "user", Content: "hi"}}, Tools: []Tool{{Name: "f"}}, ToolChoice: "auto"}
	if got := DemoPolicy(req); got != AgentPolicy(req) || !strings.Contains(got, `"f"`) {
		t.Errorf("tool conversation: %q", got)
	}
	// Through the server: the policy sees the tools and the thinking switch.
	s := newSim(Options{Template: TemplateQwen3, AgentPolicy: DemoPolicy})
	n := parseNode(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"hi"}],"tools":`+searchTool+`,"chat_template_kwargs":{"enable_thinking":false}}`).body)
	if !n.isNull("choices.0.message.reasoning") || n.s(t, "choices.0.message.tool_calls.0.function.arguments") != `{"query": "hi"}` {
		t.Errorf("response %s", shape(n.at("choices.0.message")))
	}
}

func TestShellPolicy(t *testing.T) {
	bash := Tool{Name: "Bash", Params: []string{"command", "timeout", "description"}, Required: []string{"command"}}
	exec := Tool{Name: "exec_command", Params: []string{"cmd", "workdir"}, Required: []string{"cmd"}}
	other := Tool{Name: "Read", Params: []string{"file_path"}, Required: []string{"file_path"}}
	ask := []Message{{Role: "system", Content: "S"}, {Role: "user", Content: "Run `echo hello-tokentap` and tell me what it printed."}}
	result := func(tool, args string) []Message {
		return append(append([]Message(nil), ask...),
			Message{Role: "assistant", ToolCalls: []ToolCall{{ID: "c1", Name: tool, Arguments: args}}},
			Message{Role: "tool", Content: "hello-tokentap\n", ToolCallID: "c1"})
	}
	answered := append(result("Bash", `{"command": "echo hello-tokentap"}`), Message{Role: "assistant", Content: "done"})
	for _, tc := range []struct {
		name string
		req  PolicyRequest
		want string
	}{
		{"Claude Code's Bash among others", PolicyRequest{Messages: ask, Tools: []Tool{other, bash}, ToolChoice: "auto"},
			"<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"echo hello-tokentap\"}}\n</tool_call>"},
		{"Codex's exec_command, thinking", PolicyRequest{Messages: ask, Tools: []Tool{exec}, ToolChoice: "auto", Thinking: true, Template: TemplateQwen3},
			"<think>\nI should run `echo hello-tokentap` with exec_command.\n</think>\n\n<tool_call>\n{\"name\": \"exec_command\", \"arguments\": {\"cmd\": \"echo hello-tokentap\"}}\n</tool_call>"},
		{"a tool of the user's own with a command parameter", PolicyRequest{Messages: ask, Tools: []Tool{{Name: "sh", Required: []string{"command"}}}},
			"<tool_call>\n{\"name\": \"sh\", \"arguments\": {\"command\": \"echo hello-tokentap\"}}\n</tool_call>"},
		{"the result quoted", PolicyRequest{Messages: result("Bash", `{"command": "echo hello-tokentap"}`), Tools: []Tool{bash}},
			"The command `echo hello-tokentap` printed:\n\nhello-tokentap"},
		{"Claude Code's system reminders before the question", PolicyRequest{Messages: []Message{{Role: "user", Content: "<system-reminder>\n" +
			"a planted `json.py` runs on `import json`\n</system-reminder>\n<system-reminder>\nmore `x`\n</system-reminder>\n" + ask[1].Content}},
			Tools: []Tool{bash}}, "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"echo hello-tokentap\"}}\n</tool_call>"},
		{"only reminders hold backticks", PolicyRequest{Messages: []Message{{Role: "user", Content: "<system-reminder>`ls`</system-reminder> hello"}}, Tools: []Tool{bash}}, ""},
		{"the result quoted without Claude Code's reminder", PolicyRequest{Messages: append(append([]Message(nil), ask...),
			Message{Role: "assistant", ToolCalls: []ToolCall{{ID: "c1", Name: "Bash", Arguments: `{"command": "echo hello-tokentap"}`}}},
			Message{Role: "tool", Content: "hello-tokentap\n\n<system-reminder>\n<total_tokens>9 tokens left</total_tokens>\n</system-reminder>", ToolCallID: "c1"}),
			Tools: []Tool{bash}}, "The command `echo hello-tokentap` printed:\n\nhello-tokentap"},
		{"answered already", PolicyRequest{Messages: answered, Tools: []Tool{bash}}, ""},
		{"no shell tool", PolicyRequest{Messages: ask, Tools: []Tool{other}}, ""},
		{"no command", PolicyRequest{Messages: []Message{{Role: "user", Content: "hello"}}, Tools: []Tool{bash}}, ""},
		{"a fence is not a command", PolicyRequest{Messages: []Message{{Role: "user", Content: "```go\nx := 1\n```"}}, Tools: []Tool{bash}}, ""},
		{"tool_choice none", PolicyRequest{Messages: ask, Tools: []Tool{bash}, ToolChoice: "none"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ShellPolicy(tc.req); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
	// DemoPolicy prefers the shell round trip to AgentPolicy's generic call.
	req := PolicyRequest{Messages: ask, Tools: []Tool{other, bash}, ToolChoice: "auto"}
	if got := DemoPolicy(req); got != ShellPolicy(req) {
		t.Errorf("DemoPolicy: %q", got)
	}
}
