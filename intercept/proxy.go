// Package intercept is tokentap's agent-facing side: a goproxy server that
// forwards every call to the configured vLLM upstream, keys it by rollout and
// attempt, injects return_token_ids into chat and completions requests, tees
// the answer (JSON or SSE, each event passed on as it arrives) through the
// token ID extractor, strips what it injected, and hands one call record per
// exchange to the exporter, committed before the agent receives its last
// byte. It also serves the agent's reward and complete calls.
//
// Requests sent to tokentap as to a server go through goproxy's
// NonproxyHandler, which turns them into proxy requests for the upstream and
// re-enters goproxy, so that one set of request and response hooks serves
// them and HTTP_PROXY-style absolute-URI requests alike. The upstream is
// always the configured one: a request's Host never chooses where it goes.
package intercept

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/upstream"
)

// Config configures a Proxy.
type Config struct {
	// Upstreams are the vLLM replicas calls go to.
	Upstreams *upstream.Set
	Recorder  *exporter.Recorder
	// Logprobs asks vLLM for per-token logprobs on every traced call.
	Logprobs bool
	// RequireRollout answers 400 to traced calls that carry no rollout key.
	RequireRollout bool
	// MaxBody bounds request bodies; larger ones get 413.
	MaxBody int64
	// UpstreamTimeout bounds the wait for the upstream's response headers
	// (0: no bound; generations may legitimately take minutes).
	UpstreamTimeout time.Duration
	// UpstreamAPIKey, when set, is sent to the upstream as "Authorization:
	// Bearer <key>" on every request (vLLM's --api-key), in place of what the
	// agent sent: agents then need no key.
	UpstreamAPIKey string
	// BodyTimeout bounds the reading of a traced request's body (a slow or
	// stalled client); 0 means one minute.
	BodyTimeout time.Duration
	// Force sets request fields on every traced call (--force-param).
	Force []tokenids.Param
	// ModelMap renames the models traced calls name (--model-map).
	ModelMap []tokenids.ModelRule
	// Anthropic translates the Anthropic Messages dialect (/v1/messages)
	// to chat completions; its zero value follows vLLM's own defaults.
	Anthropic anthropic.Translator
	// ResponseHistory keeps the History of finished OpenAI Responses
	// answers for previous_response_id (the store); nil keeps none, and a
	// request naming a previous response is then refused as unknown.
	ResponseHistory ResponseHistory
	// RetryAfterWrite lets a call whose connection failed after its
	// request was written go to another replica (--retry-after-write):
	// it may resend a generation.
	RetryAfterWrite bool
	// Observer, when set, learns of every recorded call and refused request.
	Observer Observer
	Logger   zerolog.Logger
	// AccessLog logs one line per traced call at info (otherwise at
	// debug): its key, model, outcome, token counts, duration and trace
	// id, never its content or credentials.
	AccessLog bool

	// stageHook, when set, runs at each named stage of a traced exchange
	// (the stage* constants): the seam through which tests make a stage
	// panic, to check that every exit of an exchange records its call.
	stageHook func(stage string)
	// maxResponse and maxEvent override the read bounds (tests).
	maxResponse int64
	maxEvent    int
}

// The stages of a traced exchange that Config.stageHook sees.
const (
	stageRequest  = "request"  // the request hook, after the call is counted in
	stageForward  = "forward"  // the round trip, before a replica is chosen
	stageResponse = "response" // the response hook, before the answer is read
	stageEvent    = "event"    // each data event of a streamed answer
	stageRecord   = "record"   // building the call's record
)

// stage runs the test seam of Config.stageHook.
func (p *Proxy) stage(name string) {
	if p.cfg.stageHook != nil {
		p.cfg.stageHook(name)
	}
}

// Observer is told what the proxy did (for metrics).
type Observer interface {
	ObserveCall(c *exporter.Call, recordErr error)
	ObserveRefused(reason string)
	// ObserveRetry: a call failed on this replica and went to another;
	// kind is RetryNotSent or RetryAfterWrite.
	ObserveRetry(upstream, kind string)
}

// Bounds of what tokentap reads whole: a non-streaming answer, one SSE
// event. Past them the answer is handed on in pieces, stripped, its IDs
// not read (see oversized.go).
const (
	defaultMaxResponse = 256 << 20
	defaultMaxEvent    = 16 << 20
)

func (p *Proxy) maxResponse() int64 { return cmp.Or(p.cfg.maxResponse, defaultMaxResponse) }
func (p *Proxy) maxEvent() int      { return cmp.Or(p.cfg.maxEvent, defaultMaxEvent) }

// Proxy is the agent-facing handler.
type Proxy struct {
	cfg       Config
	gp        *goproxy.ProxyHttpServer
	tr        *http.Transport
	log       zerolog.Logger
	attempts  attempts
	inflight  inFlight
	forwarder goproxy.RoundTripper
	pause     atomic.Pointer[Pause]  // nil: calls flow
	policy    atomic.Pointer[string] // the policy version calls are stamped with
}

// Pause describes a pause of traced calls (a trainer syncing weights).
type Pause struct {
	RetryAfter time.Duration
	Reason     string
	Since      time.Time
}

// Pause makes new traced calls get 429 with Retry-After (5 s when
// retryAfter is not positive) until Resume; calls in flight finish. Untraced requests (model lists, tokenize) still pass.
func (p *Proxy) Pause(retryAfter time.Duration, reason string) {
	if retryAfter <= 0 {
		retryAfter = 5 * time.Second
	}
	p.pause.Store(&Pause{RetryAfter: retryAfter, Reason: reason, Since: time.Now().UTC()})
	p.log.Info().Dur("retry_after", retryAfter).Str("reason", reason).Msg("traced calls paused")
}

// Resume lets traced calls flow again.
func (p *Proxy) Resume() {
	if p.pause.Swap(nil) != nil {
		p.log.Info().Msg("traced calls resumed")
	}
}

// Paused returns the current pause, or nil.
func (p *Proxy) Paused() *Pause { return p.pause.Load() }

// SetPolicyVersion sets the version stamped on calls from now on.
func (p *Proxy) SetPolicyVersion(v string) { p.policy.Store(&v) }

// PolicyVersion is the version calls are stamped with now.
func (p *Proxy) PolicyVersion() string {
	if v := p.policy.Load(); v != nil {
		return *v
	}
	return ""
}

// New builds a Proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Upstreams == nil {
		return nil, errors.New("no upstreams")
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 64 << 20
	}
	if cfg.BodyTimeout <= 0 {
		cfg.BodyTimeout = time.Minute
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, tr: newTransport(cfg.UpstreamTimeout)}
	p.forwarder = goproxy.RoundTripperFunc(p.forward)
	p.attempts.init()

	gp := goproxy.NewProxyHttpServer()
	// goproxy's default transport keeps 2 idle connections per host, skips
	// TLS verification and honours HTTP_PROXY; ours does none of that.
	gp.Tr = p.tr
	gp.Logger = goproxyLogger{p.log}
	gp.NonproxyHandler = http.HandlerFunc(p.redispatch)
	gp.OnRequest().DoFunc(p.onRequest)
	gp.OnResponse().DoFunc(p.onResponse)
	p.gp = gp
	return p, nil
}

func newTransport(responseTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: responseTimeout,
		// Ask for identity bodies: the extractor reads them as they come.
		DisableCompression: true,
		WriteBufferSize:    32 << 10,
		ReadBufferSize:     32 << 10,
	}
}

// ServeHTTP serves an agent's request: the reward and complete calls, or a
// call forwarded to the upstream.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rw := &responseWriter{ResponseWriter: w}
	defer p.recoverPanic(rw, r)
	p.serve(rw, r)
}

// recoverPanic is the last resort: a bug must cost one request, not the
// process. A traced call is still recorded (an error, status 500) and
// leaves the books; the client gets a 500 when nothing was sent yet, and a
// cut connection otherwise, never an answer that looks whole. The log gets
// the panic, never the request's headers or body.
func (p *Proxy) recoverPanic(rw *responseWriter, r *http.Request) {
	v := recover()
	if v == nil {
		return
	}
	ex := rw.ex
	if v == http.ErrAbortHandler {
		// net/http's way to drop a connection, on purpose (tokentap's own
		// after an upstream broke, or a library's): the call is recorded.
		if ex != nil {
			ex.finish(exporter.StatusError, http.StatusInternalServerError, "internal_error", "the connection was aborted", nil)
		}
		panic(v)
	}
	if _, logged := v.(recordedPanic); !logged {
		p.log.Error().Str("panic", fmt.Sprint(v)).Str("method", r.Method).Str("path", r.URL.Path).
			Bytes("stack", debug.Stack()).Msg("request handler panicked")
	}
	if ex != nil {
		ex.closeUpstream()
		ex.finish(exporter.StatusError, http.StatusInternalServerError, "internal_error", "tokentap hit an internal error handling this call", nil)
	}
	if rw.status != 0 {
		panic(http.ErrAbortHandler)
	}
	d := dialectOfPath(r.Method, r.URL.Path)
	if ex != nil {
		d = ex.dialect
	}
	writeError(rw, d, http.StatusInternalServerError, "tokentap hit an internal error handling this request")
}

// recordedPanic is a panic that was logged (and its call recorded) where it
// happened, passed on so that the request still fails.
type recordedPanic struct{ v any }

func (r recordedPanic) String() string { return fmt.Sprint(r.v) }

func (p *Proxy) serve(rw *responseWriter, r *http.Request) {
	w := http.ResponseWriter(rw)
	if r.Method == http.MethodConnect {
		// tokentap is not a tunnel: it forwards to its upstream only.
		p.refused("connect")
		httperr.Write(w, http.StatusMethodNotAllowed, "CONNECT is not supported: tokentap forwards plain HTTP to its upstream only")
		return
	}
	if r.URL.IsAbs() && !p.cfg.Upstreams.Owns(r.URL) {
		p.refused("foreign_host")
		writeError(w, dialectOfPath(r.Method, r.URL.Path), http.StatusForbidden, fmt.Sprintf("tokentap forwards to its upstreams only, not to %s", r.URL.Host))
		return
	}
	key, rest, prefixed, err := rollout.ParsePath(r.URL.Path)
	if err == nil && !prefixed {
		err = rollout.CheckPath(r.URL.Path)
	}
	if err != nil {
		p.refused("bad_key")
		writeError(w, dialectOfPath(r.Method, r.URL.Path), http.StatusBadRequest, err.Error())
		return
	}
	if prefixed {
		switch rest {
		case "reward":
			p.serveReward(w, r, key)
			return
		case "complete":
			p.serveComplete(w, r, key)
			return
		}
	}
	ex := &exchange{p: p, contentLength: -1, w: rw}
	ctx := context.WithValue(r.Context(), exchangeKey{}, ex)
	ex.ctx = ctx
	rw.ex = ex
	p.gp.ServeHTTP(rw, r.WithContext(ctx))
	// Whatever happened on the way, a traced call is recorded.
	ex.finish(exporter.StatusError, rw.status, "proxy_error", "the exchange ended without an answer from the upstream", nil)
	if ex.cutClient {
		// The answer is not whole (the upstream dropped it mid-way, or it
		// could not be recorded): tokentap drops the connection rather
		// than end the answer as if it were.
		panic(http.ErrAbortHandler)
	}
}

// redispatch is goproxy's NonproxyHandler: a request sent to tokentap as to
// a server becomes a proxy request and re-enters goproxy, so the hooks run.
// Its host is a placeholder: forward always picks one of the configured
// replicas, whatever the request named.
func (p *Proxy) redispatch(w http.ResponseWriter, r *http.Request) {
	r.URL.Scheme = "http"
	r.URL.Host = upstreamPlaceholder
	p.gp.ServeHTTP(w, r)
}

type exchangeKey struct{}

func exchangeOf(r *http.Request) *exchange {
	ex, _ := r.Context().Value(exchangeKey{}).(*exchange)
	return ex
}

// onRequest strips the rollout prefix, points the request at the upstream,
// and for traced calls allocates the sequence id and injects
// return_token_ids.
func (p *Proxy) onRequest(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	ex := exchangeOf(r)
	if ex == nil {
		// Only ServeHTTP enters goproxy; this cannot happen.
		return r, errorResponse(r, http.StatusInternalServerError, "request entered the proxy without an exchange")
	}
	if r.URL.Host != upstreamPlaceholder && !p.cfg.Upstreams.Owns(r.URL) {
		return r, errorResponse(r, http.StatusForbidden, "tokentap forwards to its upstreams only")
	}
	pctx.RoundTripper = p.forwarder
	stripRequestHopByHop(r.Header) // here: goproxy drops Connection before forward
	key, rest, prefixed, err := rollout.ParsePath(r.URL.Path)
	if err != nil {
		return r, errorResponse(r, http.StatusBadRequest, err.Error())
	}
	path := r.URL.Path
	if prefixed {
		path = "/" + rest
	}
	rt := routeOf(r.Method, path)
	ex.dialect = rt.dialect()
	if !prefixed {
		key, err = rollout.FromHeaders(r.Header.Get(rollout.HeaderRolloutID), r.Header.Get(rollout.HeaderAttemptID))
		if err != nil {
			p.refused("bad_key")
			return r, errorResponse(r, http.StatusBadRequest, err.Error())
		}
	}
	r.Header.Del(rollout.HeaderRolloutID)
	r.Header.Del(rollout.HeaderAttemptID)
	if p.cfg.UpstreamAPIKey != "" {
		// The agent's credentials, in whichever field, never go upstream.
		r.Header.Set("Authorization", "Bearer "+p.cfg.UpstreamAPIKey)
		r.Header.Del("X-Api-Key")
	}
	if ex.dialect == dialectAnthropic || ex.dialect == dialectResponses {
		p.prepareHeaders(r.Header)
	}
	r.URL.Path = path // forward puts the replica's base path in front
	r.URL.RawPath = ""
	r.Host = ""

	switch rt {
	case routeForward:
		return r, nil // forwarded untouched
	case routeCountTokens:
		return r, p.prepareCountTokens(r, ex)
	}
	ep := rt.endpoint()
	if key.IsZero() && p.cfg.RequireRollout {
		p.refused("no_rollout_key")
		return r, errorResponse(r, http.StatusBadRequest, "this call carries no rollout key: use /rollout/{rollout_id}/attempt/{attempt_id}/v1/... or the X-Rollout-Id header (--require-rollout is on)")
	}
	if pause := p.pause.Load(); pause != nil {
		// Not recorded: the agent's client retries after Retry-After (the
		// OpenAI SDKs do so by themselves), and that call is the one.
		p.refused("paused")
		resp := errorResponse(r, http.StatusTooManyRequests, "tokentap is paused ("+cmp.Or(pause.Reason, "the trainer asked")+"): retry after "+pause.RetryAfter.String())
		resp.Header.Set("Retry-After", strconv.Itoa(int(math.Ceil(pause.RetryAfter.Seconds()))))
		return r, resp
	}
	if err := p.cfg.Recorder.Writable(); err != nil {
		// Better no answer than an answer that cannot be recorded.
		p.refused("disk_full")
		return r, errorResponse(r, http.StatusInsufficientStorage, "tokentap cannot record calls now: "+err.Error())
	}
	if err := p.attempts.begin(r.Context(), p.cfg.Recorder, key); err != nil {
		p.refused("attempt_complete")
		return r, errorResponse(r, statusOf(err), err.Error())
	}
	seq, err := p.cfg.Recorder.NextSequence(r.Context(), key)
	if err != nil {
		p.attempts.end(key)
		if errors.Is(err, exporter.ErrAttemptComplete) {
			p.refused("attempt_complete")
			return r, errorResponse(r, http.StatusConflict, fmt.Sprintf("attempt %s of rollout %s is complete", key.AttemptID, key.RolloutID))
		}
		p.log.Error().Err(err).Str("rollout_id", key.RolloutID).Msg("allocate sequence id")
		return r, errorResponse(r, http.StatusServiceUnavailable, "tokentap could not allocate a sequence id: "+err.Error())
	}
	ex.begin(key, seq, ep, path, parentOf(r))
	p.stage(stageRequest)
	if resp := p.prepareBody(r, ex); resp != nil {
		return r, resp
	}
	return r, nil
}

// prepareBody reads a traced request's body, translates it when the agent
// speaks another dialect than chat completions, and injects
// return_token_ids. A failure answers the client and is recorded as the
// call's outcome.
func (p *Proxy) prepareBody(r *http.Request, ex *exchange) *http.Response {
	body, resp := p.readRequestBody(r, ex)
	if resp != nil {
		return resp
	}
	if ex.dialect == dialectAnthropic {
		if body, resp = p.translateMessages(r, ex, body); resp != nil {
			return resp
		}
	}
	if ex.dialect == dialectResponses {
		if body, resp = p.translateResponses(r, ex, body); resp != nil {
			return resp
		}
	}
	out, req, err := tokenids.PrepareRequest(ex.endpoint, body, tokenids.Options{Logprobs: p.cfg.Logprobs, Force: p.cfg.Force, ModelMap: p.cfg.ModelMap})
	if err != nil {
		return ex.fail(r, http.StatusBadRequest, "bad_request", err.Error())
	}
	ex.req = req
	setRequestBody(r, out)
	return nil
}

// readRequestBody reads a request's body, bounded in size and time. A
// failure answers the client and, for a traced call, is recorded as its
// outcome.
func (p *Proxy) readRequestBody(r *http.Request, ex *exchange) ([]byte, *http.Response) {
	if r.ContentLength > p.cfg.MaxBody {
		return nil, ex.fail(r, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body of %d bytes is over the %d-byte limit", r.ContentLength, p.cfg.MaxBody))
	}
	// A client that stalls while sending its body must not hold the call
	// (and a connection) forever.
	rc := http.NewResponseController(ex.w)
	rc.SetReadDeadline(time.Now().Add(p.cfg.BodyTimeout))
	body, err := readAll(r.Body, r.ContentLength, p.cfg.MaxBody+1)
	r.Body.Close() // under the deadline still: Close drains what is left
	rc.SetReadDeadline(time.Time{})
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, ex.fail(r, http.StatusRequestTimeout, "request_timeout", fmt.Sprintf("the request body did not arrive within %v", p.cfg.BodyTimeout))
		case r.Context().Err() != nil:
			ex.finish(exporter.StatusCancelled, 0, "cancelled", "the client went away while sending its request", nil)
			return nil, errorResponse(r, http.StatusBadRequest, "request body: "+err.Error())
		}
		return nil, ex.fail(r, http.StatusBadRequest, "bad_request", "read request body: "+err.Error())
	}
	if int64(len(body)) > p.cfg.MaxBody {
		return nil, ex.fail(r, http.StatusRequestEntityTooLarge, "request_too_large", fmt.Sprintf("request body is over the %d-byte limit", p.cfg.MaxBody))
	}
	return body, nil
}

// injectRoom is the spare capacity left after a request body, so that
// PrepareRequest can add return_token_ids in place.
const injectRoom = 64

// readAll reads a request body of up to limit bytes into one buffer, sized
// from Content-Length when the client sent one, with room for the injection.
func readAll(r io.Reader, contentLength, limit int64) ([]byte, error) {
	size := int64(4096)
	if contentLength > 0 {
		size = min(contentLength, limit) + injectRoom
	}
	buf := make([]byte, 0, size)
	for {
		if int64(len(buf)) >= limit {
			return buf, nil
		}
		if cap(buf)-len(buf) < injectRoom+512 {
			buf = append(buf[:cap(buf)], 0)[:len(buf)] // grow
		}
		n, err := r.Read(buf[len(buf) : cap(buf)-injectRoom])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// onResponse tees a traced call's answer through the extractor.
func (p *Proxy) onResponse(resp *http.Response, pctx *goproxy.ProxyCtx) *http.Response {
	ex := exchangeOf(pctx.Req)
	if resp == nil {
		return p.upstreamFailed(pctx.Req, ex, pctx.Error)
	}
	if ex != nil && ex.countTokens {
		return ex.countTokensAnswer(resp)
	}
	if ex == nil || !ex.traced() || ex.isFinished() {
		return resp // untraced, or an answer tokentap made itself
	}
	ex.upstreamBody = resp.Body
	p.stage(stageResponse)
	ex.status = resp.StatusCode
	if (ex.msgs != nil || ex.rsp != nil) && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if _, err := contentCodings(resp.Header); err != nil {
			return ex.messagesUndecodable(resp, err)
		}
	}
	if out := decodeAnswer(ex, resp); out != nil {
		return out // an encoding tokentap cannot read: recorded, passed on
	}
	switch {
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return ex.upstreamError(resp)
	case strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		resp.Body = newSSEBody(ex, resp.Body)
		if ex.msgs != nil || ex.rsp != nil {
			// The Messages and Responses streams are tokentap's own bytes.
			resp.Header.Set("Content-Type", "text/event-stream")
			resp.Header.Del("Content-Length")
			resp.ContentLength = -1
		}
		return resp
	default:
		return ex.jsonAnswer(resp)
	}
}

// upstreamFailed answers a call whose upstream could not be reached: 502,
// or 504 when it timed out, or 404 when no replica serves its model; a
// client that went away is recorded as such.
func (p *Proxy) upstreamFailed(r *http.Request, ex *exchange, err error) *http.Response {
	if err == nil {
		err = errors.New("no response")
	}
	if errors.Is(err, upstream.ErrUnknownModel) && ex != nil && (ex.traced() || ex.countTokens) {
		// forward found no replica for the model, before sending anything:
		// vLLM's own answer for a model it does not serve.
		msg := fmt.Sprintf("The model `%s` does not exist.", ex.req.Model)
		ex.finish(exporter.StatusError, http.StatusNotFound, "NotFoundError", msg, nil)
		if ex.dialect == dialectAnthropic {
			return answer(r, http.StatusNotFound, anthropic.NewError(http.StatusNotFound, msg).Body())
		}
		return answer(r, http.StatusNotFound, httperr.BodyParam(http.StatusNotFound, msg, "model"))
	}
	status, errType := http.StatusBadGateway, "upstream_unreachable"
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		status, errType = http.StatusGatewayTimeout, "upstream_timeout"
	}
	name := "upstream"
	if ex != nil && ex.replica != nil {
		name += " " + ex.replica.Name()
	}
	msg := fmt.Sprintf("%s: %v", name, unwrapURLError(err))
	clientGone := r.Context().Err() != nil
	if ex != nil && ex.traced() {
		if clientGone {
			ex.finish(exporter.StatusCancelled, 0, "cancelled", "the client went away before the upstream answered", nil)
		} else {
			ex.finish(exporter.StatusError, status, errType, msg, nil)
		}
	}
	if clientGone {
		// Routine (agents time out and abort); not the upstream's fault.
		p.log.Debug().Str("upstream", name).Msg("client went away before the upstream answered")
	} else {
		p.log.Warn().Str("upstream", name).Int("status", status).Err(unwrapURLError(err)).Msg("upstream request failed")
	}
	return errorResponse(r, status, msg)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// errorResponse builds one of tokentap's own error answers for goproxy to
// send, in the shape of the dialect the request speaks (OpenAI's, or
// Anthropic's on /v1/messages). After a body that was not read whole (413,
// 408) the connection is closed: net/http would otherwise try to drain the
// rest before answering.
func errorResponse(r *http.Request, status int, msg string) *http.Response {
	return answer(r, status, errorBody(dialectOfRequest(r), status, msg))
}

// answer is a JSON answer tokentap makes itself.
func answer(r *http.Request, status int, body []byte) *http.Response {
	resp := &http.Response{
		StatusCode:    status,
		Status:        strconv.Itoa(status) + " " + http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}, "Content-Length": {strconv.Itoa(len(body))}},
		Close:         status == http.StatusRequestEntityTooLarge || status == http.StatusRequestTimeout,
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       r,
	}
	if resp.Close {
		resp.Header.Set("Connection", "close")
	}
	return resp
}

// parentOf reads the W3C traceparent an agent's tracer sent.
func parentOf(r *http.Request) trace.SpanContext {
	if r.Header.Get("Traceparent") == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.HeaderCarrier(r.Header))
	return trace.SpanContextFromContext(ctx)
}

func (p *Proxy) refused(reason string) {
	if o := p.cfg.Observer; o != nil {
		o.ObserveRefused(reason)
	}
}

// InFlight is the number of traced calls not yet recorded.
func (p *Proxy) InFlight() int64 { return p.inflight.count() }

// Wait returns once every traced call in flight is recorded, or when ctx
// ends.
func (p *Proxy) Wait(ctx context.Context) error {
	if err := p.inflight.wait(ctx); err != nil {
		return fmt.Errorf("%d calls still in flight: %w", p.InFlight(), err)
	}
	return nil
}

// responseWriter remembers the status sent and restores the Content-Length
// of answers tokentap rewrote whole (goproxy drops it when a hook replaces
// a body).
type responseWriter struct {
	http.ResponseWriter
	ex     *exchange
	status int
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
		if w.ex != nil && w.ex.contentLength >= 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(w.ex.contentLength, 10))
		}
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush is what makes goproxy pass each SSE event on as it is written.
func (w *responseWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// goproxyLogger sends goproxy's warnings to zerolog.
type goproxyLogger struct{ log zerolog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	l.log.Debug().Str("component", "goproxy").Msgf(strings.TrimSuffix(format, "\n"), v...)
}

// UpstreamReady reports whether some replica answered /health recently.
func (p *Proxy) UpstreamReady() bool { return p.cfg.Upstreams.Ready() }
