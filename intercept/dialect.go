package intercept

// Agent harness dialects (DESIGN §10). Claude Code and the Anthropic SDKs
// speak the Anthropic Messages API. vLLM serves it, but returns no token
// IDs from it, so tokentap translates: a POST /v1/messages becomes the
// /v1/chat/completions request vLLM's own layer would build (package
// anthropic), goes through the chat path like any chat call (the same
// injection of return_token_ids, --force-param, --model-map, extraction,
// record), and its answer is translated back: a JSON Message, or the
// Messages SSE stream, event by event as the chat stream yields it. Every
// error on these routes is in Anthropic's shape.
//
// The record is the chat call that was sent upstream, with the dialect
// (tokentap.dialect = anthropic.messages) and the agent's path.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/tokenids"
)

// dialect is the API an agent's request speaks, as far as the shape of
// tokentap's answers (its own errors included) goes.
type dialect uint8

const (
	dialectOpenAI dialect = iota // chat, completions, and everything forwarded untouched
	dialectAnthropic
	dialectResponses // OpenAI Responses: OpenAI's error envelope, Responses answers
)

// route is what a request (its method and its path after the rollout
// prefix) is to tokentap.
type route uint8

const (
	routeForward     route = iota // forwarded untouched, not traced
	routeChat                     // POST /v1/chat/completions
	routeCompletions              // POST /v1/completions
	routeMessages                 // POST /v1/messages: translated to chat, traced
	routeCountTokens              // POST /v1/messages/count_tokens: translated to /tokenize, not traced
	routeResponses                // POST /v1/responses: translated to chat, traced (responses.go)
)

// The upstream paths of translated routes.
const (
	chatPath     = "/v1/chat/completions"
	tokenizePath = "/tokenize"
)

// routeOf classifies a request by its method and its path without the
// rollout prefix or the query (Claude Code posts /v1/messages?beta=true).
func routeOf(method, path string) route {
	if method != http.MethodPost {
		return routeForward
	}
	switch path {
	case chatPath:
		return routeChat
	case "/v1/completions":
		return routeCompletions
	case "/v1/messages":
		return routeMessages
	case "/v1/messages/count_tokens":
		return routeCountTokens
	case "/v1/responses":
		return routeResponses
	}
	return routeForward
}

// endpoint is the traced endpoint a route becomes upstream (0: not traced).
func (rt route) endpoint() tokenids.Endpoint {
	switch rt {
	case routeChat, routeMessages, routeResponses:
		return tokenids.Chat
	case routeCompletions:
		return tokenids.Completions
	}
	return 0
}

func (rt route) dialect() dialect {
	if rt == routeMessages || rt == routeCountTokens {
		return dialectAnthropic
	}
	if rt == routeResponses {
		return dialectResponses
	}
	return dialectOpenAI
}

// dialectOfPath guesses the dialect of a request whose path could not be
// parsed (a bad rollout key), so that even that refusal comes in the shape
// the agent's SDK reads.
func dialectOfPath(method, path string) dialect {
	path = strings.TrimSuffix(path, "/")
	for _, p := range [...]string{"/v1/messages", "/v1/messages/count_tokens", "/v1/responses"} {
		if strings.HasSuffix(path, p) {
			return routeOf(method, p).dialect()
		}
	}
	return dialectOpenAI
}

// errorBody is one of tokentap's own errors in the shape of dialect d.
func errorBody(d dialect, status int, msg string) []byte {
	if d == dialectAnthropic {
		return anthropic.NewError(status, msg).Body()
	}
	return httperr.Body(status, msg)
}

// writeError answers with one of tokentap's own errors in the shape of d.
func writeError(w http.ResponseWriter, d dialect, status int, msg string) {
	if d != dialectAnthropic {
		// OpenAI's envelope, which Responses clients read too.
		httperr.Write(w, status, msg)
		return
	}
	body := errorBody(d, status, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// dialectOfRequest is the dialect of the exchange a request belongs to.
func dialectOfRequest(r *http.Request) dialect {
	if ex := exchangeOf(r); ex != nil {
		return ex.dialect
	}
	return dialectOpenAI
}

// asAnthropicError reads what package anthropic returned as the error the
// agent gets (it returns *anthropic.Error only; anything else is a bug
// reported as a 500).
func asAnthropicError(err error) *anthropic.Error {
	var e *anthropic.Error
	if errors.As(err, &e) {
		return e
	}
	return anthropic.NewError(http.StatusInternalServerError, err.Error())
}

// dialectName is the tokentap.dialect of a traced call.
func (ex *exchange) dialectName() string {
	switch ex.dialect {
	case dialectAnthropic:
		return exporter.DialectAnthropicMessages
	case dialectResponses:
		return exporter.DialectOpenAIResponses
	}
	return exporter.EndpointDialect(ex.endpoint)
}

// reply is an answer tokentap makes itself from the response hook, whose
// Content-Length goproxy drops (it replaced the upstream's body), so the
// responseWriter puts it back.
func (ex *exchange) reply(r *http.Request, status int, body []byte) *http.Response {
	ex.contentLength = int64(len(body))
	return answer(r, status, body)
}

// prepareHeaders readies the headers of a translated request for vLLM. The
// Anthropic SDKs authenticate with x-api-key (ANTHROPIC_API_KEY) or a Bearer
// token (ANTHROPIC_AUTH_TOKEN); vLLM's --api-key takes Bearer only, so a
// lone x-api-key becomes one (unless --upstream-api-key replaced the
// agent's credentials already). The anthropic-* fields (version, beta) mean
// nothing to chat completions, and vLLM ignores them: they are dropped.
func (p *Proxy) prepareHeaders(h http.Header) {
	if key := h.Get("X-Api-Key"); key != "" && h.Get("Authorization") == "" && p.cfg.UpstreamAPIKey == "" {
		h.Set("Authorization", "Bearer "+key)
	}
	h.Del("X-Api-Key")
	for name := range h {
		if strings.HasPrefix(name, "Anthropic-") {
			delete(h, name)
		}
	}
	// tokentap reads and rewrites the answer: the agent's codings are no
	// concern of the upstream's.
	h.Del("Accept-Encoding")
}

// translateMessages turns a /v1/messages body into the chat request sent
// upstream. A body the translation refuses is recorded as a failed call
// and answered in Anthropic's shape.
func (p *Proxy) translateMessages(r *http.Request, ex *exchange, body []byte) ([]byte, *http.Response) {
	msgs, err := p.cfg.Anthropic.Messages(body)
	if err != nil {
		e := asAnthropicError(err)
		ex.finish(exporter.StatusError, e.Status, e.Type, e.Message, nil)
		return nil, answer(r, e.Status, e.Body())
	}
	ex.msgs = msgs
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = chatPath, "", ""
	return msgs.Chat, nil
}

// prepareCountTokens readies a count_tokens request: its body becomes the
// /tokenize request that renders the prompt /v1/messages would, naming the
// model --model-map maps the agent's to. It returns the answer when the
// request is refused.
func (p *Proxy) prepareCountTokens(r *http.Request, ex *exchange) *http.Response {
	body, resp := p.readRequestBody(r, ex)
	if resp != nil {
		return resp
	}
	tok, err := p.cfg.Anthropic.CountTokens(body)
	if err != nil {
		e := asAnthropicError(err)
		return answer(r, e.Status, e.Body())
	}
	tok, model, err := mapTokenizeModel(tok, p.cfg.ModelMap)
	if err != nil {
		return errorResponse(r, http.StatusInternalServerError, "tokentap: "+err.Error())
	}
	ex.countTokens = true
	ex.req.Model = model // for the choice of replica
	r.URL.Path, r.URL.RawPath, r.URL.RawQuery = tokenizePath, "", ""
	setRequestBody(r, tok)
	return nil
}

// mapTokenizeModel applies --model-map to the model of a /tokenize body
// made by anthropic.CountTokens, which writes the model first.
func mapTokenizeModel(body []byte, rules []tokenids.ModelRule) ([]byte, string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var model string
	for i := range 3 {
		tok, err := dec.Token()
		if err != nil {
			return nil, "", fmt.Errorf("the /tokenize body: %w", err)
		}
		switch i {
		case 1:
			if tok != "model" {
				return nil, "", errors.New("the /tokenize body does not start with its model")
			}
		case 2:
			s, ok := tok.(string)
			if !ok {
				return nil, "", errors.New("the /tokenize body's model is not a string")
			}
			model = s
		}
	}
	mapped, ok := tokenids.MapModel(rules, model)
	if !ok {
		return body, model, nil
	}
	end := int(dec.InputOffset())
	out := append([]byte(`{"model":`), tokenids.AppendJSONString(nil, mapped)...)
	return append(out, body[end:]...), mapped, nil
}

// setRequestBody replaces a request's body.
func setRequestBody(r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// countTokensAnswer turns the upstream's /tokenize answer into the
// count_tokens answer, or its error into an Anthropic one.
func (ex *exchange) countTokensAnswer(resp *http.Response) *http.Response {
	if codings, err := contentCodings(resp.Header); err != nil {
		resp.Body.Close()
		return ex.reply(resp.Request, http.StatusBadGateway, anthropic.NewError(http.StatusBadGateway, err.Error()).Body())
	} else if len(codings) > 0 {
		resp.Body = &decodedBody{upstream: resp.Body, codings: codings}
	}
	body, err := ex.readBody(resp)
	if err != nil {
		resp.Body.Close()
		e := anthropic.NewError(http.StatusBadGateway, "reading the upstream's /tokenize answer: "+err.Error())
		return ex.reply(resp.Request, e.Status, e.Body())
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := anthropic.UpstreamError(resp.StatusCode, body)
		return ex.reply(resp.Request, e.Status, e.Body())
	}
	out, err := anthropic.CountTokensAnswer(body)
	if err != nil {
		e := asAnthropicError(err)
		return ex.reply(resp.Request, e.Status, e.Body())
	}
	return ex.reply(resp.Request, http.StatusOK, out)
}

// messagesUpstreamError answers an upstream error to a /v1/messages call in
// Anthropic's shape, with the upstream's status and message, and records
// the call with the status the agent gets.
func (ex *exchange) messagesUpstreamError(resp *http.Response, body []byte, errType, msg string) *http.Response {
	e := anthropic.UpstreamError(resp.StatusCode, body)
	ex.finish(exporter.StatusError, e.Status, errType, msg, nil)
	return ex.reply(resp.Request, e.Status, e.Body())
}

// messagesAnswer translates a non-streaming chat answer (read and
// stripped) into the Anthropic Message, and commits the call before the
// agent gets any of it.
func (ex *exchange) messagesAnswer(resp *http.Response, res *tokenids.Result, chat []byte, parseErr error) *http.Response {
	var agentErr *anthropic.Error
	errType, msg := "", ""
	var out []byte
	if parseErr != nil {
		ex.noteProblem(parseErr)
		errType, msg = "upstream_malformed", "the upstream's answer is not valid JSON: "+parseErr.Error()
		agentErr = anthropic.NewError(http.StatusBadGateway, msg)
	} else if m, err := ex.msgs.Answer(chat); err != nil {
		agentErr = asAnthropicError(err)
		errType, msg = "translation_failed", "the upstream's answer could not be translated: "+agentErr.Message
	} else {
		out = m
	}
	if agentErr != nil {
		ex.finish(exporter.StatusError, agentErr.Status, errType, msg, res)
		return ex.reply(resp.Request, agentErr.Status, agentErr.Body())
	}
	if err := ex.finish(exporter.StatusOK, resp.StatusCode, "", "", res); err != nil {
		return errorResponse(resp.Request, http.StatusServiceUnavailable, "tokentap could not record this call, so it withholds the answer: "+err.Error())
	}
	ex.setBody(resp, out)
	resp.Header.Set("Content-Type", "application/json")
	return resp
}

// messagesTooLarge refuses a chat answer past the bytes tokentap reads
// whole: it cannot be translated in pieces.
func (ex *exchange) messagesTooLarge(resp *http.Response) *http.Response {
	resp.Body.Close()
	msg := fmt.Sprintf("the upstream's answer is over %d bytes: tokentap cannot translate it", ex.p.maxResponse())
	ex.noteUnread(msg)
	ex.finish(exporter.StatusError, http.StatusBadGateway, "answer_too_large", msg, nil)
	return ex.reply(resp.Request, http.StatusBadGateway, errorBody(ex.dialect, http.StatusBadGateway, msg))
}

// messagesUndecodable refuses a chat answer in a content coding tokentap
// cannot decode: it cannot be translated.
func (ex *exchange) messagesUndecodable(resp *http.Response, err error) *http.Response {
	resp.Body.Close()
	ex.noteProblem(err)
	ex.finish(exporter.StatusError, http.StatusBadGateway, "upstream_encoding", err.Error(), nil)
	return ex.reply(resp.Request, http.StatusBadGateway, errorBody(ex.dialect, http.StatusBadGateway, err.Error()))
}

// The streamed side: sseBody translates each event the chat stream yields
// (sse.go) through an anthropic.Stream. What follows is its part.

// appendErrorEvent appends an Anthropic error event, for an error after the
// translator's stream has ended (its own AppendError then appends nothing).
func appendErrorEvent(dst []byte, e *anthropic.Error) []byte {
	dst = append(dst, "event: error\ndata: "...)
	dst = append(dst, e.Body()...)
	return append(dst, "\n\n"...)
}

// messagesEvent hands on what one chat event becomes in the Messages
// stream. When the translated stream ends with this event (message_stop at
// "data: [DONE]", or an error event), the call is committed first, so that
// the agent never has a whole answer the store lacks; a failed commit turns
// the end into an error event.
func (b *sseBody) messagesEvent(ev tokenids.Event) []byte {
	if ev.DataLines == 0 || b.msgs.Done() {
		return nil // comments and keep-alives: Anthropic streams have none
	}
	done := tokenids.IsDone(ev.Data)
	data := ev.Data
	if done {
		b.stream.Event(ev.Data)
	} else {
		out, keep := b.extract(ev.Data)
		if !keep {
			return nil // only there because tokentap asked for the IDs
		}
		if out != nil {
			data = out
		}
	}
	b.out = b.msgs.AppendEvent(b.out[:0], data)
	if !b.msgs.Done() {
		return b.out
	}
	var err error
	if done {
		err = b.finishStream()
	} else {
		// An error event before [DONE]: vLLM's own error frame, or a
		// chunk the translation could not read. The agent's stream ends
		// here; the upstream's rest is not read.
		err = b.finishTranslatedError()
		b.err = io.EOF
	}
	if err != nil {
		b.out = appendErrorEvent(b.out[:0], anthropic.NewError(http.StatusServiceUnavailable, "tokentap could not record this call: "+err.Error()))
	}
	return b.out
}

// finishTranslatedError records a stream whose translation ended in an
// error event before the upstream's terminator.
func (b *sseBody) finishTranslatedError() error {
	res := b.result()
	switch {
	case res.Error != nil, b.ex.malformed:
		return b.finishStream()
	}
	return b.ex.finish(exporter.StatusError, http.StatusOK, "translation_failed", "an event of the upstream stream could not be translated", res)
}

// messagesEnd is what ends the agent's Messages stream when the upstream's
// ended (err is io.EOF) or broke, the call recorded already (recordErr
// being how that went): a normal end or an error event, never a stream
// that just stops (anthropic.Stream.AppendEnd); nothing for a client gone.
func (b *sseBody) messagesEnd(err, recordErr error) ([]byte, error) {
	b.out = b.out[:0]
	switch {
	case b.msgs.Done():
	case recordErr != nil:
		b.out = b.msgs.AppendError(b.out, anthropic.NewError(http.StatusServiceUnavailable, "tokentap could not record this call: "+recordErr.Error()))
	case err == io.EOF:
		b.out = b.msgs.AppendEnd(b.out)
	case b.ex.ctx.Err() != nil:
	default:
		b.out = b.msgs.AppendError(b.out, anthropic.NewError(http.StatusBadGateway, "the upstream stream broke: "+err.Error()))
	}
	b.err = io.EOF
	return b.out, io.EOF
}

// messagesOversized ends the agent's Messages stream at an upstream event
// past the event bound, which cannot be translated in pieces.
func (b *sseBody) messagesOversized() ([]byte, error) {
	msg := fmt.Sprintf("an event of the upstream stream is over %d bytes: tokentap cannot translate it", b.ex.p.maxEvent())
	b.ex.noteUnread(msg)
	b.ex.finish(exporter.StatusError, http.StatusOK, "event_too_large", msg, b.result())
	b.out = b.msgs.AppendError(b.out[:0], anthropic.NewError(http.StatusBadGateway, msg))
	b.err = io.EOF
	return b.out, nil
}
