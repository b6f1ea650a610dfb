package intercept

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/tokentap/tokentap/upstream"
)

// upstreamPlaceholder is the host a request sent to tokentap directly
// carries through goproxy until forward chooses its replica; the .invalid
// name (RFC 2606) can never resolve, so it cannot leak anywhere.
const upstreamPlaceholder = "upstream.tokentap.invalid"

// maxTries bounds how many replicas one call may be tried on.
const maxTries = 3

// forward is goproxy's round trip for every request: it sends the request to
// a replica (the rollout's sticky one, or the least loaded) and, when the
// request provably never reached that replica (no connection, or the
// request not written whole), tries the next one. A request that may have
// reached a replica is not sent again unless Config.RetryAfterWrite says so:
// a replica that died mid-generation may have generated, and a resend is a
// second generation. Once the upstream has answered, the answer is final.
func (p *Proxy) forward(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	ex := exchangeOf(req)
	if ex.traced() {
		p.stage(stageForward)
	}
	path := req.URL.Path
	getBody := req.GetBody
	var (
		tried   [maxTries]*upstream.Replica
		lastErr error
	)
	for n := 0; ; n++ {
		rep, err := p.cfg.Upstreams.Pick(ex.key.RolloutID, ex.req.Model, tried[:n]...)
		if err != nil {
			if lastErr != nil {
				return nil, lastErr // every replica there is was tried
			}
			return nil, err
		}
		base := rep.URL()
		req.URL.Scheme, req.URL.Host, req.URL.User = base.Scheme, base.Host, nil
		req.URL.Path = strings.TrimSuffix(base.Path, "/") + path
		ex.replica = rep
		st := &sendTrace{}
		try := req.WithContext(httptrace.WithClientTrace(req.Context(), st.clientTrace()))
		if getBody != nil {
			try.GetBody = st.guard(getBody, p.cfg.RetryAfterWrite)
		}
		rep.Acquire()
		resp, err := p.tr.RoundTrip(try)
		if err == nil {
			stripResponseHopByHop(resp)
			resp.Body = &releasingBody{ReadCloser: resp.Body, replica: rep}
			return resp, nil
		}
		rep.Release()
		kind := st.kind(err)
		if n+1 == maxTries || !retryable(req, err, kind, p.cfg.RetryAfterWrite) {
			return nil, err
		}
		rep.ReportFailure(err)
		p.log.Warn().Str("upstream", rep.Name()).Str("kind", kind).Err(unwrapURLError(err)).Msg("upstream failed; trying another replica")
		if o := p.cfg.Observer; o != nil {
			o.ObserveRetry(rep.Name(), kind)
		}
		tried[n], lastErr = rep, err
		// A short pause: a replica set restarting as a whole gets a moment.
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(time.Duration(25<<n) * time.Millisecond):
		}
		if getBody != nil {
			if req.Body, err = getBody(); err != nil {
				return nil, fmt.Errorf("rewind the request body for another replica: %w", err)
			}
		}
	}
}

// The kinds of failed round trips forward tells apart (ObserveRetry's kind).
const (
	// RetryNotSent: the request provably never reached the replica (no
	// connection was made, or the request was not written whole).
	RetryNotSent = "not_sent"
	// RetryAfterWrite: the request was written whole; the replica may have
	// received it and started a generation.
	RetryAfterWrite = "after_write"
)

// sendTrace follows one round trip to a replica through net/http/httptrace,
// to tell whether its request may have reached the replica. One RoundTrip
// may use several connections: Go's transport itself resends a request
// whose reused keep-alive connection turned out dead, when it wrote nothing
// of it (or when the request looks idempotent, see guard).
type sendTrace struct {
	connected atomic.Bool // some connection was obtained (dial, TLS done)
	wrote     atomic.Bool // the request was handed whole to some connection
	rewritten atomic.Bool // a connection was obtained after that: Go resent it
}

func (st *sendTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			if st.wrote.Load() {
				st.rewritten.Store(true)
			}
			st.connected.Store(true)
		},
		WroteRequest: func(info httptrace.WroteRequestInfo) {
			if info.Err == nil {
				st.wrote.Store(true)
			}
		},
	}
}

// kind classifies a failed round trip. WroteRequest reports the request
// written once it is in the connection's buffer; a write error afterwards
// (the flush) means its last bytes never left tokentap, so the replica
// cannot hold the whole request. Anything else after WroteRequest may have
// reached the replica.
func (st *sendTrace) kind(err error) string {
	if !st.connected.Load() || !st.wrote.Load() {
		return RetryNotSent
	}
	var op *net.OpError
	if !st.rewritten.Load() && errors.As(err, &op) && op.Op == "write" {
		return RetryNotSent
	}
	return RetryAfterWrite
}

// guard is the request's GetBody for Go's transport. The transport resends
// on a new connection a request whose reused connection broke before the
// answer even after writing it, when it deems the request idempotent (an
// Idempotency-Key header makes a POST so): that would be a second
// generation behind tokentap's back, so, unless resending after a write is
// allowed, a request once written whole is not rewound. (The transport's
// resend of a request of which it wrote nothing also rewinds it: for one
// carrying an Idempotency-Key that resend is refused too, the price of not
// being able to tell the two apart.)
func (st *sendTrace) guard(getBody func() (io.ReadCloser, error), afterWrite bool) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		if st.wrote.Load() && !afterWrite {
			return nil, errors.New("tokentap does not resend a request its replica may have received (--retry-after-write is off)")
		}
		return getBody()
	}
}

// retryable says whether a failed round trip may go to another replica: the
// client still waits, the body can be sent again, the failure is the
// connection's (not, say, a certificate or a malformed request), and
// either the request never reached the replica (kind RetryNotSent) or
// resending after a write is allowed. After a write a timeout is never
// retried: the replica may still be generating.
func retryable(req *http.Request, err error, kind string, afterWrite bool) bool {
	if req.Context().Err() != nil {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	var ne net.Error
	timeout := errors.As(err, &ne) && ne.Timeout()
	switch {
	case kind == RetryNotSent:
		return timeout || connectionFailure(err)
	case !afterWrite || timeout:
		return false
	}
	return connectionFailure(err)
}

// connectionFailure says whether err is the connection's own failure.
func connectionFailure(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// releasingBody ends a call's count on its replica when the answer has been
// read and closed.
type releasingBody struct {
	io.ReadCloser
	replica  *upstream.Replica
	released atomic.Bool
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	if b.released.CompareAndSwap(false, true) {
		b.replica.Release()
	}
	return err
}
