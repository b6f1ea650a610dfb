package vllmsim

import (
	"net/http"
	"strconv"
	"strings"
)

// apiError is an error answered before any SSE byte is sent. Its body is
// vLLM's (>= 0.10.1) nested format {"error":{"message","type","param","code"}}
// with HTTP status == code.
type apiError struct {
	status  int
	typ     string
	message string
	param   *string // nil → "param":null
}

func strPtr(s string) *string { return &s }

// appendErrorBody appends the compact ErrorResponse JSON.
func (e *apiError) appendBody(b []byte) []byte {
	b = append(b, `{"error":{"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"type":`...)
	b = appendJSONString(b, e.typ)
	b = append(b, `,"param":`...)
	if e.param == nil {
		b = append(b, "null"...)
	} else {
		b = appendJSONString(b, *e.param)
	}
	b = append(b, `,"code":`...)
	b = strconv.AppendInt(b, int64(e.status), 10)
	return append(b, "}}"...)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, e.appendBody(nil))
}

// writeJSON answers a JSON body the way Starlette's JSONResponse does.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// badRequest is a serving-level 400 (ValueError / VLLMValidationError raised
// while preparing the engine request): type "BadRequestError".
func badRequest(msg string, param *string) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "BadRequestError", message: msg, param: param}
}

// internalError is the 500 vLLM answers for a failed generation.
func internalError() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: "InternalServerError", message: "Internal server error"}
}

// streamErrorEvent is the in-stream error event payload. vLLM writes it with
// plain json.dumps, hence the spaces, unlike every other chunk.
const streamErrorEvent = `{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`

// notFoundModel is _check_model's answer for an unknown model name.
func notFoundModel(model string) *apiError {
	return &apiError{
		status:  http.StatusNotFound,
		typ:     "NotFoundError",
		message: "The model `" + model + "` does not exist.",
		param:   strPtr("model"),
	}
}

// valErr is one pydantic error entry (an element of exc.errors()).
type valErr struct {
	typ   string
	loc   []any // string or int elements, the FastAPI "loc" tuple
	msg   string
	input string // Python repr of the offending input
	ctx   string // Python repr of the ctx dict, "" when absent
}

// repr prints the entry as Python prints the error dict.
func (e valErr) repr() string {
	var sb strings.Builder
	sb.WriteString("{'type': ")
	sb.WriteString(pyStrRepr(e.typ))
	sb.WriteString(", 'loc': (")
	for i, p := range e.loc {
		if i > 0 {
			sb.WriteString(", ")
		}
		switch v := p.(type) {
		case int:
			sb.WriteString(strconv.Itoa(v))
		default:
			sb.WriteString(pyStrRepr(v.(string)))
		}
	}
	if len(e.loc) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), 'msg': ")
	sb.WriteString(pyStrRepr(e.msg))
	sb.WriteString(", 'input': ")
	sb.WriteString(e.input)
	if e.ctx != "" {
		sb.WriteString(", 'ctx': ")
		sb.WriteString(e.ctx)
	}
	sb.WriteString("}")
	return sb.String()
}

// locParam joins a loc tuple into the "param" vLLM reports ("body.messages").
func locParam(loc []any) string {
	parts := make([]string, len(loc))
	for i, p := range loc {
		switch v := p.(type) {
		case int:
			parts[i] = strconv.Itoa(v)
		default:
			parts[i] = v.(string)
		}
	}
	return strings.Join(parts, ".")
}

// validationError is vLLM's RequestValidationError handler: HTTP 400, type is
// the HTTP phrase "Bad Request", message lists the pydantic errors, param is
// the VLLMValidationError's parameter if one caused it, else the first loc.
func validationError(errs []valErr, param *string) *apiError {
	label := "errors"
	if len(errs) == 1 {
		label = "error"
	}
	var sb strings.Builder
	sb.WriteString(strconv.Itoa(len(errs)))
	sb.WriteString(" validation ")
	sb.WriteString(label)
	sb.WriteString(":\n")
	for _, e := range errs {
		sb.WriteString("  ")
		sb.WriteString(e.repr())
		sb.WriteString("\n")
	}
	if param == nil && len(errs) > 0 {
		param = strPtr(locParam(errs[0].loc))
	}
	return &apiError{
		status:  http.StatusBadRequest,
		typ:     "Bad Request",
		message: strings.TrimRight(sb.String(), " \n"),
		param:   param,
	}
}

// modelValidatorError is a VLLMValidationError raised by a mode="before"
// model validator of the request class: pydantic wraps it as a value_error on
// loc ('body',) and the handler takes param from the exception.
func modelValidatorError(body *jv, msg, param, value string) *apiError {
	str := msg
	var extras []string
	if param != "" {
		extras = append(extras, "parameter="+param)
	}
	if value != "" {
		extras = append(extras, "value="+value)
	}
	if len(extras) > 0 {
		str += " (" + strings.Join(extras, ", ") + ")"
	}
	e := valErr{
		typ:   "value_error",
		loc:   []any{"body"},
		msg:   "Value error, " + str,
		input: pyRepr(body),
		ctx:   "{'error': VLLMValidationError(" + pyStrRepr(msg) + ")}",
	}
	var p *string
	if param != "" {
		p = strPtr(param)
	}
	return validationError([]valErr{e}, p)
}
