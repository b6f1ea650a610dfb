package intercept

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
)

// A panic at any stage of an exchange costs that call only: the agent gets
// a 500 (or, once the answer has begun, a cut connection rather than an
// answer that looks whole), the call is recorded as an error with status
// 500, its counts are released, and completing its attempt does not hang.
func TestPanicAtEveryStageRecordsTheCall(t *testing.T) {
	tests := []struct {
		stage  string
		stream bool
		// cut: the answer had begun, so the agent sees a broken body.
		cut bool
	}{
		{stage: stageRequest},
		{stage: stageForward},
		{stage: stageResponse},
		{stage: stageResponse, stream: true},
		{stage: stageEvent, stream: true, cut: true},
		{stage: stageRecord},
		{stage: stageRecord, stream: true, cut: true},
	}
	for _, tt := range tests {
		name := tt.stage
		if tt.stream {
			name += "/stream"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t, rigOptions{stageHook: func(stage string) {
				if stage == tt.stage {
					panic("injected bug at " + stage)
				}
			}})
			key := rollout.Key{RolloutID: "panic", AttemptID: "0"}
			body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]`
			if tt.stream {
				body += `,"stream":true`
			}
			status, got, readErr := rawPost(t, r.front.URL+"/rollout/panic/attempt/0/v1/chat/completions", body+"}")
			switch {
			case tt.cut:
				if readErr == nil {
					t.Errorf("the agent read a whole answer after a panic mid-stream: %d %s", status, got)
				}
			case status != http.StatusInternalServerError || !isOpenAIError(got, http.StatusInternalServerError):
				t.Errorf("agent got %d %s, want a 500 in the OpenAI shape", status, got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := r.proxy.Wait(ctx); err != nil {
				t.Fatalf("the call never left the books: %v", err)
			}
			calls := r.calls(t, key)
			if len(calls) != 1 {
				t.Fatalf("recorded %d calls, want 1", len(calls))
			}
			c := calls[0]
			if c.Status != exporter.StatusError || c.HTTPStatus != http.StatusInternalServerError || c.ErrorType != "internal_error" || c.Valid {
				t.Errorf("recorded status=%s http=%d type=%q valid=%v, want error 500 internal_error invalid", c.Status, c.HTTPStatus, c.ErrorType, c.Valid)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.front.URL+"/rollout/panic/attempt/0/complete", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("complete: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"calls":1`) {
				t.Errorf("complete answered %d %s", resp.StatusCode, b)
			}
			for _, rep := range r.upstreams.State() {
				if rep.InFlight != 0 {
					t.Errorf("replica %s still counts %d calls in flight", rep.URL, rep.InFlight)
				}
			}
		})
	}
}
