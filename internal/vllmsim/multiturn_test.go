package vllmsim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// turnResult is the part of a chat response a client keeps.
type turnResult struct {
	PromptTokenIDs []int64 `json:"prompt_token_ids"`
	Choices        []struct {
		Message  map[string]any `json:"message"`
		TokenIDs []int64        `json:"token_ids"`
	} `json:"choices"`
}

func postChat(t *testing.T, url string, req map[string]any) turnResult {
	t.Helper()
	req["return_token_ids"] = true
	body, _ := json.Marshal(req)
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out turnResult
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// firstDiff is the first index where a and b differ (len of the shorter
// when one is a prefix of the other).
func firstDiff(a, b []int64) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// TestMultiTurnDrift runs two turns of a conversation over HTTP, the client
// sending back the assistant message it received, and checks where turn 2's
// prompt leaves turn 1's context C = prompt_token_ids ++ token_ids.
func TestMultiTurnDrift(t *testing.T) {
	sys := map[string]any{"role": "system", "content": "You are a helpful assistant."}
	user := map[string]any{"role": "user", "content": "What is x?"}
	for _, tc := range []struct {
		name     string
		opts     Options
		tools    bool
		echo     func(msg map[string]any) map[string]any // the assistant message the client sends back
		next     []map[string]any                        // appended after it
		extends  bool
		atThink  bool // the first difference is C's <think> at len(P1)
		merged   bool // ... one token earlier (see below)
		inCallAt bool // the first difference is inside the <tool_call> span
	}{
		{
			name: "qwen2.5 new user query: extends", opts: Options{Policy: thinkPolicy},
			echo: keep("role", "content"), next: []map[string]any{{"role": "user", "content": "And y?"}},
			extends: true,
		},
		{
			name: "qwen3 new user query: think stripped", opts: Options{Template: TemplateQwen3, Policy: thinkPolicy},
			echo: keep("role", "content", "reasoning"), next: []map[string]any{{"role": "user", "content": "And y?"}},
			atThink: true, merged: true,
		},
		{
			// §3.2: the client strips the content it shows.
			name: "qwen3 new user query, stripped content: think stripped", opts: Options{Template: TemplateQwen3, Policy: thinkPolicy},
			echo: func(m map[string]any) map[string]any {
				return map[string]any{"role": "assistant", "content": strings.TrimSpace(m["content"].(string))}
			},
			next:    []map[string]any{{"role": "user", "content": "And y?"}},
			atThink: true,
		},
		{
			name: "qwen3 built-in generator: think stripped", opts: Options{Template: TemplateQwen3},
			echo: keep("role", "content"), next: []map[string]any{{"role": "user", "content": "And y?"}},
			atThink: true, merged: true,
		},
		{
			name: "qwen3 tool loop, reasoning dropped", opts: Options{Template: TemplateQwen3, AgentPolicy: AgentPolicy}, tools: true,
			echo: keep("role", "content", "tool_calls"), next: []map[string]any{{"role": "tool", "tool_call_id": "c", "content": "x is 42"}},
			atThink: true, merged: true,
		},
		{
			name: "qwen3 tool loop, reasoning echoed, content null: extends", opts: Options{Template: TemplateQwen3, AgentPolicy: AgentPolicy}, tools: true,
			echo: func(m map[string]any) map[string]any {
				return map[string]any{"role": "assistant", "content": nil, "reasoning": m["reasoning"], "tool_calls": m["tool_calls"]}
			},
			next:    []map[string]any{{"role": "tool", "tool_call_id": "c", "content": "x is 42"}},
			extends: true,
		},
		{
			name: "qwen3 tool loop, compact arguments re-serialised", tools: true,
			opts: Options{Template: TemplateQwen3, AgentPolicy: func(r PolicyRequest) string {
				return "<think>\nI should search.\n</think>\n\n<tool_call>\n{\"name\":\"search\",\"arguments\":{\"query\":\"x\"}}\n</tool_call>"
			}},
			echo: func(m map[string]any) map[string]any {
				return map[string]any{"role": "assistant", "content": "", "reasoning": m["reasoning"], "tool_calls": m["tool_calls"]}
			},
			next:     []map[string]any{{"role": "tool", "tool_call_id": "c", "content": "x is 42"}},
			inCallAt: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(New(tc.opts))
			defer srv.Close()
			msgs := []map[string]any{sys, user}
			req := map[string]any{"messages": msgs}
			if tc.tools {
				var tools any
				_ = json.Unmarshal([]byte(searchTool), &tools)
				req["tools"] = tools
			}
			r1 := postChat(t, srv.URL, req)
			c := append(append([]int64(nil), r1.PromptTokenIDs...), r1.Choices[0].TokenIDs...)
			req["messages"] = append(append(msgs, tc.echo(r1.Choices[0].Message)), tc.next...)
			p2 := postChat(t, srv.URL, req).PromptTokenIDs
			d := firstDiff(c, p2)
			switch {
			case tc.extends:
				if d != len(c) {
					t.Fatalf("turn 2 prompt leaves the context at %d of %d", d, len(c))
				}
			case tc.atThink:
				// C continues the prompt with <think>; the re-render drops the
				// block. When the client echoes vLLM's content ("\n\n..."),
				// the generation prompt's "\n" and that "\n\n" merge into one
				// "\n\n\n" token (as in Qwen's BPE), one token earlier.
				p1 := len(r1.PromptTokenIDs)
				want := p1
				if tc.merged {
					want = p1 - 1
				}
				if d != want || c[p1] != tokThinkStart {
					t.Fatalf("first difference at %d (P1 has %d tokens), C[P1]=%d", d, p1, c[p1])
				}
			case tc.inCallAt:
				p1 := len(r1.PromptTokenIDs)
				start := p1 + slices.Index(c[p1:], tokToolCallStart)
				end := p1 + slices.Index(c[p1:], tokToolCallEnd)
				if d <= start || d >= end {
					t.Fatalf("first difference at %d, tool call spans [%d, %d]", d, start, end)
				}
			}
		})
	}
}

// keep returns an echo function that copies the named fields.
func keep(fields ...string) func(map[string]any) map[string]any {
	return func(m map[string]any) map[string]any {
		out := map[string]any{}
		for _, f := range fields {
			if v, ok := m[f]; ok && v != nil {
				out[f] = v
			}
		}
		return out
	}
}
