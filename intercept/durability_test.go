package intercept

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/metrics"
	"github.com/tokentap/tokentap/rollout"
)

// commitGate is a store commit seam: while armed, a commit waits for
// release (or fails with fail).
type commitGate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	fail    error
}

func newCommitGate(fail error) *commitGate {
	return &commitGate{entered: make(chan struct{}, 16), release: make(chan struct{}), fail: fail}
}

func (g *commitGate) beforeCommit() error {
	if !g.armed.Load() {
		return nil
	}
	if g.fail != nil {
		return g.fail
	}
	g.entered <- struct{}{}
	<-g.release
	return nil
}

// sendRaw writes a chat request on a fresh connection and returns it with
// a reader of the answer.
func sendRaw(t *testing.T, front, path, body string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(front, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: sidecar\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", path, len(body), body)
	return conn, bufio.NewReader(conn)
}

// readFor reads what arrives within d.
func readFor(conn net.Conn, br *bufio.Reader, d time.Duration) []byte {
	conn.SetReadDeadline(time.Now().Add(d))
	defer conn.SetReadDeadline(time.Time{})
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			return got.Bytes()
		}
	}
}

// While a call's commit is pending the agent does not have the last byte
// of its answer: no byte at all of a JSON answer, no "data: [DONE]" of a
// stream. Once the commit returns, the answer follows whole.
func TestPendingCommitHoldsTheLastByte(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			gate := newCommitGate(nil)
			r := newRig(t, rigOptions{beforeCommit: gate.beforeCommit})
			gate.armed.Store(true)
			body := fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"hold"}],"stream":%v}`, model, stream)
			conn, br := sendRaw(t, r.front.URL, "/rollout/hold/attempt/0/v1/chat/completions", body)
			select {
			case <-gate.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the call never reached the store")
			}
			early := readFor(conn, br, 300*time.Millisecond)
			if !stream && len(early) != 0 {
				t.Errorf("the agent got %q of a JSON answer while its commit was pending", early)
			}
			if stream && bytes.Contains(early, []byte("[DONE]")) {
				t.Errorf("the agent got [DONE] while the commit was pending: %q", early)
			}
			if n := len(r.calls(t, rollout.Key{RolloutID: "hold", AttemptID: "0"})); n != 0 {
				t.Fatalf("the store holds %d calls before the commit", n)
			}
			gate.armed.Store(false)
			close(gate.release)
			rest, _ := io.ReadAll(br)
			all := string(early) + string(rest)
			if !strings.HasPrefix(all, "HTTP/1.1 200") {
				t.Fatalf("answer %q", all)
			}
			if stream && !strings.HasSuffix(strings.TrimRight(all, "\r\n0"), "data: [DONE]") {
				t.Errorf("stream tail %q", all[max(0, len(all)-80):])
			}
			if !stream && !strings.Contains(all, `"choices"`) {
				t.Errorf("JSON answer %q", all)
			}
		})
	}
}

// A commit that fails withholds the answer: a JSON call gets 503 in the
// OpenAI shape, a stream ends with an error event and no [DONE], and the
// failure is counted in /metrics.
func TestFailedCommitWithholdsTheAnswer(t *testing.T) {
	gate := newCommitGate(errors.New("injected commit failure"))
	m := metrics.New(metrics.Sources{})
	r := newRig(t, rigOptions{beforeCommit: gate.beforeCommit, observer: m})
	gate.armed.Store(true)

	status, got, _ := rawPost(t, r.front.URL+"/rollout/fail/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"a"}]}`)
	if status != http.StatusServiceUnavailable || !isOpenAIError(got, http.StatusServiceUnavailable) || bytes.Contains(got, []byte("choices")) {
		t.Errorf("JSON: %d %s", status, got)
	}

	status, got, _ = rawPost(t, r.front.URL+"/rollout/fail/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"b"}],"stream":true}`)
	if status != http.StatusOK || bytes.Contains(got, []byte("[DONE]")) {
		t.Errorf("stream: %d, tail %q", status, got[max(0, len(got)-200):])
	}
	events := bytes.Split(bytes.TrimSpace(got), []byte("\n\n"))
	last := bytes.TrimPrefix(events[len(events)-1], []byte("data: "))
	if !isOpenAIError(last, http.StatusServiceUnavailable) {
		t.Errorf("the stream's last event is %q, want an OpenAI-shaped error", last)
	}

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if !strings.Contains(rec.Body.String(), "tokentap_record_errors_total 2\n") {
		t.Errorf("/metrics does not count the two failed commits:\n%s", grepLines(rec.Body.String(), "record_errors"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
