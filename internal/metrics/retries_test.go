package metrics

import (
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

// A retry of a request that never reached its replica and one sent again
// after it was written are counted apart.
func TestRetriesCountedByKind(t *testing.T) {
	m := New(Sources{})
	m.ObserveRetry("vllm-1:8000", "not_sent")
	m.ObserveRetry("vllm-1:8000", "not_sent")
	m.ObserveRetry("vllm-2:8000", "after_write")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`tokentap_upstream_retries_total{upstream="vllm-1:8000"} 2`,
		`tokentap_upstream_retries_after_write_total{upstream="vllm-2:8000"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("no %s in\n%s", want, body)
		}
	}
	if strings.Contains(string(body), `tokentap_upstream_retries_total{upstream="vllm-2:8000"}`) {
		t.Errorf("a retry after the write counted as one before:\n%s", body)
	}
}
