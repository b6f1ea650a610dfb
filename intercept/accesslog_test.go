package intercept

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
)

// lockedBuffer collects log lines written from the proxy's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// With the access log on, every traced call gets one info line with its
// key, model, outcome, tokens, duration and trace id, and neither its
// content nor the agent's credentials; with it off, none at info.
func TestAccessLog(t *testing.T) {
	for _, on := range []bool{true, false} {
		var logs lockedBuffer
		logger := zerolog.New(&logs).Level(zerolog.InfoLevel)
		r := newRig(t, rigOptions{logger: &logger, accessLog: on})
		const secret, content = "sk-agent-secret", "a very private question"
		for _, stream := range []string{"false", "true"} {
			status, _, _ := post(t, r.front.URL, "/rollout/log/attempt/0/v1/chat/completions",
				`{"model":"`+model+`","messages":[{"role":"user","content":"`+content+`"}],"stream":`+stream+`}`,
				"Authorization", "Bearer "+secret)
			if status != 200 {
				t.Fatalf("status %d", status)
			}
		}
		var calls []map[string]any
		for _, l := range logs.lines(t) {
			if l["message"] == "call" {
				calls = append(calls, l)
			}
		}
		if !on {
			if len(calls) != 0 {
				t.Errorf("access log off, yet %d call lines", len(calls))
			}
			continue
		}
		if len(calls) != 2 {
			t.Fatalf("%d call lines, want 2:\n%s", len(calls), logs.buf.String())
		}
		for i, l := range calls {
			if l["level"] != "info" || l["rollout_id"] != "log" || l["attempt_id"] != "0" || l["seq"] != float64(i+1) ||
				l["dialect"] != "openai.chat" || l["model"] != model || l["status"] != "ok" || l["http_status"] != float64(200) ||
				l["tokens_in"].(float64) <= 0 || l["tokens_out"].(float64) <= 0 || len(l["trace_id"].(string)) != 32 || l["duration_ms"] == nil {
				t.Errorf("line %d: %v", i, l)
			}
		}
		if s := logs.buf.String(); strings.Contains(s, secret) || strings.Contains(s, content) {
			t.Errorf("the log holds content or credentials:\n%s", s)
		}
	}
}
