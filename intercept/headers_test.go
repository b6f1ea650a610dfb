package intercept

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawRequest sends head (a request's header block, CRLF-separated, without
// the final blank line) and body on a new connection and reads the answer.
// Raw, because Go's client itself drops some of the fields under test.
func rawRequest(t *testing.T, addr, head, body string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if body != "" {
		head += fmt.Sprintf("\r\nContent-Length: %d", len(body))
	}
	if _, err := io.WriteString(c, head+"\r\n\r\n"+body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection: tokentap
// passes none of them on, neither to the upstream nor to the agent, traced
// call or not; end-to-end fields pass.
func TestHopByHopHeadersStripped(t *testing.T) {
	var (
		mu   sync.Mutex
		seen http.Header
	)
	// The upstream records what reached it and answers with hop-by-hop
	// fields of its own.
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = r.Header.Clone()
			mu.Unlock()
			h := w.Header()
			h.Set("Connection", "X-Hop-Answer")
			h.Set("X-Hop-Answer", "1")
			h.Set("Keep-Alive", "timeout=5")
			h.Set("Proxy-Authenticate", `Basic realm="gw"`)
			h.Set("Proxy-Connection", "keep-alive")
			h.Set("Upgrade", "h2c")
			h.Set("X-End-Answer", "kept")
			next.ServeHTTP(w, r)
		})
	}
	r := newRig(t, rigOptions{wrapSim: wrap})
	addr := strings.TrimPrefix(r.front.URL, "http://")
	chat := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`

	requests := []struct {
		name, method, path, body string
	}{
		{"traced call", "POST", "/rollout/h/attempt/0/v1/chat/completions", chat},
		{"traced stream", "POST", "/rollout/h/attempt/0/v1/chat/completions", strings.TrimSuffix(chat, "}") + `,"stream":true}`},
		{"untraced", "GET", "/rollout/h/attempt/0/v1/models", ""},
		{"proxy request", "GET", r.sim.URL + "/v1/models", ""},
	}
	fields := []struct {
		name, value string
		want        string // what the upstream gets, "" for nothing
	}{
		{"Connection", "keep-alive, X-Hop-Request", ""},
		{"X-Hop-Request", "named by Connection", ""},
		{"Keep-Alive", "timeout=5", ""},
		{"Proxy-Connection", "keep-alive", ""},
		{"Proxy-Authorization", "Basic c2VjcmV0", ""},
		{"Te", "trailers, deflate", "trailers"},
		{"Trailer", "X-Checksum", ""},
		{"Upgrade", "h2c", ""},
		{"X-End-Request", "kept", "kept"},
	}
	var head strings.Builder
	for _, f := range fields {
		fmt.Fprintf(&head, "\r\n%s: %s", f.name, f.value)
	}
	for _, rq := range requests {
		t.Run(rq.name, func(t *testing.T) {
			resp := rawRequest(t, addr, rq.method+" "+rq.path+" HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/json"+head.String(), rq.body)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			mu.Lock()
			got := seen
			mu.Unlock()
			for _, f := range fields {
				if v := strings.Join(got.Values(f.name), ", "); v != f.want {
					t.Errorf("to the upstream, %s: %q, want %q", f.name, v, f.want)
				}
			}
			for _, name := range []string{"X-Hop-Answer", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Upgrade"} {
				if v := resp.Header.Values(name); len(v) > 0 {
					t.Errorf("to the agent, %s: %q, want none", name, v)
				}
			}
			if c := resp.Header.Get("Connection"); c != "" && !strings.EqualFold(c, "close") {
				t.Errorf("to the agent, Connection: %q", c)
			}
			if v := resp.Header.Get("X-End-Answer"); v != "kept" {
				t.Errorf("to the agent, X-End-Answer: %q, want kept", v)
			}
		})
	}
}

// The request side alone, for the cases that need no sockets: what
// httputil.ReverseProxy keeps, tokentap keeps.
func TestStripRequestHopByHop(t *testing.T) {
	tests := []struct {
		name string
		in   http.Header
		want http.Header
	}{
		{"Connection names a field", http.Header{"Connection": {"X-A, x-b"}, "X-A": {"1"}, "X-B": {"2"}, "X-C": {"3"}}, http.Header{"X-C": {"3"}}},
		{"TE without trailers", http.Header{"Te": {"gzip"}}, http.Header{}},
		{"TE: trailers kept", http.Header{"Te": {"gzip", "Trailers"}}, http.Header{"Te": {"trailers"}}},
		{"an upgrade is asked for again", http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Keep-Alive": {"x"}}, http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}}},
		{"Upgrade without Connection", http.Header{"Upgrade": {"websocket"}}, http.Header{}},
		{"Transfer-Encoding and Proxy fields", http.Header{"Transfer-Encoding": {"chunked"}, "Proxy-Authorization": {"x"}, "Proxy-Authenticate": {"y"}, "Authorization": {"Bearer k"}}, http.Header{"Authorization": {"Bearer k"}}},
	}
	for _, tt := range tests {
		h := tt.in.Clone()
		stripRequestHopByHop(h)
		if fmt.Sprint(h) != fmt.Sprint(tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, h, tt.want)
		}
	}
}
