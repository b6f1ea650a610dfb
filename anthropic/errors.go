package anthropic

import (
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error is an error in the Anthropic shape. Everything this package refuses
// is an *Error, and the proxy answers every failure on /v1/messages* with
// one: Status is the HTTP status and Body the JSON to send.
//
// Type uses Anthropic's vocabulary (invalid_request_error, api_error, ...),
// where vLLM's own layer sends its OpenAI-side class names
// ("BadRequestError") and, for request validation, the OpenAI envelope
// (vLLM issue #57997). The SDKs classify errors by status; the type is for
// people reading logs, and Anthropic's names are what they expect.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string {
	return "anthropic: " + strconv.Itoa(e.Status) + " " + e.Type + ": " + e.Message
}

// Body returns {"type":"error","error":{"type":...,"message":...}}.
func (e *Error) Body() []byte {
	return appendErrorJSON(make([]byte, 0, 48+len(e.Type)+len(e.Message)), e.Type, e.Message)
}

func appendErrorJSON(dst []byte, typ, msg string) []byte {
	dst = append(dst, `{"type":"error","error":{"type":`...)
	dst = appendPyString(dst, typ, false)
	dst = append(dst, `,"message":`...)
	dst = appendPyString(dst, msg, false)
	return append(dst, "}}"...)
}

// NewError builds one of tokentap's own errors (a bad rollout key, a body
// too large, an unreachable upstream, ...) with the Anthropic type that
// goes with status.
func NewError(status int, message string) *Error {
	return &Error{Status: status, Type: ErrorType(status), Message: message}
}

// ErrorType is the Anthropic error type for an HTTP status, after
// Anthropic's documented mapping (docs: "errors"); 503 is reported as
// overloaded_error, the nearest Anthropic has to "unavailable".
func ErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case http.StatusServiceUnavailable, 529:
		return "overloaded_error"
	}
	if status >= 400 && status < 500 {
		return "invalid_request_error"
	}
	return "api_error"
}

// maxMessage bounds how much of an unrecognised upstream body becomes the
// error message.
const maxMessage = 2048

// UpstreamError turns an error answer of vLLM's chat completions or
// /tokenize endpoint (status >= 400) into the Anthropic error the agent gets,
// keeping the status and the upstream's message. It reads every shape vLLM
// has used: {"error":{"message",...}} (v0.10.1+), {"object":"error",
// "message",...} (older), {"error":"Unauthorized"} (--api-key), FastAPI's
// {"detail":...}, an Anthropic error passed through, or plain text.
func UpstreamError(status int, body []byte) *Error {
	if status < 400 || status > 599 {
		status = http.StatusBadGateway
	}
	e := &Error{Status: status, Type: ErrorType(status)}
	if typ, msg, ok := errorMessage(body); ok {
		if typ != "" {
			e.Type = typ
		}
		e.Message = msg
		return e
	}
	text := strings.TrimSpace(string(body))
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	if len(text) > maxMessage {
		text = strings.ToValidUTF8(text[:maxMessage], "") + "…"
	}
	if text == "" {
		text = http.StatusText(status)
		if text == "" {
			text = "upstream error " + strconv.Itoa(status)
		}
	}
	e.Message = text
	return e
}

// errorMessage finds the message in a JSON error body. typ is set only for
// a body already in the Anthropic shape, whose type is kept.
func errorMessage(body []byte) (typ, msg string, ok bool) {
	if validDocument(body) != nil {
		return "", "", false
	}
	v := body[skipWS(body, 0):]
	if !isObject(v) {
		return "", "", false
	}
	var errVal, message, detail, topType []byte
	pick(newIter(v), []string{"error", "message", "detail", "type"}, &errVal, &message, &detail, &topType)
	switch {
	case isObject(errVal):
		var m, t []byte
		pick(newIter(errVal), []string{"message", "type"}, &m, &t)
		if !isString(m) {
			return "", "", false
		}
		if isString(topType) && str(topType) == "error" && isString(t) {
			return str(t), str(m), true
		}
		return "", str(m), true
	case isString(errVal):
		return "", str(errVal), true
	case isString(message):
		return "", str(message), true
	case isString(detail):
		return "", str(detail), true
	case len(detail) > 0:
		out, err := pyJSON{allowNaN: true}.appendPyJSON(nil, detail)
		if err != nil || len(out) > maxMessage {
			return "", "", false
		}
		return "", string(out), true
	}
	return "", "", false
}

// invalid is a request the translation refuses: 400 invalid_request_error,
// the message naming the field by its path as Anthropic's API does
// ("messages.1.content.0.type: ...").
func invalid(path, msg string) *Error {
	if path != "" {
		msg = path + ": " + msg
	}
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg}
}

// badUpstream is an upstream answer this package cannot read.
func badUpstream(msg string) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "api_error", Message: "upstream answer: " + msg}
}
