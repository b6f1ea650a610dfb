// Package httperr writes the errors tokentap itself answers with, in the
// OpenAI shape clients already parse:
// {"error":{"message":"...","type":"...","param":null,"code":N}}.
package httperr

import (
	"net/http"
	"strconv"

	"github.com/tokentap/tokentap/tokenids"
)

// Body returns the error body for an HTTP status and a message.
func Body(status int, message string) []byte { return BodyParam(status, message, "") }

// BodyParam is Body naming the request field at fault ("" for null), as
// vLLM does for an unknown model.
func BodyParam(status int, message, param string) []byte {
	b := []byte(`{"error":{"message":`)
	b = tokenids.AppendJSONString(b, message)
	b = append(b, `,"type":`...)
	b = tokenids.AppendJSONString(b, Type(status))
	b = append(b, `,"param":`...)
	if param == "" {
		b = append(b, "null"...)
	} else {
		b = tokenids.AppendJSONString(b, param)
	}
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	return append(b, "}}"...)
}

// Write answers with an OpenAI-shaped error.
func Write(w http.ResponseWriter, status int, message string) {
	body := Body(status, message)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// Type names the error the way the OpenAI SDKs name the exception they
// raise for the status.
func Type(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "BadRequestError"
	case http.StatusUnauthorized:
		return "AuthenticationError"
	case http.StatusForbidden:
		return "PermissionDeniedError"
	case http.StatusNotFound:
		return "NotFoundError"
	case http.StatusMethodNotAllowed:
		return "MethodNotAllowedError"
	case http.StatusRequestTimeout:
		return "RequestTimeoutError"
	case http.StatusConflict:
		return "ConflictError"
	case http.StatusRequestEntityTooLarge:
		return "RequestTooLargeError"
	case http.StatusTooManyRequests:
		return "RateLimitError"
	case http.StatusBadGateway:
		return "BadGatewayError"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailableError"
	case http.StatusGatewayTimeout:
		return "GatewayTimeoutError"
	case http.StatusInsufficientStorage:
		return "InsufficientStorageError"
	}
	if status >= 500 {
		return "InternalServerError"
	}
	return "BadRequestError"
}
