package intercept

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/responses"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/upstream"
)

// exchange is the state of one request through the proxy. For a traced
// call it ends in exactly one recorded call.
type exchange struct {
	p        *Proxy
	ctx      context.Context // the client's request context
	key      rollout.Key
	seq      uint64
	endpoint tokenids.Endpoint // 0 for untraced requests
	path     string
	parent   trace.SpanContext
	start    time.Time
	req      tokenids.Request
	status   int    // the upstream's status
	policy   string // the policy version when the call was sent
	replica  *upstream.Replica

	// dialect is the API the agent speaks on this route: tokentap's own
	// answers and errors take its shape.
	dialect dialect
	// msgs is the translated /v1/messages request of a Messages call,
	// once translated; its answer is translated back.
	msgs *anthropic.Request
	// rsp is the translated /v1/responses request of a Responses call,
	// nil otherwise (responses.go).
	rsp *responses.Request
	// countTokens is set for a /v1/messages/count_tokens request sent
	// upstream as /tokenize (not traced).
	countTokens bool

	// contentLength is the length of a body tokentap rewrote whole, -1
	// otherwise.
	contentLength int64
	// problem is the first thing the extractor could not read.
	problem string
	// firstEvent is when the first event of a streamed answer arrived.
	firstEvent time.Time
	// malformed is set when the upstream's answer could not be read.
	malformed bool
	// cutClient is set when the agent's connection must be cut rather than
	// the answer ended as if whole: the upstream dropped its connection in
	// the middle of an answer, or a call whose answer had begun could not be
	// recorded.
	cutClient bool
	// upstreamBody is the upstream's answer body once there is one, so
	// that an exchange cut short by a panic still closes it (and so
	// releases its replica).
	upstreamBody io.Closer
	w            *responseWriter

	once      sync.Once
	finished  bool
	recordErr error
	mu        sync.Mutex
}

func (ex *exchange) begin(key rollout.Key, seq uint64, ep tokenids.Endpoint, path string, parent trace.SpanContext) {
	ex.key, ex.seq, ex.endpoint, ex.path, ex.parent = key, seq, ep, path, parent
	ex.start = time.Now()
	ex.req = tokenids.Request{Endpoint: ep, N: 1, Prompts: 1}
	ex.policy = ex.p.PolicyVersion()
	ex.p.inflight.add()
}

func (ex *exchange) traced() bool { return ex.endpoint != 0 }

func (ex *exchange) isFinished() bool {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	return ex.finished
}

// noteUnread marks the call's IDs as missing where part of the answer was
// too large to read (it is handed on, not read).
func (ex *exchange) noteUnread(problem string) {
	ex.mu.Lock()
	if ex.problem == "" {
		ex.problem = problem
	}
	ex.mu.Unlock()
}

// noteProblem keeps the first extraction problem of the call.
func (ex *exchange) noteProblem(err error) {
	ex.mu.Lock()
	if ex.problem == "" {
		ex.problem = "unreadable answer: " + err.Error()
	}
	ex.malformed = true
	ex.mu.Unlock()
}

// finish records the call once; later calls return the first outcome. It
// commits before returning, so the caller may then let the agent have the
// rest of the answer.
func (ex *exchange) finish(status exporter.Status, httpStatus int, errType, msg string, res *tokenids.Result) error {
	if !ex.traced() {
		return nil
	}
	ex.once.Do(func() {
		ex.mu.Lock()
		ex.finished = true
		problem := ex.problem
		ex.mu.Unlock()
		// The call leaves the books even if what follows panics.
		defer func() {
			ex.p.attempts.end(ex.key)
			ex.p.inflight.done()
		}()
		c := ex.recordCall(status, httpStatus, errType, msg, problem, res)
		if o := ex.p.cfg.Observer; o != nil {
			o.ObserveCall(c, ex.recordErr)
		}
		ex.logCall(c)
	})
	return ex.recordErr
}

// logCall writes the call's access log line: at info with
// Config.AccessLog, at debug otherwise, at error when it was not recorded.
// Never content, never credentials.
func (ex *exchange) logCall(c *exporter.Call) {
	log := ex.p.log
	ev := log.Debug()
	switch {
	case ex.recordErr != nil:
		ev = log.Error().Err(ex.recordErr)
	case ex.p.cfg.AccessLog:
		ev = log.Info()
	}
	if ev == nil {
		return
	}
	in, out := int64(len(c.Response.PromptTokenIDs)), int64(0)
	for _, ch := range c.Response.Choices {
		out += int64(len(ch.TokenIDs))
	}
	if u := c.Response.Usage; u != nil {
		in, out = u.PromptTokens, u.CompletionTokens
	}
	ev = ev.Str("rollout_id", c.Key.RolloutID).Str("attempt_id", c.Key.AttemptID).Uint64("seq", c.Seq).
		Str("dialect", c.DialectName()).Str("model", c.Request.Model).
		Str("status", string(c.Status)).Int("http_status", c.HTTPStatus).
		Int64("tokens_in", in).Int64("tokens_out", out).Bool("token_ids_valid", c.Valid).
		Dur("duration_ms", c.End.Sub(c.Start)).Str("upstream", c.Upstream)
	if c.TraceID.IsValid() {
		ev = ev.Str("trace_id", c.TraceID.String())
	}
	if c.ErrorType != "" {
		ev = ev.Str("error_type", c.ErrorType)
	}
	ev.Msg("call")
}

// recordCall builds the call's record and commits it, setting recordErr.
// Should building or encoding it panic (a bug), a bare record of the call
// (an internal error) is committed instead, so the call is never lost, and
// the panic goes on to fail the request.
func (ex *exchange) recordCall(status exporter.Status, httpStatus int, errType, msg, problem string, res *tokenids.Result) (c *exporter.Call) {
	// The client may be gone (that is what a cancelled call is): the record
	// is written regardless.
	ctx := context.WithoutCancel(ex.ctx)
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		ex.p.log.Error().Str("panic", fmt.Sprint(v)).Bytes("stack", debug.Stack()).
			Str("rollout_id", ex.key.RolloutID).Uint64("seq", ex.seq).Msg("building a call record panicked")
		c = ex.bareCall(exporter.StatusError, http.StatusInternalServerError, "internal_error", "tokentap hit an internal error recording this call")
		c.Valid, c.Problem = false, "call error: internal error while recording"
		ex.recordErr = ex.p.cfg.Recorder.RecordCall(ctx, c)
		panic(recordedPanic{v})
	}()
	c = ex.bareCall(status, httpStatus, errType, msg)
	ex.p.stage(stageRecord)
	c.Request = ex.req
	if res != nil {
		c.Response = *res
	}
	if res == nil && ex.replica == nil {
		// tokentap refused it itself (a bad body, a model no replica
		// serves): vLLM was asked nothing, so there are no IDs to judge.
		c.Valid, c.Problem = false, joinProblems("call "+string(status), problem, "the request was refused before it reached the upstream")
		ex.recordErr = ex.p.cfg.Recorder.RecordCall(ctx, c)
		return c
	}
	verdict := tokenids.Verify(&ex.req, &c.Response)
	valid, checked := verdict.Valid, verdict.Problem
	c.Checks = verdict.Checks
	switch {
	case status != exporter.StatusOK:
		valid = false
		checked = joinProblems("call "+string(status), problem, checked)
	case problem != "":
		valid = false
		checked = joinProblems(problem, checked)
	}
	c.Valid, c.Problem = valid, checked
	ex.recordErr = ex.p.cfg.Recorder.RecordCall(ctx, c)
	return c
}

// bareCall is the part of a call's record that needs nothing read from the
// answer.
func (ex *exchange) bareCall(status exporter.Status, httpStatus int, errType, msg string) *exporter.Call {
	c := &exporter.Call{
		Key: ex.key, Seq: ex.seq, Path: ex.path, Dialect: ex.dialectName(),
		Request: tokenids.Request{Endpoint: ex.endpoint, Model: ex.req.Model, Stream: ex.req.Stream, N: 1, Prompts: 1},
		Status:  status, HTTPStatus: httpStatus, ErrorType: errType, Error: msg,
		Start: ex.start, End: time.Now(), FirstToken: ex.firstEvent, Parent: ex.parent,
		PolicyVersion: ex.policy,
	}
	if ex.replica != nil {
		c.Upstream = ex.replica.Name()
	}
	if end := ex.p.PolicyVersion(); end != ex.policy {
		// A long call straddled a weight update: keep both.
		c.PolicyVersionEnd = end
	}
	return c
}

// closeUpstream closes the upstream's answer, if any, of an exchange that
// ends abnormally.
func (ex *exchange) closeUpstream() {
	if ex.upstreamBody != nil {
		ex.upstreamBody.Close()
	}
}

func joinProblems(parts ...string) string {
	out := ""
	for _, p := range parts {
		if p == "" {
			continue
		}
		if out != "" {
			out += "; "
		}
		out += p
	}
	return out
}

// fail records a call tokentap refused and returns the answer for it.
func (ex *exchange) fail(r *http.Request, status int, errType, msg string) *http.Response {
	ex.finish(exporter.StatusError, status, errType, msg, nil)
	return errorResponse(r, status, msg)
}

// readBody reads an answer whole. An answer past the bound gives
// errAnswerTooLarge with what was read, and its body left open.
func (ex *exchange) readBody(resp *http.Response) ([]byte, error) {
	limit := ex.p.maxResponse()
	var buf []byte
	if resp.ContentLength > 0 && resp.ContentLength <= limit {
		buf = make([]byte, 0, resp.ContentLength)
	}
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := resp.Body.Read(buf[len(buf):min(cap(buf), int(limit)+1)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			resp.Body.Close()
			return buf, nil
		}
		if err != nil {
			resp.Body.Close()
			return buf, err
		}
		if int64(len(buf)) > limit {
			return buf, errAnswerTooLarge
		}
	}
}

// upstreamError passes an upstream error answer on unchanged and records
// the call with its status.
func (ex *exchange) upstreamError(resp *http.Response) *http.Response {
	body, err := ex.readBody(resp)
	if errors.Is(err, errAnswerTooLarge) {
		resp.Body.Close()
		err = fmt.Errorf("error answer over %d bytes", ex.p.maxResponse())
	}
	if err != nil {
		return ex.readFailed(resp, err)
	}
	msg, errType := "upstream answered "+strconv.Itoa(resp.StatusCode), "http_"+strconv.Itoa(resp.StatusCode)
	if e, ok := tokenids.ParseError(body); ok {
		msg = e.Message
		if e.Type != "" {
			errType = e.Type
		}
	}
	if ex.msgs != nil {
		return ex.messagesUpstreamError(resp, body, errType, msg)
	}
	ex.finish(exporter.StatusError, resp.StatusCode, errType, msg, nil)
	ex.setBody(resp, body)
	return resp
}

// jsonAnswer reads a non-streaming answer, extracts the IDs, strips what
// tokentap injected, and commits the call before the agent gets any of it.
func (ex *exchange) jsonAnswer(resp *http.Response) *http.Response {
	body, err := ex.readBody(resp)
	if errors.Is(err, errAnswerTooLarge) && (ex.msgs != nil || ex.rsp != nil) {
		return ex.messagesTooLarge(resp)
	}
	if errors.Is(err, errAnswerTooLarge) {
		// Handed on as it arrives rather than refused: the agent still
		// gets its answer, the record its IDs marked missing.
		resp.Body = newLargeJSONBody(ex, body, resp.Body)
		resp.ContentLength = -1
		resp.Header.Del("Content-Length")
		return resp
	}
	if err != nil {
		return ex.readFailed(resp, err)
	}
	res, out, err := tokenids.ParseResponse(&ex.req, body, ex.req.Strip())
	if ex.msgs != nil {
		return ex.messagesAnswer(resp, &res, out, err)
	}
	if ex.rsp != nil {
		return ex.responsesAnswer(resp, &res, out, err)
	}
	status, errType, msg := exporter.StatusOK, "", ""
	if err != nil {
		// Passed on as it came; the agent will find out too.
		ex.noteProblem(err)
		status, errType, msg = exporter.StatusError, "upstream_malformed", "the upstream's answer is not valid JSON: "+err.Error()
	}
	if err := ex.finish(status, resp.StatusCode, errType, msg, &res); err != nil {
		return errorResponse(resp.Request, http.StatusServiceUnavailable, "tokentap could not record this call, so it withholds the answer: "+err.Error())
	}
	ex.setBody(resp, out)
	return resp
}

// readFailed handles an answer that broke off while tokentap read it.
func (ex *exchange) readFailed(resp *http.Response, err error) *http.Response {
	if ex.ctx.Err() != nil {
		ex.finish(exporter.StatusCancelled, resp.StatusCode, "cancelled", "the client went away while the answer was read", nil)
	} else {
		ex.finish(exporter.StatusError, http.StatusBadGateway, "upstream_broken", "reading the upstream's answer: "+err.Error(), nil)
	}
	return errorResponse(resp.Request, http.StatusBadGateway, "reading the upstream's answer: "+err.Error())
}

func (ex *exchange) setBody(resp *http.Response, body []byte) {
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	ex.contentLength = int64(len(body))
}

// statusOf maps the errors of attempt bookkeeping to HTTP statuses.
func statusOf(err error) int {
	switch {
	case errors.Is(err, exporter.ErrAttemptComplete), errors.Is(err, errCompleting):
		return http.StatusConflict
	}
	return http.StatusServiceUnavailable
}
