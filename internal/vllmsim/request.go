package vllmsim

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// This file turns request bodies into typed requests, reproducing the two
// layers of vLLM's validation and their distinct error shapes:
//   - the request class's mode="before" model validators (stream_options
//     without stream, top_logprobs without logprobs, tool_choice rules, ...),
//     which see the raw JSON and raise VLLMValidationError;
//   - pydantic field validation (missing/mistyped fields), in lax mode.
// Both surface as FastAPI RequestValidationError → 400 "Bad Request".

// streamOptions is vLLM's StreamOptions after validation.
type streamOptions struct {
	includeUsage bool // default True inside the object
	continuous   bool // continuous_usage_stats
}

// commonRequest holds the fields chat and completions share.
type commonRequest struct {
	model             string
	n                 int
	maxTokens         *int64
	temperature       *float64
	topP              *float64
	seed              *int64
	stop              []string
	stopTokenIDs      []int64
	ignoreEOS         bool
	includeStopStr    bool
	minTokens         int64
	skipSpecial       bool
	promptLogprobs    *int64
	stream            bool
	streamOpts        *streamOptions
	echo              bool
	requestID         string
	returnTokenIDs    bool
	returnTokensAsIDs bool
}

// toolDef is one request tool: its function name, its tojson rendering,
// and what a policy needs to call it.
type toolDef struct {
	name        string
	json        string
	description string
	params      []string // parameters.properties keys, in order
	required    []string // parameters.required
}

type chatRequest struct {
	commonRequest
	messages            []Message
	logprobs            bool
	topLogprobs         int64
	tools               []toolDef
	toolsRaw            *jv    // the tools array as sent, nil when absent
	toolChoice          string // "none", "auto", "required" or "named"
	toolChoiceName      string // the function of a named tool_choice
	addGenerationPrompt bool
	continueFinal       bool
	kwargs              *jv // chat_template_kwargs, nil when absent
}

// noThink is Qwen3's template test "enable_thinking is false": only a JSON
// false counts.
func (r *chatRequest) noThink() bool {
	v := r.kwargs.get("enable_thinking")
	return v != nil && v.kind == 'b' && !v.b
}

// thinkingEnabled is the qwen3 reasoning parser's
// chat_template_kwargs.get("enable_thinking", True), taken as a truth value.
func (r *chatRequest) thinkingEnabled() bool {
	v := r.kwargs.get("enable_thinking")
	return v == nil || pyTruthy(v)
}

// promptInput is one completions prompt: text, or token IDs.
type promptInput struct {
	text  string
	ids   []int64
	isIDs bool
}

type completionRequest struct {
	commonRequest
	prompts  []promptInput
	logprobs *int64 // number of top alternatives; nil = no logprobs
}

// fieldParser validates the fields of one request body, collecting errors in
// pydantic's style. A JSON null is treated as "not set" for every field.
type fieldParser struct {
	body *jv
	errs []valErr
}

func (f *fieldParser) add(typ string, loc []any, msg string, v *jv, ctx string) {
	f.errs = append(f.errs, valErr{typ: typ, loc: loc, msg: msg, input: pyRepr(v), ctx: ctx})
}

func (f *fieldParser) value(name string) *jv {
	v := f.body.get(name)
	if v == nil || v.kind == 'z' {
		return nil
	}
	return v
}

// laxInt validates an int the way pydantic's lax mode does.
func laxInt(v *jv) (int64, string, string) {
	switch v.kind {
	case 'n':
		if numberIsFloat(v.str) {
			fl, err := strconv.ParseFloat(v.str, 64)
			if err != nil || math.IsInf(fl, 0) {
				return 0, "finite_number", "Input should be a finite number"
			}
			if fl != math.Trunc(fl) {
				return 0, "int_from_float", "Input should be a valid integer, got a number with a fractional part"
			}
			if math.Abs(fl) > 9.2e18 {
				return 0, "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size"
			}
			return int64(fl), "", ""
		}
		n, err := strconv.ParseInt(v.str, 10, 64)
		if err != nil {
			return 0, "int_parsing_size", "Unable to parse input string as an integer, exceeded maximum size"
		}
		return n, "", ""
	case 'b':
		if v.b {
			return 1, "", ""
		}
		return 0, "", ""
	case 's':
		n, err := strconv.ParseInt(strings.TrimSpace(v.str), 10, 64)
		if err != nil {
			return 0, "int_parsing", "Input should be a valid integer, unable to parse string as an integer"
		}
		return n, "", ""
	}
	return 0, "int_type", "Input should be a valid integer"
}

func (f *fieldParser) optInt(name string) *int64 {
	v := f.value(name)
	if v == nil {
		return nil
	}
	n, typ, msg := laxInt(v)
	if typ != "" {
		f.add(typ, []any{"body", name}, msg, v, "")
		return nil
	}
	return &n
}

func (f *fieldParser) optFloat(name string) *float64 {
	v := f.value(name)
	if v == nil {
		return nil
	}
	switch v.kind {
	case 'n':
		fl, err := strconv.ParseFloat(v.str, 64)
		if err == nil {
			return &fl
		}
	case 'b':
		fl := 0.0
		if v.b {
			fl = 1
		}
		return &fl
	case 's':
		fl, err := strconv.ParseFloat(strings.TrimSpace(v.str), 64)
		if err == nil {
			return &fl
		}
		f.add("float_parsing", []any{"body", name}, "Input should be a valid number, unable to parse string as a number", v, "")
		return nil
	}
	f.add("float_type", []any{"body", name}, "Input should be a valid number", v, "")
	return nil
}

var boolStrings = map[string]bool{
	"0": false, "off": false, "f": false, "false": false, "n": false, "no": false,
	"1": true, "on": true, "t": true, "true": true, "y": true, "yes": true,
}

func (f *fieldParser) optBool(name string) *bool {
	v := f.value(name)
	if v == nil {
		return nil
	}
	return f.boolAt(v, []any{"body", name})
}

func (f *fieldParser) boolAt(v *jv, loc []any) *bool {
	switch v.kind {
	case 'b':
		b := v.b
		return &b
	case 'n':
		if fl, err := strconv.ParseFloat(v.str, 64); err == nil && (fl == 0 || fl == 1) {
			b := fl == 1
			return &b
		}
		f.add("bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", v, "")
		return nil
	case 's':
		if b, ok := boolStrings[strings.ToLower(strings.TrimSpace(v.str))]; ok {
			return &b
		}
		f.add("bool_parsing", loc, "Input should be a valid boolean, unable to interpret input", v, "")
		return nil
	}
	f.add("bool_type", loc, "Input should be a valid boolean", v, "")
	return nil
}

func (f *fieldParser) boolOr(name string, def bool) bool {
	if b := f.optBool(name); b != nil {
		return *b
	}
	return def
}

func (f *fieldParser) optString(name string) *string {
	v := f.value(name)
	if v == nil {
		return nil
	}
	if v.kind != 's' {
		f.add("string_type", []any{"body", name}, "Input should be a valid string", v, "")
		return nil
	}
	s := v.str
	return &s
}

// stopField validates stop: str | list[str] | None.
func (f *fieldParser) stopField() []string {
	v := f.value("stop")
	if v == nil {
		return nil
	}
	switch v.kind {
	case 's':
		return []string{v.str}
	case 'a':
		var out []string
		ok := true
		for i, it := range v.items {
			if it.kind != 's' {
				f.add("string_type", []any{"body", "stop", "list[str]", i}, "Input should be a valid string", it, "")
				ok = false
				continue
			}
			out = append(out, it.str)
		}
		if ok {
			return out
		}
		f.add("string_type", []any{"body", "stop", "str"}, "Input should be a valid string", v, "")
		return nil
	}
	f.add("string_type", []any{"body", "stop", "str"}, "Input should be a valid string", v, "")
	f.add("list_type", []any{"body", "stop", "list[str]"}, "Input should be a valid list", v, "")
	return nil
}

// intList validates list[int] | None.
func (f *fieldParser) intList(name string) []int64 {
	v := f.value(name)
	if v == nil {
		return nil
	}
	if v.kind != 'a' {
		f.add("list_type", []any{"body", name}, "Input should be a valid list", v, "")
		return nil
	}
	out := make([]int64, 0, len(v.items))
	for i, it := range v.items {
		n, typ, msg := laxInt(it)
		if typ != "" {
			f.add(typ, []any{"body", name, i}, msg, it, "")
			continue
		}
		out = append(out, n)
	}
	return out
}

func (f *fieldParser) streamOptionsField() *streamOptions {
	v := f.value("stream_options")
	if v == nil {
		return nil
	}
	if v.kind != 'o' {
		f.add("model_type", []any{"body", "stream_options"}, "Input should be a valid dictionary or instance of StreamOptions", v, "")
		return nil
	}
	so := &streamOptions{includeUsage: true}
	if iu := v.get("include_usage"); iu != nil {
		if iu.kind == 'z' {
			// include_usage: null → `None or force_include` → no usage chunk.
			so.includeUsage = false
		} else if b := f.boolAt(iu, []any{"body", "stream_options", "include_usage"}); b != nil {
			so.includeUsage = *b
		}
	}
	if cu := v.get("continuous_usage_stats"); cu != nil && cu.kind != 'z' {
		if b := f.boolAt(cu, []any{"body", "stream_options", "continuous_usage_stats"}); b != nil {
			so.continuous = *b
		}
	}
	return so
}

// The field parsers below run in each request class's declaration order,
// because pydantic lists field errors in that order.

// parseSampling validates the sampling fields that follow "n" in both
// classes' declarations (seed through top_p).
func (f *fieldParser) parseSampling(c *commonRequest) {
	c.seed = f.optInt("seed")
	c.stop = f.stopField()
	c.stream = f.boolOr("stream", false)
	c.streamOpts = f.streamOptionsField()
}

// parseExtra validates the vLLM sampling extensions both classes declare
// after the OpenAI fields.
func (f *fieldParser) parseExtra(c *commonRequest) {
	f.optInt("top_k")
	f.optFloat("min_p")
	f.optFloat("repetition_penalty")
	c.stopTokenIDs = f.intList("stop_token_ids")
	c.includeStopStr = f.boolOr("include_stop_str_in_output", false)
	c.ignoreEOS = f.boolOr("ignore_eos", false)
	if m := f.optInt("min_tokens"); m != nil {
		c.minTokens = *m
	}
	c.skipSpecial = f.boolOr("skip_special_tokens", true)
	f.optBool("spaces_between_special_tokens")
	f.optInt("truncate_prompt_tokens")
	c.promptLogprobs = f.optInt("prompt_logprobs")
}

// parseTail validates the identifiers and token-ID switches at the end of
// both declarations.
func (f *fieldParser) parseTail(c *commonRequest) {
	if s := f.optString("request_id"); s != nil {
		c.requestID = *s
	}
	c.returnTokensAsIDs = f.boolOr("return_tokens_as_token_ids", false)
	c.returnTokenIDs = f.boolOr("return_token_ids", false)
}

func (f *fieldParser) model(c *commonRequest) {
	if s := f.optString("model"); s != nil {
		c.model = *s
	}
}

func (f *fieldParser) n(c *commonRequest) {
	c.n = 1
	if n := f.optInt("n"); n != nil {
		c.n = int(*n)
	}
}

// decodeBody parses the raw body like FastAPI does before validation.
func decodeBody(raw []byte) (*jv, *apiError) {
	if len(strings.TrimSpace(string(raw))) == 0 {
		// FastAPI treats an empty body as a missing body.
		return nil, validationError([]valErr{{typ: "missing", loc: []any{"body"}, msg: "Field required", input: "None"}}, nil)
	}
	body, err := parseOrdered(raw)
	if err != nil {
		pos := 0
		var se *json.SyntaxError
		if errors.As(err, &se) && se.Offset > 0 {
			pos = int(se.Offset) - 1
		} else {
			pos = len(raw)
		}
		msg := "Expecting value"
		if err.Error() == "extra data" {
			msg = "Extra data"
		}
		return nil, validationError([]valErr{{
			typ:   "json_invalid",
			loc:   []any{"body", pos},
			msg:   "JSON decode error",
			input: "{}",
			ctx:   "{'error': " + pyStrRepr(msg) + "}",
		}}, nil)
	}
	if body.kind != 'o' {
		return nil, validationError([]valErr{{
			typ:   "model_attributes_type",
			loc:   []any{"body"},
			msg:   "Input should be a valid dictionary or object to extract fields from",
			input: pyRepr(body),
		}}, nil)
	}
	return body, nil
}

// pyStr is Python's str() of a raw value, used in "value=" error suffixes.
func pyStr(v *jv) string {
	if v.kind == 's' {
		return v.str
	}
	return pyRepr(v)
}

// numeric returns the float value of a JSON number (or bool), as the
// validators' Python comparisons would see it.
func numeric(v *jv) (float64, bool) {
	switch v.kind {
	case 'n':
		fl, err := strconv.ParseFloat(v.str, 64)
		return fl, err == nil
	case 'b':
		if v.b {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// checkStreamOptions is validate_stream_options (chat and completions).
func checkStreamOptions(body *jv) *apiError {
	if pyTruthy(body.get("stream_options")) && !pyTruthy(body.get("stream")) {
		return modelValidatorError(body, "Stream options can only be defined when `stream=True`.", "stream_options", "")
	}
	return nil
}

// checkLogprobFields is the shared part of check_logprobs: the integer
// fields named in names, and prompt_logprobs with stream.
func checkLogprobFields(body *jv, names ...string) *apiError {
	for _, name := range names {
		if v := body.get(name); v != nil && v.kind != 'z' {
			if _, ok := numeric(v); !ok {
				return modelValidatorError(body, "`"+name+"` must be an integer.", name, pyStr(v))
			}
		}
	}
	if v := body.get("prompt_logprobs"); v != nil && v.kind != 'z' {
		pl, _ := numeric(v)
		if pyTruthy(body.get("stream")) && (pl > 0 || pl == -1) {
			return modelValidatorError(body, "`prompt_logprobs` are not available when `stream=True`.", "prompt_logprobs", "")
		}
		if pl < 0 && pl != -1 {
			return modelValidatorError(body, "`prompt_logprobs` must be a positive value or -1.", "prompt_logprobs", pyStr(v))
		}
	}
	return nil
}

const toolChoiceUsage = "Correct usage: `{\"type\": \"function\", \"function\": {\"name\": \"my_function\"}}`"

// chatModelValidators runs ChatCompletionRequest's before-validators.
func chatModelValidators(body *jv) *apiError {
	if e := checkStreamOptions(body); e != nil {
		return e
	}
	if e := checkLogprobFields(body, "prompt_logprobs", "top_logprobs"); e != nil {
		return e
	}
	if v := body.get("top_logprobs"); v != nil && v.kind != 'z' {
		tl, _ := numeric(v)
		if tl < 0 && tl != -1 {
			return modelValidatorError(body, "`top_logprobs` must be a positive value or -1.", "top_logprobs", pyStr(v))
		}
		if (tl == -1 || tl > 0) && !pyTruthy(body.get("logprobs")) {
			return modelValidatorError(body, "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs", "")
		}
	}
	tools := body.get("tools")
	if tools != nil && tools.kind == 'a' && len(tools.items) == 0 {
		return modelValidatorError(body, "`tools` must not be an empty array. Either provide at least one tool or omit the field entirely.", "tools", "")
	}
	if tc := body.get("tool_choice"); tc != nil && tc.kind != 'z' && !(tc.kind == 's' && tc.str == "none") {
		if tools == nil || tools.kind == 'z' {
			return modelValidatorError(body, "When using `tool_choice`, `tools` must be set.", "tool_choice", "")
		}
		if tc.kind != 'o' && !(tc.kind == 's' && (tc.str == "auto" || tc.str == "required")) {
			return modelValidatorError(body, "Invalid value for `tool_choice`: "+pyStr(tc)+"! Only named tools, \"none\", \"auto\" or \"required\" are supported.", "tool_choice", "")
		}
		if tc.kind == 'o' {
			fn := tc.get("function")
			if fn == nil || fn.kind != 'o' {
				fs := "None"
				if fn != nil {
					fs = pyStr(fn)
				}
				return modelValidatorError(body, "Invalid value for `function`: `"+fs+"` in `tool_choice`! "+toolChoiceUsage, "tool_choice.function", "")
			}
			name := fn.get("name")
			if name == nil {
				return modelValidatorError(body, "Expected field `name` in `function` in `tool_choice`! "+toolChoiceUsage, "tool_choice.function.name", "")
			}
			if name.kind != 's' || name.str == "" {
				return modelValidatorError(body, "Invalid `name` in `function`: `"+pyStr(name)+"` in `tool_choice`! "+toolChoiceUsage, "tool_choice.function.name", "")
			}
			found := false
			if tools.kind == 'a' {
				for _, t := range tools.items {
					if n := t.get("function").get("name"); n != nil && n.kind == 's' && n.str == name.str {
						found = true
						break
					}
				}
			}
			if !found {
				return modelValidatorError(body, "The tool specified in `tool_choice` does not match any of the specified `tools`", "tool_choice", "")
			}
		}
	}
	if pyTruthy(body.get("continue_final_message")) && pyTruthy(body.get("add_generation_prompt")) {
		return modelValidatorError(body, "Cannot set both `continue_final_message` and `add_generation_prompt` to True.", "", "")
	}
	return nil
}

// withKwarg is chat_template_kwargs (an object, or nil) with key set to v
// at its end, the client's object left as it was.
func withKwarg(kwargs *jv, key string, v *jv) *jv {
	out := &jv{kind: 'o'}
	if kwargs != nil {
		out.keys = append(out.keys, kwargs.keys...)
		out.vals = append(out.vals, kwargs.vals...)
	}
	out.keys = append(out.keys, key)
	out.vals = append(out.vals, v)
	return out
}

// parseChatRequest validates a /v1/chat/completions body.
func parseChatRequest(raw []byte) (*chatRequest, *apiError) {
	body, e := decodeBody(raw)
	if e != nil {
		return nil, e
	}
	if e := chatModelValidators(body); e != nil {
		return nil, e
	}
	f := &fieldParser{body: body}
	req := &chatRequest{}
	c := &req.commonRequest
	req.messages = f.messagesField()
	f.model(c)
	f.optFloat("frequency_penalty")
	req.logprobs = f.boolOr("logprobs", false)
	if tl := f.optInt("top_logprobs"); tl != nil {
		req.topLogprobs = *tl
	}
	req.maxTokens = f.optInt("max_tokens")
	if mct := f.optInt("max_completion_tokens"); mct != nil {
		req.maxTokens = mct
	}
	f.n(c)
	f.optFloat("presence_penalty")
	f.parseSampling(c)
	c.temperature = f.optFloat("temperature")
	c.topP = f.optFloat("top_p")
	req.tools = f.toolsField()
	req.toolsRaw = f.value("tools")
	req.toolChoice = "none"
	if len(req.tools) > 0 {
		req.toolChoice = "auto"
	}
	if tc := f.value("tool_choice"); tc != nil {
		if tc.kind == 's' {
			req.toolChoice = tc.str
		} else if tc.kind == 'o' {
			req.toolChoice = "named"
			req.toolChoiceName = tc.get("function").get("name").str
		}
	}
	f.optString("user")
	f.optBool("use_beam_search")
	f.parseExtra(c)
	c.echo = f.boolOr("echo", false)
	req.addGenerationPrompt = f.boolOr("add_generation_prompt", true)
	req.continueFinal = f.boolOr("continue_final_message", false)
	f.optBool("add_special_tokens")
	f.optString("chat_template")
	req.kwargs = f.objectField("chat_template_kwargs")
	if effort := f.optString("reasoning_effort"); effort != nil && req.kwargs.get("enable_thinking") == nil {
		// build_chat_params: a reasoning effort switches the template's
		// thinking on, or off with "none", unless the client set
		// enable_thinking itself. (vLLM's /v1/messages sends "none" for
		// thinking.type "disabled", and Claude Code's effort as is.)
		req.kwargs = withKwarg(req.kwargs, "enable_thinking", &jv{kind: 'b', b: *effort != "none"})
	}
	f.parseTail(c)
	if len(f.errs) > 0 {
		return nil, validationError(f.errs, nil)
	}
	return req, nil
}

// messagesField validates messages and flattens each one to a Message.
func (f *fieldParser) messagesField() []Message {
	v := f.body.get("messages")
	if v == nil {
		f.add("missing", []any{"body", "messages"}, "Field required", f.body, "")
		return nil
	}
	if v.kind != 'a' {
		f.add("list_type", []any{"body", "messages"}, "Input should be a valid list", v, "")
		return nil
	}
	msgs := make([]Message, 0, len(v.items))
	for i, m := range v.items {
		loc := []any{"body", "messages", i}
		if m.kind != 'o' {
			f.add("dict_type", loc, "Input should be a valid dictionary", m, "")
			continue
		}
		role := m.get("role")
		if role == nil {
			f.add("missing", append(loc, "role"), "Field required", m, "")
			continue
		}
		if role.kind != 's' {
			f.add("string_type", append(loc, "role"), "Input should be a valid string", role, "")
			continue
		}
		content, ok := f.flattenContent(m.get("content"), append(loc, "content"))
		if !ok {
			continue
		}
		msgs = append(msgs, structuredMessage(m, role.str, content))
	}
	return msgs
}

// structuredMessage is vLLM's _parse_chat_message_content for one message:
// reasoning (reasoning or reasoning_content) and tool_calls of assistant
// messages, tool_call_id of tool messages.
func structuredMessage(m *jv, role, content string) Message {
	msg := Message{Role: role, Content: content}
	switch role {
	case "assistant":
		// reasoning = message.get("reasoning") or message.get("reasoning_content")
		r := m.get("reasoning")
		if r == nil || !pyTruthy(r) {
			r = m.get("reasoning_content")
		}
		if r != nil && r.kind == 's' {
			msg.Reasoning, msg.reasoningSet = r.str, true
		}
		if calls := m.get("tool_calls"); calls != nil && calls.kind == 'a' {
			for _, c := range calls.items {
				fn := c.get("function")
				if fn == nil {
					fn = c
				}
				var tc ToolCall
				if id := c.get("id"); id != nil && id.kind == 's' {
					tc.ID = id.str
				}
				if name := fn.get("name"); name != nil && name.kind == 's' {
					tc.Name = name.str
				}
				switch a := fn.get("arguments"); {
				case a == nil || a.kind == 'z':
				case a.kind == 's':
					tc.Arguments = a.str
				default:
					tc.Arguments = pyDumps(a)
				}
				msg.ToolCalls = append(msg.ToolCalls, tc)
			}
		}
	case "tool":
		if id := m.get("tool_call_id"); id != nil && id.kind == 's' {
			msg.ToolCallID = id.str
		}
	}
	return msg
}

// flattenContent turns string content, or the text parts of a content array
// (joined with "\n", as vLLM's "string" content format does), into text.
// Non-text parts are ignored: the simulated model is text-only.
func (f *fieldParser) flattenContent(c *jv, loc []any) (string, bool) {
	if c == nil || c.kind == 'z' {
		return "", true
	}
	switch c.kind {
	case 's':
		return c.str, true
	case 'a':
		var parts []string
		for j, p := range c.items {
			switch p.kind {
			case 's':
				parts = append(parts, p.str)
			case 'o':
				typ := p.get("type")
				if typ != nil && typ.kind == 's' && typ.str != "text" && typ.str != "input_text" {
					continue
				}
				t := p.get("text")
				if t == nil || t.kind != 's' {
					f.add("missing", append(append([]any{}, loc...), j, "text"), "Field required", p, "")
					return "", false
				}
				parts = append(parts, t.str)
			default:
				f.add("dict_type", append(append([]any{}, loc...), j), "Input should be a valid dictionary", p, "")
				return "", false
			}
		}
		return strings.Join(parts, "\n"), true
	}
	f.add("string_type", loc, "Input should be a valid string", c, "")
	return "", false
}

// toolsField validates tools: list[ChatCompletionToolsParam] | None.
func (f *fieldParser) toolsField() []toolDef {
	v := f.value("tools")
	if v == nil {
		return nil
	}
	if v.kind != 'a' {
		f.add("list_type", []any{"body", "tools"}, "Input should be a valid list", v, "")
		return nil
	}
	var out []toolDef
	for i, t := range v.items {
		loc := []any{"body", "tools", i}
		if t.kind != 'o' {
			f.add("model_type", loc, "Input should be a valid dictionary or instance of ChatCompletionToolsParam", t, "")
			continue
		}
		fn := t.get("function")
		if fn == nil {
			f.add("missing", append(loc, "function"), "Field required", t, "")
			continue
		}
		if fn.kind != 'o' {
			f.add("model_type", append(loc, "function"), "Input should be a valid dictionary or instance of FunctionDefinition", fn, "")
			continue
		}
		name := fn.get("name")
		if name == nil {
			f.add("missing", append(loc, "function", "name"), "Field required", fn, "")
			continue
		}
		if name.kind != 's' {
			f.add("string_type", append(loc, "function", "name"), "Input should be a valid string", name, "")
			continue
		}
		td := toolDef{name: name.str, json: pyDumps(t)}
		if d := fn.get("description"); d != nil && d.kind == 's' {
			td.description = d.str
		}
		params := fn.get("parameters")
		if props := params.get("properties"); props != nil {
			td.params = props.keys
		}
		if rq := params.get("required"); rq != nil {
			for _, r := range rq.items {
				if r.kind == 's' {
					td.required = append(td.required, r.str)
				}
			}
		}
		out = append(out, td)
	}
	return out
}

// objectField validates dict[str, Any] | None.
func (f *fieldParser) objectField(name string) *jv {
	v := f.value(name)
	if v == nil {
		return nil
	}
	if v.kind != 'o' {
		f.add("dict_type", []any{"body", name}, "Input should be a valid dictionary", v, "")
		return nil
	}
	return v
}

// completionModelValidators runs CompletionRequest's before-validators.
func completionModelValidators(body *jv) *apiError {
	if e := checkLogprobFields(body, "prompt_logprobs", "logprobs"); e != nil {
		return e
	}
	if v := body.get("logprobs"); v != nil && v.kind != 'z' {
		lp, _ := numeric(v)
		if lp < 0 && lp != -1 {
			return modelValidatorError(body, "`logprobs` must be a positive value or -1.", "logprobs", pyStr(v))
		}
	}
	if e := checkStreamOptions(body); e != nil {
		return e
	}
	p := body.get("prompt")
	if p == nil || p.kind == 'z' || (p.kind == 's' && p.str == "") {
		return modelValidatorError(body, "Either prompt or prompt_embeds must be provided and non-empty.", "prompt", "")
	}
	return nil
}

// parseCompletionRequest validates a /v1/completions body.
func parseCompletionRequest(raw []byte) (*completionRequest, *apiError) {
	body, e := decodeBody(raw)
	if e != nil {
		return nil, e
	}
	if e := completionModelValidators(body); e != nil {
		return nil, e
	}
	f := &fieldParser{body: body}
	req := &completionRequest{}
	c := &req.commonRequest
	f.model(c)
	req.prompts = f.promptField()
	c.echo = f.boolOr("echo", false)
	f.optFloat("frequency_penalty")
	req.logprobs = f.optInt("logprobs")
	// max_tokens defaults to 16 on completions (an explicit null too), as in
	// OpenAI's legacy API.
	req.maxTokens = f.optInt("max_tokens")
	if req.maxTokens == nil {
		d := int64(16)
		req.maxTokens = &d
	}
	f.n(c)
	f.optFloat("presence_penalty")
	f.parseSampling(c)
	f.optString("suffix") // declared, and ignored by the serving code
	c.temperature = f.optFloat("temperature")
	c.topP = f.optFloat("top_p")
	f.optString("user")
	f.optBool("use_beam_search")
	f.parseExtra(c)
	f.optBool("add_special_tokens")
	f.parseTail(c)
	if len(f.errs) > 0 {
		return nil, validationError(f.errs, nil)
	}
	return req, nil
}

// isIntItem reports a JSON value pydantic would accept as a token ID.
func isIntItem(v *jv) bool {
	if v.kind != 'n' {
		return false
	}
	_, typ, _ := laxInt(v)
	return typ == ""
}

// promptField validates prompt: list[int] | list[list[int]] | str | list[str].
func (f *fieldParser) promptField() []promptInput {
	v := f.body.get("prompt")
	switch v.kind {
	case 's':
		return []promptInput{{text: v.str}}
	case 'a':
		allInts, allLists, allStrs := true, true, true
		for _, it := range v.items {
			allInts = allInts && isIntItem(it)
			allStrs = allStrs && it.kind == 's'
			isList := it.kind == 'a'
			if isList {
				for _, x := range it.items {
					isList = isList && isIntItem(x)
				}
			}
			allLists = allLists && isList
		}
		switch {
		case allInts:
			ids, ok := f.tokenIDs(v, []any{"body", "prompt", "list[int]"})
			if !ok {
				return nil
			}
			return []promptInput{{ids: ids, isIDs: true}}
		case allLists:
			var out []promptInput
			for j, it := range v.items {
				ids, ok := f.tokenIDs(it, []any{"body", "prompt", "list[list[int]]", j})
				if !ok {
					return nil
				}
				out = append(out, promptInput{ids: ids, isIDs: true})
			}
			return out
		case allStrs:
			out := make([]promptInput, len(v.items))
			for j, it := range v.items {
				out[j] = promptInput{text: it.str}
			}
			return out
		}
	}
	f.promptUnionErrors(v)
	return nil
}

// tokenIDs converts a validated list of ints, enforcing ge=0.
func (f *fieldParser) tokenIDs(v *jv, loc []any) ([]int64, bool) {
	ids := make([]int64, len(v.items))
	ok := true
	for k, x := range v.items {
		n, _, _ := laxInt(x)
		if n < 0 {
			f.add("greater_than_equal", append(append([]any{}, loc...), k), "Input should be greater than or equal to 0", x, "{'ge': 0}")
			ok = false
		}
		ids[k] = n
	}
	return ids, ok
}

// promptUnionErrors reports a prompt that matches no member of the union,
// one error per member like pydantic's smart union does.
func (f *fieldParser) promptUnionErrors(v *jv) {
	intErr := func(x *jv, loc []any) {
		_, typ, msg := laxInt(x)
		if x.kind == 'a' || x.kind == 'o' || x.kind == 'z' {
			typ, msg = "int_type", "Input should be a valid integer"
		}
		if typ != "" {
			f.add(typ, loc, msg, x, "")
		}
	}
	base := func(member string, more ...any) []any { return append([]any{"body", "prompt", member}, more...) }
	if v.kind != 'a' {
		f.add("list_type", base("list[int]"), "Input should be a valid list", v, "")
		f.add("list_type", base("list[list[int]]"), "Input should be a valid list", v, "")
		f.add("string_type", base("str"), "Input should be a valid string", v, "")
		f.add("list_type", base("list[str]"), "Input should be a valid list", v, "")
		return
	}
	for j, it := range v.items {
		intErr(it, base("list[int]", j))
	}
	for j, it := range v.items {
		if it.kind != 'a' {
			f.add("list_type", base("list[list[int]]", j), "Input should be a valid list", it, "")
			continue
		}
		for k, x := range it.items {
			intErr(x, base("list[list[int]]", j, k))
		}
	}
	f.add("string_type", base("str"), "Input should be a valid string", v, "")
	for j, it := range v.items {
		if it.kind != 's' {
			f.add("string_type", base("list[str]", j), "Input should be a valid string", it, "")
		}
	}
}

// tokenizeRequest is /tokenize's body (prompt form or messages form).
type tokenizeRequest struct {
	model         string
	prompt        *string
	chat          *chatRequest
	returnTokStrs bool
}

func parseTokenizeRequest(raw []byte) (*tokenizeRequest, *apiError) {
	body, e := decodeBody(raw)
	if e != nil {
		return nil, e
	}
	req := &tokenizeRequest{}
	if body.get("messages") != nil {
		if e := chatModelValidators(body); e != nil {
			return nil, e
		}
		f := &fieldParser{body: body}
		cr := &chatRequest{}
		cr.messages = f.messagesField()
		if s := f.optString("model"); s != nil {
			cr.model = *s
		}
		cr.tools = f.toolsField()
		cr.toolsRaw = f.value("tools")
		cr.addGenerationPrompt = f.boolOr("add_generation_prompt", true)
		cr.continueFinal = f.boolOr("continue_final_message", false)
		cr.kwargs = f.objectField("chat_template_kwargs")
		req.returnTokStrs = f.boolOr("return_token_strs", false)
		if len(f.errs) > 0 {
			return nil, validationError(f.errs, nil)
		}
		req.chat = cr
		req.model = cr.model
		return req, nil
	}
	f := &fieldParser{body: body}
	if s := f.optString("model"); s != nil {
		req.model = *s
	}
	if body.get("prompt") == nil {
		f.add("missing", []any{"body", "prompt"}, "Field required", body, "")
	} else {
		req.prompt = f.optString("prompt")
	}
	f.optBool("add_special_tokens")
	req.returnTokStrs = f.boolOr("return_token_strs", false)
	if len(f.errs) > 0 {
		return nil, validationError(f.errs, nil)
	}
	return req, nil
}

// detokenizeRequest is /detokenize's body.
type detokenizeRequest struct {
	model  string
	tokens []int64
}

func parseDetokenizeRequest(raw []byte) (*detokenizeRequest, *apiError) {
	body, e := decodeBody(raw)
	if e != nil {
		return nil, e
	}
	f := &fieldParser{body: body}
	req := &detokenizeRequest{}
	if s := f.optString("model"); s != nil {
		req.model = *s
	}
	if body.get("tokens") == nil {
		f.add("missing", []any{"body", "tokens"}, "Field required", body, "")
	} else {
		req.tokens = f.intList("tokens")
	}
	if len(f.errs) > 0 {
		return nil, validationError(f.errs, nil)
	}
	return req, nil
}
