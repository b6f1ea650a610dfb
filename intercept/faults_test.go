package intercept

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/rollout"
)

// isOpenAIError reports whether a body is tokentap's OpenAI-shaped error.
func isOpenAIError(body []byte, code int) bool {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error.Code == code && e.Error.Message != "" && e.Error.Type != ""
}

// rawPost posts and returns what the client got, even a broken body.
func rawPost(t *testing.T, url, body string, header ...string) (status int, got []byte, readErr error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	got, readErr = io.ReadAll(resp.Body)
	return resp.StatusCode, got, readErr
}

// A broken upstream: the agent gets the upstream's bytes (or, when there
// are none to give, an OpenAI-shaped error), and the call is recorded with
// what went wrong.
func TestBrokenUpstreams(t *testing.T) {
	tests := []struct {
		fault      string
		stream     bool
		status     exporter.Status
		errType    string
		valid      bool
		sameBytes  bool // the agent gets exactly the direct answer
		brokenConn bool // the agent's connection is dropped, as the upstream's was
		sameData   bool // the agent gets the direct answer's data lines (comments and ids may differ)
		malformed  bool // the agent gets the upstream's broken answer, as it came
		agentCode  int  // otherwise: the agent gets this OpenAI-shaped error
	}{
		{fault: vllmsim.FaultMalformedJSON, status: exporter.StatusError, errType: "upstream_malformed", malformed: true},
		{fault: vllmsim.FaultMalformedJSON, stream: true, status: exporter.StatusError, errType: "upstream_malformed", malformed: true},
		{fault: vllmsim.FaultNoDone, stream: true, status: exporter.StatusError, errType: "stream_incomplete", sameBytes: true},
		{fault: vllmsim.FaultCRLF, stream: true, status: exporter.StatusOK, valid: true, sameBytes: true},
		{fault: vllmsim.FaultSplit, stream: true, status: exporter.StatusOK, valid: true, sameBytes: true},
		// The simulator numbers the usage chunk tokentap asks for (and
		// drops) too, and the comment before it stays: only the data lines
		// are the same.
		{fault: vllmsim.FaultComments, stream: true, status: exporter.StatusOK, valid: true, sameData: true},
		{fault: vllmsim.FaultBigEvent, stream: true, status: exporter.StatusOK, valid: true, sameBytes: true},
		{fault: vllmsim.FaultCloseMidway, stream: true, status: exporter.StatusError, errType: "upstream_broken", brokenConn: true},
		{fault: vllmsim.FaultCloseMidway, status: exporter.StatusError, errType: "upstream_broken", agentCode: 502},
		{fault: vllmsim.FaultRedirect, status: exporter.StatusError, errType: "http_302", sameBytes: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/stream=%v", tt.fault, tt.stream), func(t *testing.T) {
			r := newRig(t, rigOptions{})
			body := fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"hi"}],"stream":%v,"max_tokens":12}`, model, tt.stream)
			hdr := []string{"X-Vllmsim-Fault", tt.fault, "X-Request-Id", "f"}
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			do := func(url string) (int, []byte, error) {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				for i := 0; i < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := client.Do(req)
				if err != nil {
					return 0, nil, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				return resp.StatusCode, b, err
			}
			dStatus, direct, _ := do(r.sim.URL + "/v1/chat/completions")
			status, got, readErr := do(r.front.URL + "/rollout/b/attempt/0/v1/chat/completions")
			switch {
			case tt.sameBytes:
				if readErr != nil || status != dStatus || !bytes.Equal(got, direct) {
					t.Errorf("agent got %d %q (%v), direct %d %q", status, trunc(got), readErr, dStatus, trunc(direct))
				}
			case tt.sameData:
				if readErr != nil || status != dStatus || !bytes.Equal(dataLines(got), dataLines(direct)) {
					t.Errorf("agent got %d %q (%v), direct %d %q", status, trunc(got), readErr, dStatus, trunc(direct))
				}
			case tt.malformed && !tt.stream:
				// A body that does not parse cannot be stripped: it goes on
				// as the upstream sent it, and fails the agent's parser too.
				if readErr != nil || status != 200 || json.Valid(got) || !bytes.HasPrefix(got, direct[:100]) {
					t.Errorf("agent got %d %q", status, trunc(got))
				}
			case tt.malformed:
				// Every event but the broken one is what vLLM sends without
				// tokentap; the broken one is passed on as it came.
				g, d := bytes.Split(got, []byte("\n\n")), bytes.Split(direct, []byte("\n\n"))
				if len(g) != len(d) {
					t.Fatalf("%d events, direct %d", len(g), len(d))
				}
				for i := range g {
					if i != 1 && !bytes.Equal(g[i], d[i]) {
						t.Errorf("event %d: %q, direct %q", i, trunc(g[i]), trunc(d[i]))
					}
				}
			case tt.brokenConn:
				if readErr == nil || !bytes.HasPrefix(direct, got[:min(len(got), 100)]) || bytes.Contains(got, []byte("[DONE]")) {
					t.Errorf("agent read %q, err %v: want the upstream's bytes, then a dropped connection", trunc(got), readErr)
				}
			default:
				if status != tt.agentCode || !isOpenAIError(got, tt.agentCode) {
					t.Errorf("agent got %d %s", status, got)
				}
			}
			if err := r.proxy.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			calls := r.calls(t, rollout.Key{RolloutID: "b", AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			c := calls[0]
			if c.Status != tt.status || c.ErrorType != tt.errType || c.Valid != tt.valid {
				t.Errorf("recorded status %s type %q valid %v (%s), want %s %q %v", c.Status, c.ErrorType, c.Valid, c.Problem, tt.status, tt.errType, tt.valid)
			}
		})
	}
}

// dataLines keeps the data lines of an SSE stream.
func dataLines(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if bytes.HasPrefix(l, []byte("data:")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return append(b[:200:200], "…"...)
	}
	return b
}

// An upstream that does not answer: with --upstream-timeout the agent gets a
// 504; without it, a client that gives up leaves a cancelled call.
func TestUpstreamHangs(t *testing.T) {
	r := newRig(t, rigOptions{upstreamTimeout: 300 * time.Millisecond})
	status, got, _ := rawPost(t, r.front.URL+"/rollout/h/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`, "X-Vllmsim-Fault", vllmsim.FaultHang)
	if status != 504 || !isOpenAIError(got, 504) {
		t.Errorf("agent got %d %s", status, got)
	}
	c := r.calls(t, rollout.Key{RolloutID: "h", AttemptID: "0"})[0]
	if c.Status != exporter.StatusError || c.HTTPStatus != 504 || c.ErrorType != "upstream_timeout" {
		t.Errorf("recorded %s %d %s", c.Status, c.HTTPStatus, c.ErrorType)
	}

	r = newRig(t, rigOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.front.URL+"/rollout/h/attempt/0/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
	req.Header.Set("X-Vllmsim-Fault", vllmsim.FaultHang)
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Fatal("the hanging upstream answered")
	}
	if err := r.proxy.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := r.calls(t, rollout.Key{RolloutID: "h", AttemptID: "0"})[0]; c.Status != exporter.StatusCancelled {
		t.Errorf("recorded %s", c.Status)
	}
}

// Hostile and odd request bodies: a clear error or vLLM's own answer, a
// recorded call, never a crash.
func TestHostileBodies(t *testing.T) {
	r := newRig(t, rigOptions{maxBody: 1 << 20})
	deep := `{"model":"` + model + `","messages":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`
	tests := []struct {
		name, body string
		want       int
	}{
		{"malformed", `{"messages": [}`, 400},
		{"not an object", `[1,2,3]`, 400},
		{"a string", `"hello"`, 400},
		{"empty", ``, 400},
		{"deep nesting", deep, 400},
		{"invalid UTF-8 in a string", "{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe bad\"}]}", 200},
		{"NUL bytes", "{\"model\":\"" + model + "\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", 200},
		{"huge number", `{"model":"` + model + `","messages":[],"max_tokens":1e999}`, 400},
	}
	for i, tt := range tests {
		status, got, _ := rawPost(t, fmt.Sprintf("%s/rollout/h%d/attempt/0/v1/chat/completions", r.front.URL, i), tt.body)
		if status != tt.want {
			t.Errorf("%s: %d %s", tt.name, status, trunc(got))
		}
		if status >= 400 && !bytes.Contains(got, []byte(`"error"`)) {
			t.Errorf("%s: no error body: %s", tt.name, trunc(got))
		}
		calls := r.calls(t, rollout.Key{RolloutID: fmt.Sprintf("h%d", i), AttemptID: "0"})
		if len(calls) != 1 || calls[0].HTTPStatus != status {
			t.Errorf("%s: recorded %d calls", tt.name, len(calls))
		}
	}
}

// A body over --max-body is refused from its Content-Length, unread.
func TestBodyTooLargeUnread(t *testing.T) {
	r := newRig(t, rigOptions{maxBody: 1024})
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Announce 10 MB and send none of it: the answer must come anyway.
	fmt.Fprintf(conn, "POST /rollout/big/attempt/0/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("%v %v", resp, err)
	}
}

// A client that stalls in the middle of its body gets 408 and the call is
// recorded; the connection is not held forever.
func TestSlowClientBody(t *testing.T) {
	r := newRig(t, rigOptions{bodyTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.front.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /rollout/slow/attempt/0/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufioReader(conn), nil)
	if err != nil || resp.StatusCode != 408 {
		t.Fatalf("%v %v", resp, err)
	}
	if c := r.calls(t, rollout.Key{RolloutID: "slow", AttemptID: "0"}); len(c) != 1 || c[0].HTTPStatus != 408 {
		t.Errorf("recorded %+v", c)
	}
}

// The query string, duplicates and all, reaches the upstream as sent.
func TestQueryStringPassesThrough(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	r := newRig(t, rigOptions{wrapSim: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			seen = append(seen, req.URL.RawQuery)
			mu.Unlock()
			h.ServeHTTP(w, req)
		})
	}})
	resp, err := http.Get(r.front.URL + "/rollout/q/attempt/0/v1/models?a=1&a=2&b=%20x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	post(t, r.front.URL, "/rollout/q/attempt/0/v1/chat/completions?x=1&x=1", `{"model":"`+model+`","messages":[]}`)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 || seen[0] != "a=1&a=2&b=%20x" || seen[1] != "x=1&x=1" {
		t.Errorf("upstream saw %q", seen)
	}
}

// --upstream-api-key replaces whatever key the agent sends.
func TestUpstreamAPIKey(t *testing.T) {
	r := newRig(t, rigOptions{sim: vllmsim.Options{APIKey: "vllm-secret"}, upstreamAPIKey: "vllm-secret"})
	status, got, _ := rawPost(t, r.front.URL+"/rollout/k/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`, "Authorization", "Bearer agent-key")
	if status != 200 {
		t.Errorf("with the key injected: %d %s", status, got)
	}
	r = newRig(t, rigOptions{sim: vllmsim.Options{APIKey: "vllm-secret"}})
	if status, _, _ := rawPost(t, r.front.URL+"/rollout/k/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`); status != 401 {
		t.Errorf("without: %d", status)
	}
}

// panicky is an Observer with a bug.
type panicky struct{}

func (panicky) ObserveCall(*exporter.Call, error) { panic("observer bug") }
func (panicky) ObserveRefused(string)             {}
func (panicky) ObserveRetry(string, string)       {}

// A bug in a handler costs the request (a 500 in the OpenAI shape), not the
// process, and the call is still recorded.
func TestPanicIsRecovered(t *testing.T) {
	r := newRig(t, rigOptions{observer: panicky{}})
	for i := range 2 {
		status, got, _ := rawPost(t, r.front.URL+"/rollout/p/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`)
		if status != 500 || !isOpenAIError(got, 500) {
			t.Errorf("call %d: %d %s", i, status, got)
		}
	}
	if err := r.proxy.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := r.calls(t, rollout.Key{RolloutID: "p", AttemptID: "0"}); len(c) != 2 {
		t.Errorf("recorded %d calls", len(c))
	}
}

// An upstream redirect is handed to the agent, never followed.
func TestRedirectNotFollowed(t *testing.T) {
	var mu sync.Mutex
	hosts := map[string]bool{}
	r := newRig(t, rigOptions{wrapSim: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			mu.Lock()
			hosts[req.Host] = true
			mu.Unlock()
			h.ServeHTTP(w, req)
		})
	}})
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodPost, r.front.URL+"/rollout/rd/attempt/0/v1/chat/completions", strings.NewReader(`{"model":"`+model+`","messages":[]}`))
	req.Header.Set("X-Vllmsim-Fault", vllmsim.FaultRedirect)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 302 || resp.Header.Get("Location") != "http://example.com/v1/chat/completions" {
		t.Errorf("got %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(hosts) != 1 {
		t.Errorf("requests reached %v", hosts)
	}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }
