package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/tokenids"
)

// Calls are counted by the dialect the agent spoke as well as by the
// operation sent upstream: Claude Code's Messages calls and Codex's
// Responses calls are chat calls to vLLM, and an operator tells them apart.
func TestCallsCountedByDialect(t *testing.T) {
	m := New(Sources{})
	start := time.Now()
	for _, d := range []string{exporter.DialectOpenAIChat, exporter.DialectAnthropicMessages, exporter.DialectAnthropicMessages, exporter.DialectOpenAIResponses} {
		m.ObserveCall(&exporter.Call{Dialect: d, Request: tokenids.Request{Endpoint: tokenids.Chat}, Status: exporter.StatusOK,
			HTTPStatus: 200, Upstream: "vllm-0:8000", Start: start, End: start.Add(time.Second), Valid: true}, nil)
	}
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tokentap_calls_total{dialect="openai.chat",http_status="200",operation="chat",status="ok",upstream="vllm-0:8000"} 1`,
		`tokentap_calls_total{dialect="anthropic.messages",http_status="200",operation="chat",status="ok",upstream="vllm-0:8000"} 2`,
		`tokentap_calls_total{dialect="openai.responses",http_status="200",operation="chat",status="ok",upstream="vllm-0:8000"} 1`,
		`tokentap_call_duration_seconds_count{dialect="anthropic.messages",operation="chat",upstream="vllm-0:8000"} 2`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
}
