package intercept

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/upstream"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// What may go to another replica: by default only a request that never
// reached the replica, and after a write only with the option.
func TestRetryable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	replayable := func() *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "http://x/v1/chat/completions", strings.NewReader("{}"))
		return r // NewRequest sets GetBody for a strings.Reader
	}
	streaming := func() *http.Request {
		r := replayable()
		r.GetBody = nil
		return r
	}
	cancelled := func() *http.Request {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		return replayable().WithContext(ctx)
	}
	get := func() *http.Request {
		r, _ := http.NewRequest(http.MethodGet, "http://x/v1/models", nil)
		return r
	}
	tests := []struct {
		name       string
		req        *http.Request
		err        error
		kind       string
		afterWrite bool
		want       bool
	}{
		{"connection refused", replayable(), &url.Error{Op: "Post", URL: "http://x", Err: dial}, RetryNotSent, false, true},
		{"dial timeout", replayable(), &url.Error{Op: "Post", URL: "http://x", Err: timeoutErr{}}, RetryNotSent, false, true},
		{"reset before the request was written", replayable(), reset, RetryNotSent, false, true},
		{"a GET without body", get(), dial, RetryNotSent, false, true},
		{"reset after the write", replayable(), reset, RetryAfterWrite, false, false},
		{"closed after the write", replayable(), io.EOF, RetryAfterWrite, false, false},
		{"reset after the write, allowed", replayable(), reset, RetryAfterWrite, true, true},
		{"closed after the write, allowed", replayable(), fmt.Errorf("net/http: HTTP/1.x transport connection broken: %w", io.ErrUnexpectedEOF), RetryAfterWrite, true, true},
		{"response header timeout, allowed", replayable(), &url.Error{Op: "Post", URL: "http://x", Err: timeoutErr{}}, RetryAfterWrite, true, false},
		{"a body that cannot be sent again", streaming(), dial, RetryNotSent, true, false},
		{"the client went away", cancelled(), dial, RetryNotSent, true, false},
		{"a certificate, never sent", replayable(), errors.New("tls: bad certificate"), RetryNotSent, true, false},
	}
	for _, tt := range tests {
		if got := retryable(tt.req, tt.err, tt.kind, tt.afterWrite); got != tt.want {
			t.Errorf("%s: retryable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// badReplica is a replica on a real socket that accepts each connection,
// reads one whole request, counts it, and then closes the connection, or
// resets it (SO_LINGER 0), without answering.
type badReplica struct {
	ln    net.Listener
	reset bool
	n     atomic.Int64
	wg    sync.WaitGroup
}

func newBadReplica(t *testing.T, reset bool) *badReplica {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &badReplica{ln: ln, reset: reset}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				if _, err := io.Copy(io.Discard, req.Body); err != nil {
					return
				}
				b.n.Add(1)
				if b.reset {
					c.(*net.TCPConn).SetLinger(0)
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return b
}

func (b *badReplica) url() string { return "http://" + b.ln.Addr().String() }

// countingSim is a simulated vLLM that counts the requests it got.
func countingSim(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	sim := vllmsim.New(vllmsim.Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// rolloutOn returns a rollout id that sticky routing sends to the replica
// named name first.
func rolloutOn(t *testing.T, set *upstream.Set, name string) string {
	t.Helper()
	for i := range 1000 {
		rid := fmt.Sprintf("r%d", i)
		if rep, err := set.Pick(rid, model); err == nil && rep.Name() == name {
			return rid
		}
	}
	t.Fatalf("no rollout id goes to %s", name)
	return ""
}

type retryCount struct {
	mu    sync.Mutex
	kinds map[string]int
}

func (o *retryCount) ObserveCall(*exporter.Call, error) {}
func (o *retryCount) ObserveRefused(string)             {}
func (o *retryCount) ObserveRetry(_, kind string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.kinds == nil {
		o.kinds = map[string]int{}
	}
	o.kinds[kind]++
}

func (o *retryCount) get() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]int{}
	for k, v := range o.kinds {
		out[k] = v
	}
	return out
}

// A replica that read the whole request and then dropped the connection
// may be generating: by default the call is not sent again (the agent gets
// 502, the call is recorded once), with --retry-after-write it goes to the
// next replica. A replica that cannot be connected to is always skipped.
func TestRetryOnlyWhatNeverArrived(t *testing.T) {
	tests := []struct {
		name       string
		first      string // "closed port", "close", "reset"
		afterWrite bool
		wantStatus int
		wantFirst  int64 // requests the first replica read whole
		wantSecond int64
		wantKind   string // the retry counted, "" for none
	}{
		{"closed after reading, default", "close", false, 502, 1, 0, ""},
		{"reset after reading, default", "reset", false, 502, 1, 0, ""},
		{"closed after reading, --retry-after-write", "close", true, 200, 1, 1, RetryAfterWrite},
		{"reset after reading, --retry-after-write", "reset", true, 200, 1, 1, RetryAfterWrite},
		{"closed port, default", "closed port", false, 200, 0, 1, RetryNotSent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var first string
			var bad *badReplica
			if tt.first == "closed port" {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				first = "http://" + ln.Addr().String()
				ln.Close()
			} else {
				bad = newBadReplica(t, tt.first == "reset")
				first = bad.url()
			}
			good, served := countingSim(t)
			obs := &retryCount{}
			r := newRig(t, rigOptions{upstream: first, moreUpstreams: []upstream.Spec{{URL: good.URL}}, routing: upstream.Sticky, observer: obs})
			r.proxy.cfg.RetryAfterWrite = tt.afterWrite // before any request
			rid := rolloutOn(t, r.upstreams, strings.TrimPrefix(first, "http://"))

			status, _, body := post(t, r.front.URL, "/rollout/"+rid+"/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
			if status != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", status, tt.wantStatus, body)
			}
			if bad != nil {
				if n := bad.n.Load(); n != tt.wantFirst {
					t.Errorf("the first replica read %d requests, want %d", n, tt.wantFirst)
				}
			}
			if n := served.Load(); n != tt.wantSecond {
				t.Errorf("the second replica got %d requests, want %d", n, tt.wantSecond)
			}
			calls := r.calls(t, rollout.Key{RolloutID: rid, AttemptID: "0"})
			if len(calls) != 1 || calls[0].HTTPStatus != tt.wantStatus {
				t.Fatalf("recorded %d calls: %+v", len(calls), calls)
			}
			if tt.wantStatus == 502 && calls[0].ErrorType != "upstream_unreachable" {
				t.Errorf("recorded error type %q", calls[0].ErrorType)
			}
			want := map[string]int{}
			if tt.wantKind != "" {
				want[tt.wantKind] = 1
			}
			if got := obs.get(); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("retries counted %v, want %v", got, want)
			}
		})
	}
}

// Go's transport itself resends, on a new connection, a request whose
// reused keep-alive connection broke after it was written when the request
// carries an Idempotency-Key: tokentap does not let it, unless resending
// after a write is allowed.
func TestTransportDoesNotResendAfterWrite(t *testing.T) {
	for _, afterWrite := range []bool{false, true} {
		t.Run(fmt.Sprint("retry-after-write=", afterWrite), func(t *testing.T) {
			var n atomic.Int64
			sim := vllmsim.New(vllmsim.Options{})
			// The second request is read whole, then its connection is cut.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 2 {
					io.Copy(io.Discard, r.Body)
					c, _, err := http.NewResponseController(w).Hijack()
					if err == nil {
						c.Close()
					}
					return
				}
				sim.ServeHTTP(w, r)
			}))
			t.Cleanup(srv.Close)
			r := newRig(t, rigOptions{upstream: srv.URL})
			r.proxy.cfg.RetryAfterWrite = afterWrite
			body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
			if status, _, b := post(t, r.front.URL, "/rollout/i/attempt/0/v1/chat/completions", body, "Idempotency-Key", "k1"); status != 200 {
				t.Fatalf("first call: %d %s", status, b)
			}
			status, _, b := post(t, r.front.URL, "/rollout/i/attempt/0/v1/chat/completions", body, "Idempotency-Key", "k2")
			wantStatus, wantN := 502, int64(2)
			if afterWrite {
				wantStatus, wantN = 200, 3
			}
			if status != wantStatus || n.Load() != wantN {
				t.Errorf("second call: %d %s; the replica got %d requests, want %d and %d", status, b, n.Load(), wantStatus, wantN)
			}
		})
	}
}

// The classification on real sockets, through net/http's own transport.
func TestSendTraceKind(t *testing.T) {
	closedPort := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return "http://" + ln.Addr().String()
	}
	tests := []struct {
		name string
		url  func(t *testing.T) string
		want string
	}{
		{"closed port", closedPort, RetryNotSent},
		{"closed after reading the request", func(t *testing.T) string { return newBadReplica(t, false).url() }, RetryAfterWrite},
		{"reset after reading the request", func(t *testing.T) string { return newBadReplica(t, true).url() }, RetryAfterWrite},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(0)
			defer tr.CloseIdleConnections()
			st := &sendTrace{}
			req, _ := http.NewRequest(http.MethodPost, tt.url(t)+"/v1/chat/completions", strings.NewReader(`{"model":"m"}`))
			req = req.WithContext(httptraceContext(req.Context(), st))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatal("the round trip succeeded")
			}
			if got := st.kind(err); got != tt.want {
				t.Errorf("kind(%v) = %s, want %s", err, got, tt.want)
			}
		})
	}
}

func httptraceContext(ctx context.Context, st *sendTrace) context.Context {
	return httptrace.WithClientTrace(ctx, st.clientTrace())
}
