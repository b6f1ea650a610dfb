package intercept

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/rollout"
)

// An answer past the read bounds (an SSE event past maxEvent, a JSON body
// past maxResponse) reaches the agent exactly as vLLM would have sent it
// without tokentap (the injected fields stripped on the fly), is recorded
// with its IDs marked missing, and is committed before the agent's last
// byte. An agent that asked for the IDs gets them.
func TestAnswersPastTheReadBounds(t *testing.T) {
	tests := []struct {
		name      string
		stream    bool
		fault     string
		askForIDs bool
		opts      rigOptions
	}{
		{name: "SSE event", stream: true, fault: vllmsim.FaultBigEvent, opts: rigOptions{maxEvent: 1 << 20}},
		{name: "SSE event, IDs asked for", stream: true, fault: vllmsim.FaultBigEvent, askForIDs: true, opts: rigOptions{maxEvent: 1 << 20}},
		{name: "JSON body", opts: rigOptions{maxResponse: 300}},
		{name: "JSON body, IDs asked for", askForIDs: true, opts: rigOptions{maxResponse: 300}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := newCommitGate(nil)
			tt.opts.beforeCommit = gate.beforeCommit
			r := newRig(t, tt.opts)
			body := fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"tell me a long story"}],"stream":%v,"max_tokens":200}`, model, tt.stream)
			if tt.askForIDs {
				body = withTokenIDs(body)
			}
			hdr := []string{"X-Request-Id", "big"}
			if tt.fault != "" {
				hdr = append(hdr, "X-Vllmsim-Fault", tt.fault)
			}
			_, direct, err := rawPost(t, r.sim.URL+"/v1/chat/completions", body, hdr...)
			if err != nil {
				t.Fatal(err)
			}
			if len(direct) < 600 {
				t.Fatalf("the direct answer is only %d bytes: not past the bound", len(direct))
			}

			gate.armed.Store(true)
			type answer struct {
				status int
				body   []byte
				err    error
			}
			got := make(chan answer, 1)
			go func() {
				req, _ := http.NewRequest(http.MethodPost, r.front.URL+"/rollout/big/attempt/0/v1/chat/completions", strings.NewReader(body))
				for i := 0; i+1 < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- answer{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				got <- answer{resp.StatusCode, b, err}
			}()
			select {
			case <-gate.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the call never reached the store")
			}
			select {
			case a := <-got:
				t.Fatalf("the agent had the whole answer (%d bytes) while the commit was pending", len(a.body))
			case <-time.After(200 * time.Millisecond):
			}
			gate.armed.Store(false)
			close(gate.release)
			a := <-got
			if a.err != nil || a.status != http.StatusOK {
				t.Fatalf("agent got %d, %v", a.status, a.err)
			}
			if !bytes.Equal(a.body, direct) {
				t.Errorf("agent got %d bytes, vLLM alone sends %d:\n got %q\nwant %q", len(a.body), len(direct), trunc(a.body), trunc(direct))
			}
			if err := r.proxy.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			calls := r.calls(t, rollout.Key{RolloutID: "big", AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			c := calls[0]
			if c.Status != exporter.StatusOK || c.Valid || !strings.Contains(c.Problem, "not read") {
				t.Errorf("recorded status %s valid %v problem %q, want ok, IDs marked missing", c.Status, c.Valid, c.Problem)
			}
		})
	}
}
