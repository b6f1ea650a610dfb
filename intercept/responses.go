package intercept

// The OpenAI Responses dialect (DESIGN §10), which the Codex CLI and the
// OpenAI Agents SDK speak. vLLM serves /v1/responses but returns no token
// IDs from it, so, as for /v1/messages (dialect.go), tokentap translates: a
// POST /v1/responses becomes the /v1/chat/completions request vLLM's own
// Responses layer would build (package responses), goes through the chat
// path like any chat call, and its answer is translated back: a Response
// object, or the Responses SSE stream event by event.
//
// previous_response_id is resolved here, not by vLLM: the History of every
// finished response whose request allows storing it (store, default true)
// is kept in tokentap's store under the response id (Config.ResponseHistory),
// so that a later request naming it is translated with it prepended.
//
// tokentap's own errors on this route are in OpenAI's envelope (httperr);
// vLLM's errors pass through as on chat. A stream always ends with
// response.completed or response.failed, never cut, since Codex retries a
// failed response but reports a cut stream as a transport error.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/responses"
	"github.com/tokentap/tokentap/tokenids"
)

// ResponseHistory keeps what a later previous_response_id needs of a
// finished response: its input and output items (JSON arrays). The store
// implements it (store.Store.SetResponseHistory, ResponseHistory).
type ResponseHistory interface {
	SetResponseHistory(ctx context.Context, id string, input, output []byte) error
	ResponseHistory(ctx context.Context, id string) (input, output []byte, ok bool, err error)
}

// asResponsesError reads what package responses returned as the error the
// agent gets (it returns *responses.Error only; anything else is a bug
// reported as a 500).
func asResponsesError(err error) *responses.Error {
	var e *responses.Error
	if errors.As(err, &e) {
		return e
	}
	return &responses.Error{Status: http.StatusInternalServerError, Type: "server_error", Message: err.Error()}
}

// translateResponses turns a /v1/responses body into the chat request sent
// upstream, with the stored history of the response it continues. A body
// the translation refuses (an unknown previous_response_id among them) is
// recorded as a failed call and answered with the translator's error.
func (p *Proxy) translateResponses(r *http.Request, ex *exchange, body []byte) ([]byte, *http.Response) {
	var prev *responses.History
	if id := responses.PreviousResponseID(body); id != "" && p.cfg.ResponseHistory != nil {
		in, out, ok, err := p.cfg.ResponseHistory.ResponseHistory(r.Context(), id)
		if err != nil {
			return nil, ex.fail(r, http.StatusServiceUnavailable, "history_unavailable", "tokentap could not read the response named in previous_response_id: "+err.Error())
		}
		if ok {
			prev = &responses.History{Input: in, Output: out}
		}
	}
	req, err := responses.TranslateRequest(body, prev)
	if err != nil {
		e := asResponsesError(err)
		ex.finish(exporter.StatusError, e.Status, cmp.Or(e.Code, e.Type), e.Message, nil)
		return nil, answer(r, e.Status, e.Body())
	}
	ex.rsp = req
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = chatPath, "", ""
	return req.Chat(), nil
}

// keepHistory stores the history of a finished response for a later
// previous_response_id, when its request allows it. The call is recorded
// already; a history that cannot be kept only makes a continuation fail
// with previous_response_not_found, so it is logged rather than answered.
func (ex *exchange) keepHistory(h *responses.History) {
	if h == nil || !ex.rsp.Store() || ex.p.cfg.ResponseHistory == nil {
		return
	}
	ctx := context.WithoutCancel(ex.ctx)
	if err := ex.p.cfg.ResponseHistory.SetResponseHistory(ctx, ex.rsp.ID(), h.Input, h.Output); err != nil {
		ex.p.log.Warn().Err(err).Str("response_id", ex.rsp.ID()).Msg("keep a response's history for previous_response_id")
	}
}

// responsesAnswer translates a non-streaming chat answer (read and
// stripped) into the Response object, and commits the call (and keeps its
// history) before the agent gets any of it.
func (ex *exchange) responsesAnswer(resp *http.Response, res *tokenids.Result, chat []byte, parseErr error) *http.Response {
	var out []byte
	var hist *responses.History
	status, errType, msg, agentBody := 0, "", "", []byte(nil)
	if parseErr != nil {
		ex.noteProblem(parseErr)
		status, errType, msg = http.StatusBadGateway, "upstream_malformed", "the upstream's answer is not valid JSON: "+parseErr.Error()
		agentBody = httperr.Body(status, msg)
	} else if o, h, err := ex.rsp.Answer(chat); err != nil {
		e := asResponsesError(err)
		status, errType, msg = e.Status, "translation_failed", "the upstream's answer could not be translated: "+e.Message
		agentBody = e.Body()
	} else {
		out, hist = o, h
	}
	if agentBody != nil {
		ex.finish(exporter.StatusError, status, errType, msg, res)
		return ex.reply(resp.Request, status, agentBody)
	}
	if err := ex.finish(exporter.StatusOK, resp.StatusCode, "", "", res); err != nil {
		return errorResponse(resp.Request, http.StatusServiceUnavailable, "tokentap could not record this call, so it withholds the answer: "+err.Error())
	}
	ex.keepHistory(hist)
	ex.setBody(resp, out)
	resp.Header.Set("Content-Type", "application/json")
	return resp
}

// failFrame is a chat error frame, which the translator turns into
// response.failed with msg: how tokentap fails a Responses stream itself.
func failFrame(msg string) []byte {
	b := append([]byte(`{"error":{"message":`), tokenids.AppendJSONString(nil, msg)...)
	return append(b, "}}"...)
}

// responsesEvent hands on what one chat event becomes in the Responses
// stream. The call is committed before response.completed reaches the
// agent (at "data: [DONE]"), so that the agent never has a whole answer the
// store lacks; a failed commit turns the end into response.failed.
func (b *sseBody) responsesEvent(ev tokenids.Event) []byte {
	if ev.DataLines == 0 || b.rsp.Done() {
		return nil // comments and keep-alives: none in Responses streams
	}
	data := ev.Data
	if tokenids.IsDone(ev.Data) {
		b.stream.Event(ev.Data)
		if err := b.finishStream(); err != nil {
			data = failFrame("tokentap could not record this call: " + err.Error())
		}
		b.out = b.rsp.AppendEvent(b.out[:0], data)
		b.ex.keepHistory(b.rsp.History())
		return b.out
	}
	out, keep := b.extract(ev.Data)
	if !keep {
		return nil // only there because tokentap asked for the IDs
	}
	if out != nil {
		data = out
	}
	b.out = b.rsp.AppendEvent(b.out[:0], data)
	if b.rsp.Done() {
		// response.failed before [DONE]: vLLM's own error frame, or a
		// chunk the translation could not read. The agent's stream ends
		// here; the upstream's rest is not read.
		b.finishTranslatedError()
		b.err = io.EOF
	}
	return b.out
}

// responsesEnd is what ends the agent's Responses stream when the
// upstream's ended (err is io.EOF) or broke, the call recorded already
// (recordErr being how that went): response.completed if the generation
// had finished, response.failed otherwise (responses.Stream.AppendEnd),
// never a stream that just stops; nothing for a client gone.
func (b *sseBody) responsesEnd(err, recordErr error) ([]byte, error) {
	b.out = b.out[:0]
	switch {
	case b.rsp.Done():
	case recordErr != nil:
		b.out = b.rsp.AppendEvent(b.out, failFrame("tokentap could not record this call: "+recordErr.Error()))
	case err == io.EOF:
		b.out = b.rsp.AppendEnd(b.out, nil)
		b.ex.keepHistory(b.rsp.History())
	case b.ex.ctx.Err() != nil:
	default:
		b.out = b.rsp.AppendEvent(b.out, failFrame("the upstream stream broke: "+err.Error()))
	}
	b.err = io.EOF
	return b.out, io.EOF
}

// responsesOversized ends the agent's Responses stream at an upstream
// event past the event bound, which cannot be translated in pieces.
func (b *sseBody) responsesOversized() ([]byte, error) {
	msg := fmt.Sprintf("an event of the upstream stream is over %d bytes: tokentap cannot translate it", b.ex.p.maxEvent())
	b.ex.noteUnread(msg)
	b.ex.finish(exporter.StatusError, http.StatusOK, "event_too_large", msg, b.result())
	b.out = b.rsp.AppendEvent(b.out[:0], failFrame(msg))
	b.err = io.EOF
	return b.out, nil
}
