package anthropic

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// Translator turns Anthropic request bodies into vLLM chat bodies. Its zero
// value follows vLLM's own defaults (preserve, "none"); set the fields to
// what the deployed vLLM resolves its "auto" options to.
type Translator struct {
	// InlineSystem places role:"system" messages inside "messages"; ""
	// means InlinePreserve.
	InlineSystem InlineSystem
	// DisabledThinkingEffort is the reasoning_effort sent for
	// thinking.type "disabled"; "" means "none". vLLM uses "low" for
	// templates that ignore or reject "none" (GLM-5.3, Harmony).
	DisabledThinkingEffort string

	now func() time.Time // for the call_<unix> ids of id-less tool_use blocks
}

// Request is a translated /v1/messages request.
type Request struct {
	// Chat is the /v1/chat/completions body to send upstream (tokentap
	// still has to inject return_token_ids).
	Chat []byte
	// Stream says the agent asked for SSE: answer with NewStream, else
	// with Answer.
	Stream bool
	// Model is the model the agent named (the answer names the upstream's).
	Model string

	random io.Reader // signature and id randomness; nil means crypto/rand
}

var efforts = []string{"none", "low", "medium", "high", "xhigh", "max"}

func (t *Translator) config() (InlineSystem, string, *Error) {
	mode := t.InlineSystem
	switch mode {
	case "":
		mode = InlinePreserve
	case InlinePreserve, InlineFold:
	default:
		return "", "", &Error{Status: http.StatusInternalServerError, Type: "api_error",
			Message: "tokentap: unknown Anthropic inline-system mode " + strconv.Quote(string(mode))}
	}
	effort := t.DisabledThinkingEffort
	if effort == "" {
		return mode, "none", nil
	}
	for _, e := range efforts {
		if e == effort {
			return mode, effort, nil
		}
	}
	return "", "", &Error{Status: http.StatusInternalServerError, Type: "api_error",
		Message: "tokentap: unknown disabled-thinking effort " + strconv.Quote(effort)}
}

// Messages translates a POST /v1/messages body into the chat completions
// request vLLM's own /v1/messages handler would build from it
// (vllm/entrypoints/anthropic/serving.py, to_chat_completion_request @a8c3bdb2),
// so the chat template renders the same prompt tokens. A body vLLM would
// refuse gives an *Error (400 invalid_request_error); fields vLLM ignores
// (metadata, service_tier, container, mcp_servers, thinking.display, …) are
// dropped.
func (t *Translator) Messages(body []byte) (*Request, error) {
	mode, disabledEffort, cerr := t.config()
	if cerr != nil {
		return nil, cerr
	}
	r, err := parseRequest(body, false)
	if err != nil {
		return nil, err
	}
	msgs, err := t.chatMessages(r, mode)
	if err != nil {
		return nil, err
	}
	if err := checkToolChoice(r); err != nil {
		return nil, err
	}
	dst := make([]byte, 0, len(body)+256)
	dst = append(dst, `{"model":`...)
	dst = appendPyString(dst, r.model, false)
	dst = append(dst, `,"max_tokens":`...)
	dst = strconv.AppendInt(dst, r.maxTokens, 10)
	dst = append(dst, `,"max_completion_tokens":`...)
	dst = strconv.AppendInt(dst, r.maxTokens, 10)
	dst = append(dst, `,"messages":`...)
	dst = appendChatMessages(dst, msgs)
	compact := pyJSON{}
	raw := func(key string, v []byte) {
		if v == nil {
			return
		}
		dst = append(dst, ',', '"')
		dst = append(dst, key...)
		dst = append(dst, '"', ':')
		dst, _ = compact.appendPyJSON(dst, v) // validated, finite numbers
	}
	raw("stop", r.stop)
	raw("temperature", r.temperature)
	raw("top_p", r.topP)
	if r.topK != nil {
		k, _ := asInt(r.topK, "")
		dst = append(dst, `,"top_k":`...)
		dst = strconv.AppendInt(dst, k, 10)
	}
	if r.cacheSalt != nil {
		dst = append(dst, `,"cache_salt":`...)
		dst = appendPyString(dst, *r.cacheSalt, false)
	}
	raw("kv_transfer_params", r.kvTransfer)
	raw("ec_transfer_params", r.ecTransfer)
	raw("vllm_xargs", r.vllmXargs)
	raw("chat_template_kwargs", r.templateKw)
	// output_config first, then thinking, which overrides its effort.
	if r.schema != nil {
		dst = append(dst, `,"response_format":{"type":`...)
		dst = appendPyString(dst, r.schemaType, false)
		dst = append(dst, `,"json_schema":{"name":`...)
		dst = appendPyString(dst, r.schemaType, false)
		dst = append(dst, `,"schema":`...)
		dst, _ = compact.appendPyJSON(dst, r.schema)
		dst = append(dst, "}}"...)
	}
	effort := r.effort
	if r.thinking != nil && r.thinking.typ == "disabled" {
		effort = disabledEffort
	}
	if effort != "" {
		dst = append(dst, `,"reasoning_effort":`...)
		dst = appendPyString(dst, effort, false)
	}
	if r.thinking != nil && r.thinking.typ == "enabled" {
		dst = append(dst, `,"thinking_token_budget":`...)
		dst = strconv.AppendInt(dst, r.thinking.budget, 10)
	}
	dst = appendTools(dst, r)
	if r.stream {
		dst = append(dst, `,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}`...)
	}
	dst = append(dst, '}')
	return &Request{Chat: dst, Stream: r.stream, Model: r.model}, nil
}

// checkToolChoice refuses a tool_choice that needs tools when there are
// none. vLLM's layer sets it on the chat request after validation, so it
// reaches generation unchecked; sent as JSON, chat completions would refuse
// it anyway ("When using `tool_choice`, `tools` must be set.").
func checkToolChoice(r *anthropicRequest) *Error {
	if r.toolChoice == nil || len(r.tools) > 0 {
		return nil
	}
	if r.toolChoice.typ == "any" || r.toolChoice.typ == "tool" {
		return invalid("tool_choice.type", "'"+r.toolChoice.typ+"' needs at least one tool in tools")
	}
	return nil
}

// appendTools writes tools, tool_choice and parallel_tool_calls (_convert_tools,
// _convert_tool_choice). An empty tools list is left out: vLLM's layer sets
// tools=[] and tool_choice="auto", which renders and generates as no tools,
// while chat completions refuses "tools": [] in a body.
func appendTools(dst []byte, r *anthropicRequest) []byte {
	tc := r.toolChoice
	if len(r.tools) > 0 {
		dst = appendToolList(dst, r.tools)
		if tc == nil {
			dst = append(dst, `,"tool_choice":"auto"`...)
		}
	}
	if tc == nil {
		return dst
	}
	if len(r.tools) > 0 {
		switch tc.typ {
		case "auto":
			dst = append(dst, `,"tool_choice":"auto"`...)
		case "any":
			dst = append(dst, `,"tool_choice":"required"`...)
		case "none":
			dst = append(dst, `,"tool_choice":"none"`...)
		case "tool":
			dst = append(dst, `,"tool_choice":{"type":"function","function":{"name":`...)
			dst = appendPyString(dst, tc.name, false)
			dst = append(dst, "}}"...)
		}
	}
	if tc.disableParallel {
		return append(dst, `,"parallel_tool_calls":false`...)
	}
	return append(dst, `,"parallel_tool_calls":true`...)
}

func appendToolList(dst []byte, tools []tool) []byte {
	dst = append(dst, `,"tools":[`...)
	for i, t := range tools {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"type":"function","function":{"name":`...)
		dst, _ = pyJSON{}.appendPyJSON(dst, t.name)
		if t.description != nil {
			dst = append(dst, `,"description":`...)
			dst, _ = pyJSON{}.appendPyJSON(dst, t.description)
		}
		dst = append(dst, `,"parameters":`...)
		dst = appendSchema(dst, t.schema)
		if t.strict != nil {
			dst = append(dst, `,"strict":`...)
			dst = append(dst, t.strict...)
		}
		if t.deferLoad != nil {
			dst = append(dst, `,"defer_loading":`...)
			dst = append(dst, t.deferLoad...)
		}
		dst = append(dst, "}}"...)
	}
	return append(dst, ']')
}

// appendSchema writes an input_schema with "type":"object" added at the end
// when it has no "type", as AnthropicTool's validator does to the dict (so
// the key lands last: templates print the dict in its order).
func appendSchema(dst, schema []byte) []byte {
	hasType := false
	it := newIter(schema)
	for k, esc, _, ok := it.member(); ok; k, esc, _, ok = it.member() {
		if keyIs(k, esc, "type") {
			hasType = true
		}
	}
	start := len(dst)
	dst, _ = pyJSON{}.appendPyJSON(dst, schema)
	if hasType {
		return dst
	}
	dst = dst[:len(dst)-1] // the closing brace
	if len(dst)-start > 1 {
		dst = append(dst, ',')
	}
	return append(dst, `"type":"object"}`...)
}

// CountTokens translates a POST /v1/messages/count_tokens body into a vLLM
// /tokenize body that renders the prompt /v1/messages would (same message
// translation, tools included), whose length is the count. Only the fields
// vLLM's count request has are read: model, messages, system, tools,
// tool_choice, chat_template_kwargs.
//
// One difference remains: /tokenize takes no tool_choice, which only
// templates that print a tool-choice instruction (Kimi K3) render.
func (t *Translator) CountTokens(body []byte) ([]byte, error) {
	mode, _, cerr := t.config()
	if cerr != nil {
		return nil, cerr
	}
	r, err := parseRequest(body, true)
	if err != nil {
		return nil, err
	}
	msgs, err := t.chatMessages(r, mode)
	if err != nil {
		return nil, err
	}
	dst := make([]byte, 0, len(body)+64)
	dst = append(dst, `{"model":`...)
	dst = appendPyString(dst, r.model, false)
	dst = append(dst, `,"messages":`...)
	dst = appendChatMessages(dst, msgs)
	if len(r.tools) > 0 {
		dst = appendToolList(dst, r.tools)
	}
	if r.templateKw != nil {
		dst = append(dst, `,"chat_template_kwargs":`...)
		dst, _ = pyJSON{}.appendPyJSON(dst, r.templateKw)
	}
	return append(dst, '}'), nil
}

// CountTokensAnswer turns vLLM's /tokenize answer ({"count":N,...}) into the
// count_tokens answer vLLM's own endpoint sends:
// {"input_tokens":N,"context_management":{"original_input_tokens":N}}.
func CountTokensAnswer(tokenize []byte) ([]byte, error) {
	if err := validDocument(tokenize); err != nil {
		return nil, badUpstream("/tokenize answer is not JSON: " + err.Error())
	}
	f, ferr := fields(tokenize[skipWS(tokenize, 0):], "", "count", "tokens")
	if ferr != nil {
		return nil, badUpstream("/tokenize answer is not an object")
	}
	var n int64
	switch {
	case isNumber(f[0]):
		var err *Error
		if n, err = asInt(f[0], "count"); err != nil || n < 0 {
			return nil, badUpstream("/tokenize count is not a count")
		}
	case isArray(f[1]):
		it := newIter(f[1])
		for _, ok := it.elem(); ok; _, ok = it.elem() {
			n++
		}
	default:
		return nil, badUpstream("/tokenize answer has no count")
	}
	dst := append(make([]byte, 0, 80), `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, n, 10)
	dst = append(dst, `,"context_management":{"original_input_tokens":`...)
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, "}}"...), nil
}
