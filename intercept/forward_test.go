package intercept

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
)

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "timeout awaiting response headers" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// Only failures before any answer, of requests that can be sent again, go
// to another replica.
func TestRetryable(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
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
		name string
		req  *http.Request
		err  error
		want bool
	}{
		{"connection refused", replayable(), &url.Error{Op: "Post", URL: "http://x", Err: dial}, true},
		{"reset before the answer", replayable(), fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"closed before the answer", replayable(), io.EOF, true},
		{"a GET without body", get(), dial, true},
		{"response header timeout", replayable(), &url.Error{Op: "Post", URL: "http://x", Err: timeoutErr{}}, false},
		{"a body that cannot be sent again", streaming(), dial, false},
		{"the client went away", cancelled(), dial, false},
		{"anything else", replayable(), errors.New("tls: bad certificate"), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.req, tt.err); got != tt.want {
			t.Errorf("%s: retryable = %v, want %v", tt.name, got, tt.want)
		}
	}
}
