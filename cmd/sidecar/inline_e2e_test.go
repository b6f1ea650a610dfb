package main

import (
	"net/http"
	"strings"
	"testing"
)

// --anthropic-inline-system places the role:"system" messages Claude Code
// puts inside "messages" as the deployed vLLM does: in place as system turns
// (preserve, the default), or folded into the next user turn (fold).
func TestAnthropicInlineSystem(t *testing.T) {
	sim, simSrv := simWithShell(t)
	const body = `{"model":"claude-sonnet-4-5","max_tokens":4,"system":"Be brief.","messages":[` +
		`{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"},` +
		`{"role":"system","content":"Mind the budget."},{"role":"user","content":"Q2"}]}`
	for _, tc := range []struct {
		args []string
		want string // in the rendered prompt
	}{
		{nil, "<|im_start|>system\nMind the budget.<|im_end|>\n<|im_start|>user\nQ2<|im_end|>"},
		{[]string{"--anthropic-inline-system", "fold"}, "<|im_start|>user\nMind the budget.\n\nQ2<|im_end|>"},
	} {
		sc := start(t, append([]string{"--upstream", simSrv.URL, "--in-memory", "--model-map", "claude-*=" + simModel}, tc.args...)...)
		if status, answer := postJSON(t, sc.url+"/rollout/inline/attempt/0/v1/messages", body); status != http.StatusOK {
			t.Fatalf("%v: %d %s", tc.args, status, answer)
		}
		var view dialectCalls
		getJSON(t, sc.url+"/api/v1/rollouts/inline/attempts/0/calls", &view)
		if len(view.Calls) != 1 || !view.Calls[0].TokenIDsValid {
			t.Fatalf("%v: calls %+v", tc.args, view.Calls)
		}
		if prompt := sim.Detokenize(view.Calls[0].PromptTokenIDs); !strings.Contains(prompt, tc.want) {
			t.Errorf("%v: the prompt has no %q:\n%s", tc.args, tc.want, prompt)
		}
	}
}
