package intercept

import (
	"errors"
	"io"
	"net"
	"net/http"
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
// connection fails before any byte of an answer, tries the next replica.
// Once the upstream has answered, the answer is final: a generation is
// never sent twice.
func (p *Proxy) forward(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
	ex := exchangeOf(req)
	path := req.URL.Path
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
		rep.Acquire()
		resp, err := p.tr.RoundTrip(req)
		if err == nil {
			resp.Body = &releasingBody{ReadCloser: resp.Body, replica: rep}
			return resp, nil
		}
		rep.Release()
		if n+1 == maxTries || !retryable(req, err) {
			return nil, err
		}
		rep.ReportFailure(err)
		p.log.Warn().Str("upstream", rep.Name()).Err(unwrapURLError(err)).Msg("upstream unreachable; trying another replica")
		if o := p.cfg.Observer; o != nil {
			o.ObserveRetry(rep.Name())
		}
		tried[n], lastErr = rep, err
		// A short pause: a replica set restarting as a whole gets a moment.
		select {
		case <-req.Context().Done():
			return nil, err
		case <-time.After(time.Duration(25<<n) * time.Millisecond):
		}
		if req.GetBody != nil {
			if req.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
	}
}

// retryable says whether a failed round trip may go to another replica:
// the connection failed before any answer arrived, the client still waits,
// and the body can be sent again. A timeout is not a failure of that kind:
// the replica may still be generating.
func retryable(req *http.Request, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" ||
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
