package intercept

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// Every stream is checked against vLLM's usage: tokentap turns
// include_usage on when the agent did not, records the checks that ran, and
// keeps the usage chunk from an agent that did not ask for it.
func TestEveryStreamCheckedAgainstUsage(t *testing.T) {
	tests := []struct {
		name      string
		options   string
		wantUsage bool // the agent gets the usage chunk
	}{
		{name: "agent did not ask", options: ``},
		{name: "agent turned it off", options: `,"stream_options":{"include_usage":false}`},
		{name: "agent asked", options: `,"stream_options":{"include_usage":true}`, wantUsage: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			_, _, got := post(t, r.front.URL, "/rollout/usage/attempt/0/v1/chat/completions",
				`{"model":"`+model+`","messages":[{"role":"user","content":"count"}],"stream":true`+tt.options+`}`)
			if has := bytes.Contains(got, []byte(`"choices":[],"usage"`)); has != tt.wantUsage {
				t.Errorf("agent got the usage chunk: %v, want %v\n%s", has, tt.wantUsage, got)
			}
			calls := r.calls(t, rollout.Key{RolloutID: "usage", AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("case %d: %d calls", i, len(calls))
			}
			c := calls[0]
			if !c.Valid || c.Response.Usage == nil {
				t.Fatalf("valid %v (%s), usage %v", c.Valid, c.Problem, c.Response.Usage)
			}
			for _, check := range []string{tokenids.CheckIDsPresent, tokenids.CheckPromptCount, tokenids.CheckCompletionCount} {
				if !slices.Contains(c.Checks, check) {
					t.Errorf("checks %v lack %s", c.Checks, check)
				}
			}
		})
	}
}
