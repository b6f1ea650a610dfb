package anthropic

import (
	"strings"
	"testing"
)

func TestUpstreamError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // Body()
		code   int
	}{
		{"unknown model", 404, "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}",
			"{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"The model `x` does not exist.\"}}", 404},
		{"context length", 400, `{"error":{"message":"This model's maximum context length is 2048 tokens.","type":"BadRequestError","param":"input_tokens","code":400}}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"This model's maximum context length is 2048 tokens."}}`, 400},
		{"api key middleware", 401, `{"error":"Unauthorized"}`,
			`{"type":"error","error":{"type":"authentication_error","message":"Unauthorized"}}`, 401},
		{"old flat shape", 400, `{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}`, 400},
		{"FastAPI detail", 405, `{"detail":"Method Not Allowed"}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"Method Not Allowed"}}`, 405},
		{"FastAPI validation list", 422, `{"detail":[{"loc":["body","messages"],"msg":"Field required"}]}`,
			`{"type":"error","error":{"type":"invalid_request_error","message":"[{\"loc\":[\"body\",\"messages\"],\"msg\":\"Field required\"}]"}}`, 422},
		{"already Anthropic", 400, `{"type":"error","error":{"type":"BadRequestError","message":"at most 4 items"}}`,
			`{"type":"error","error":{"type":"BadRequestError","message":"at most 4 items"}}`, 400},
		{"plain text", 502, "  Bad gateway from nginx\n",
			`{"type":"error","error":{"type":"api_error","message":"Bad gateway from nginx"}}`, 502},
		{"empty body", 503, "",
			`{"type":"error","error":{"type":"overloaded_error","message":"Service Unavailable"}}`, 503},
		{"rate limited", 429, `{"error":{"message":"slow down"}}`,
			`{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`, 429},
		{"not an error status", 200, `{}`,
			`{"type":"error","error":{"type":"api_error","message":"{}"}}`, 502},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := UpstreamError(tt.status, []byte(tt.body))
			if got := string(e.Body()); got != tt.want {
				t.Errorf("Body\n got %s\nwant %s", got, tt.want)
			}
			if e.Status != tt.code {
				t.Errorf("Status %d, want %d", e.Status, tt.code)
			}
		})
	}
	long := UpstreamError(500, []byte(strings.Repeat("é", 3000)))
	if len(long.Message) > maxMessage+4 || validDocument(long.Body()) != nil {
		t.Errorf("long text body: %d bytes, valid %v", len(long.Message), validDocument(long.Body()))
	}
	bin := UpstreamError(500, []byte("\xff\xfe oops"))
	if validDocument(bin.Body()) != nil {
		t.Errorf("invalid UTF-8 gave invalid JSON: %s", bin.Body())
	}
}

func TestNewError(t *testing.T) {
	tests := []struct {
		status int
		typ    string
	}{
		{400, "invalid_request_error"}, {401, "authentication_error"}, {402, "billing_error"},
		{403, "permission_error"}, {404, "not_found_error"}, {409, "invalid_request_error"},
		{413, "request_too_large"}, {429, "rate_limit_error"}, {500, "api_error"},
		{502, "api_error"}, {503, "overloaded_error"}, {504, "timeout_error"}, {529, "overloaded_error"},
	}
	for _, tt := range tests {
		e := NewError(tt.status, `attempt "a" is complete`)
		want := `{"type":"error","error":{"type":"` + tt.typ + `","message":"attempt \"a\" is complete"}}`
		if got := string(e.Body()); got != want || e.Status != tt.status {
			t.Errorf("NewError(%d): %d %s, want %s", tt.status, e.Status, got, want)
		}
	}
	if got := NewError(404, "x").Error(); got != "anthropic: 404 not_found_error: x" {
		t.Errorf("Error() = %q", got)
	}
}
