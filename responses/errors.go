package responses

import (
	"net/http"
	"strconv"
)

// Error is a request the translator refuses, or an answer it cannot
// translate, in the OpenAI error envelope that Responses clients parse:
//
//	{"error":{"message":"…","type":"invalid_request_error","param":"…","code":400}}
//
// The proxy answers with Status and Body. Code is usually empty, which puts
// the status in "code" as vLLM does; OpenAI's own string codes (such as
// "previous_response_not_found") are kept where clients act on them.
type Error struct {
	Status  int    // HTTP status to answer with
	Type    string // "invalid_request_error", "server_error"
	Message string
	Param   string // the offending request field, "" for none
	Code    string // a string code; "" writes Status as a number
}

func (e *Error) Error() string {
	if e.Param != "" {
		return "responses: " + e.Param + ": " + e.Message
	}
	return "responses: " + e.Message
}

// Body returns the error as the JSON body to answer with.
func (e *Error) Body() []byte {
	b := make([]byte, 0, 96+len(e.Message))
	b = append(b, `{"error":{"message":`...)
	b = appendQuoted(b, []byte(e.Message))
	b = append(b, `,"type":`...)
	b = appendQuoted(b, []byte(e.Type))
	b = append(b, `,"param":`...)
	if e.Param == "" {
		b = append(b, "null"...)
	} else {
		b = appendQuoted(b, []byte(e.Param))
	}
	b = append(b, `,"code":`...)
	if e.Code == "" {
		b = strconv.AppendInt(b, int64(e.Status), 10)
	} else {
		b = appendQuoted(b, []byte(e.Code))
	}
	return append(b, "}}"...)
}

// badRequest is the 400 that vLLM's Responses layer answers to a request it
// cannot serve (invalid_request_error, numeric code).
func badRequest(param, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Message: msg, Param: param}
}
