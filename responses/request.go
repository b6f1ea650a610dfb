package responses

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"time"
)

// History is what tokentap keeps of a finished response so that a later
// request naming it in "previous_response_id" can be translated: Input holds
// the input items of the whole conversation up to that response (its own
// previous_response_id already resolved, so one lookup is always enough;
// "instructions" excluded, since OpenAI does not carry them over) and Output
// the response's output items, function calls and reasoning included. Both
// are JSON arrays of items exactly as exchanged with the agent.
type History struct {
	Input  json.RawMessage
	Output json.RawMessage
}

// Request is one Responses request translated to chat completions. It holds
// what the answer needs to be translated back: the echoed request fields,
// the namespaced tool names to map back, the response id and the
// conversation so far. A Request is not safe for concurrent use; its answer
// is translated once, by Answer or by one Stream.
type Request struct {
	chat     []byte
	id       []byte // the response id ("resp_…") as a JSON string
	stream   bool
	store    bool
	logprobs bool // include "message.output_text.logprobs"
	carrier  bool // include "reasoning.encrypted_content"
	names    map[string]toolName
	echo     [4][]byte // the echoed request fields, in vLLM's order (see appendResponse)
	model    []byte    // the request's model, until the upstream names its own
	input    []byte    // History.Input of this response
	created  int64     // unix seconds, until the upstream gives its own

	// ids appends prefix and a fresh random id to dst. Tests replace it to
	// get the same bytes on every run.
	ids func(dst []byte, prefix string) []byte
}

// toolName is how a flattened namespace tool ("ns__name" for chat) is named
// back in the Responses answer; both are raw JSON strings.
type toolName struct{ name, namespace []byte }

// Chat returns the /v1/chat/completions body to send upstream. tokentap adds
// its own fields (return_token_ids, logprobs) to it afterwards.
func (r *Request) Chat() []byte { return r.chat }

// ID returns the response id ("resp_…", or the request's own "request_id"),
// under which a finished response's History is stored.
func (r *Request) ID() string { return decoded(r.id) }

// Stream reports whether the agent asked for a stream: the chat request is
// then a stream too, and its answer goes through NewStream.
func (r *Request) Stream() bool { return r.stream }

// Store reports whether the response may be stored for a later
// previous_response_id ("store", default true as in OpenAI's API; Codex sends
// false).
func (r *Request) Store() bool { return r.store }

// The prefix of the reasoning text tokentap hands back in encrypted_content
// when the agent asks for "reasoning.encrypted_content". Codex sends reasoning
// items back without their text (it strips "reasoning_text" content), so
// this carrier is the only way the model's reasoning reaches the next prompt
// as it does on the chat path. It is base64, not encryption: the text is the
// agent's own model output.
const carrierPrefix = "tokentap.reasoning.v1:"

// PreviousResponseID returns the "previous_response_id" of a Responses
// request body, or "" when it has none (or the body is not valid JSON, which
// TranslateRequest then reports). The proxy looks the id up in its store and
// passes the History it found, or nil, to TranslateRequest.
func PreviousResponseID(body []byte) string {
	if !wellFormed(body) {
		return ""
	}
	s := scanner{b: body}
	if !s.enter('{') {
		return ""
	}
	id := ""
	for s.more('}') {
		k := s.key()
		v := s.value()
		if string(k) == "previous_response_id" {
			id = decoded(v)
		}
	}
	return id
}

// fields are the raw values of a Responses request's top-level members
// (nil when absent), named after them.
type fields struct {
	model, input, instructions, tools, toolChoice, parallelToolCalls      []byte
	maxOutputTokens, topLogprobs, reasoning, text, include, stream, store []byte
	truncation, prompt, background, previousResponseID, metadata, user    []byte
	serviceTier, maxToolCalls, requestID, conversation, structuredOutputs []byte
	presencePenalty, frequencyPenalty                                     []byte
	sampling, extras                                                      [][2][]byte // passed to chat under the same name
}

// TranslateRequest translates a Responses request body into a chat
// completions request, following vLLM's own Responses layer (non-Harmony
// path) field by field. prev is the stored History of the response the body
// names in previous_response_id, or nil; it is ignored when the body names
// none. A request naming a response that prev does not supply is refused
// as OpenAI refuses it (400, code "previous_response_not_found").
//
// Every error is an *Error, to be answered as is.
func TranslateRequest(body []byte, prev *History) (*Request, error) {
	r, err := translate(body, prev)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func translate(body []byte, prev *History) (*Request, *Error) {
	if !wellFormed(body) {
		return nil, badRequest("", "request body is not valid JSON")
	}
	var f fields
	s := scanner{b: body}
	if !s.enter('{') {
		return nil, badRequest("", "request body must be a JSON object")
	}
	for s.more('}') {
		k := s.key()
		v := s.value()
		switch string(k) {
		case "model":
			f.model = v
		case "input":
			f.input = v
		case "instructions":
			f.instructions = v
		case "tools":
			f.tools = v
		case "tool_choice":
			f.toolChoice = v
		case "parallel_tool_calls":
			f.parallelToolCalls = v
		case "max_output_tokens":
			f.maxOutputTokens = v
		case "top_logprobs":
			f.topLogprobs = v
		case "reasoning":
			f.reasoning = v
		case "text":
			f.text = v
		case "include":
			f.include = v
		case "stream":
			f.stream = v
		case "store":
			f.store = v
		case "truncation":
			f.truncation = v
		case "prompt":
			f.prompt = v
		case "background":
			f.background = v
		case "previous_response_id":
			f.previousResponseID = v
		case "metadata":
			f.metadata = v
		case "user":
			f.user = v
		case "service_tier":
			f.serviceTier = v
		case "max_tool_calls":
			f.maxToolCalls = v
		case "request_id":
			f.requestID = v
		case "conversation":
			f.conversation = v
		case "structured_outputs":
			f.structuredOutputs = v
		case "presence_penalty":
			f.presencePenalty = v
			f.sampling = append(f.sampling, [2][]byte{k, v})
		case "frequency_penalty":
			f.frequencyPenalty = v
			f.sampling = append(f.sampling, [2][]byte{k, v})
		case "temperature", "top_p", "top_k", "repetition_penalty", "seed", "stop", "ignore_eos",
			"logit_bias", "skip_special_tokens", "include_stop_str_in_output", "include_reasoning":
			f.sampling = append(f.sampling, [2][]byte{k, v})
		case "cache_salt", "priority", "media_io_kwargs", "mm_processor_kwargs", "chat_template_kwargs",
			"kv_transfer_params", "ec_transfer_params", "vllm_xargs":
			f.extras = append(f.extras, [2][]byte{k, v})
		}
		// Everything else is ignored, as vLLM's ResponsesRequest (extra="allow")
		// ignores it: service fields such as prompt_cache_key, client_metadata,
		// stream_options, and the return_token_ids tokentap sets itself.
	}

	r := &Request{store: true, created: time.Now().Unix(), ids: randomID}
	if e := r.checkTopLevel(&f, prev); e != nil {
		return nil, e
	}

	tools, err := convertTools(f.tools)
	if err != nil {
		return nil, err
	}
	r.names = tools.names
	choice, echoChoice, err := toolChoice(f.toolChoice, tools)
	if err != nil {
		return nil, err
	}

	var w walker
	if prev != nil && isString(f.previousResponseID) && decoded(f.previousResponseID) != "" {
		if err := w.items(prev.Input, "input"); err != nil {
			return nil, err
		}
		if err := w.items(prev.Output, "input"); err != nil {
			return nil, err
		}
	}
	w.lastPartial = false // only the request's own last item may be unfinished
	partial := false
	if isString(f.input) {
		w.msgs = append(w.msgs, msg{role: "user", content: f.input})
	} else {
		if err := w.items(f.input, "input"); err != nil {
			return nil, err
		}
		partial = w.lastPartial
	}

	format, err := responseFormat(f.text, f.structuredOutputs)
	if err != nil {
		return nil, err
	}

	r.chat = r.chatBody(&f, &w, tools, choice, format, partial)
	r.echo = echoSegments(&f, echoChoice, r.logprobs)
	r.input = historyInput(prev, &f)
	if isString(f.requestID) && decoded(f.requestID) != "" {
		r.id = appendCompact(nil, f.requestID) // vLLM's extra: the caller names the response
	} else {
		r.id = appendQuoted(nil, r.ids(nil, "resp_"))
	}
	if isNull(f.model) {
		r.model = []byte("null")
	} else {
		r.model = appendCompact(nil, f.model)
	}
	return r, nil
}

// checkTopLevel refuses what vLLM (or tokentap, which has no background
// workers) refuses, and records the flags the answer needs.
func (r *Request) checkTopLevel(f *fields, prev *History) *Error {
	if !isNull(f.prompt) {
		return badRequest("prompt", "prompt template is not supported")
	}
	if string(f.background) == "true" {
		return badRequest("background", "background mode is not supported: tokentap answers every request in the foreground")
	}
	if !isNull(f.conversation) {
		return badRequest("conversation", "conversation is not supported: send the full input, or previous_response_id")
	}
	if f.input == nil {
		return badRequest("input", "input is required")
	}
	if !isString(f.input) && f.input[0] != '[' {
		return badRequest("input", "input must be a string or an array of items")
	}
	if f.instructions != nil && !isNull(f.instructions) && !isString(f.instructions) {
		return badRequest("instructions", "instructions must be a string")
	}
	switch string(f.stream) {
	case "", "null", "false":
	case "true":
		r.stream = true
	default:
		return badRequest("stream", "stream must be a boolean")
	}
	switch string(f.store) {
	case "", "null", "true":
	case "false":
		r.store = false
	default:
		return badRequest("store", "store must be a boolean")
	}
	switch {
	case isNull(f.truncation), strEq(f.truncation, "disabled"), strEq(f.truncation, "auto"):
	default:
		return badRequest("truncation", `truncation must be "auto" or "disabled"`)
	}
	if !isNull(f.include) {
		if f.include[0] != '[' {
			return badRequest("include", "include must be an array of strings")
		}
		s := scanner{b: f.include}
		s.enter('[')
		for s.more(']') {
			v := s.value()
			switch {
			case strEq(v, "message.output_text.logprobs"):
				r.logprobs = true
			case strEq(v, "reasoning.encrypted_content"):
				r.carrier = true
			}
		}
	}
	if !isNull(f.previousResponseID) {
		if !isString(f.previousResponseID) {
			return badRequest("previous_response_id", "previous_response_id must be a string")
		}
		if id := decoded(f.previousResponseID); id != "" {
			if prev == nil {
				// OpenAI's answer, which clients such as the Agents SDK and
				// Codex proxies recognise by its code; vLLM answers 404.
				return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error",
					Message: "Previous response with id '" + id + "' not found.",
					Param:   "previous_response_id", Code: "previous_response_not_found"}
			}
			if !isArray(prev.Input) || !isArray(prev.Output) {
				return &Error{Status: http.StatusInternalServerError, Type: "server_error",
					Message: "the stored history of response '" + id + "' is not two JSON arrays", Param: "previous_response_id"}
			}
		}
	}
	return nil
}

func isArray(raw []byte) bool {
	if !wellFormed(raw) {
		return false
	}
	s := scanner{b: raw}
	return s.ws() == '['
}

// randomID is the default id source: prefix and 16 hex digits, the length
// vLLM's random_uuid() has had since 2026.
func randomID(dst []byte, prefix string) []byte {
	dst = append(dst, prefix...)
	return appendHex16(dst, rand.Uint64())
}

func appendHex16(dst []byte, v uint64) []byte {
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hex[(v>>uint(shift))&0xf])
	}
	return dst
}

// chatTools is the chat form of a request's tools.
type chatTools struct {
	json  []byte              // the chat "tools" array, nil when there are no function tools
	count int                 // tools of any type in the request (vLLM's "has tools")
	flat  map[string]bool     // chat names of the function tools
	bare  map[string][]byte   // inner name of a namespaced tool → its chat name (raw), first wins
	names map[string]toolName // chat name of a namespaced tool → its Responses name and namespace
}

// convertTools turns Responses tools into chat tools as vLLM renders them
// since its render-parity change (#50334): function tools keep name,
// description, parameters, strict and defer_loading (raw, so the order of
// the parameters' keys reaches the template unchanged); each function of a
// namespace tool becomes "namespace__name"; built-in tools (web_search,
// file_search, code_interpreter, mcp, local_shell, …) and custom tools are
// dropped, since the simple path has nothing to run them with.
func convertTools(raw []byte) (chatTools, *Error) {
	t := chatTools{flat: map[string]bool{}, bare: map[string][]byte{}, names: map[string]toolName{}}
	if isNull(raw) {
		return t, nil
	}
	if raw[0] != '[' {
		return t, badRequest("tools", "tools must be an array")
	}
	out := []byte{'['}
	s := scanner{b: raw}
	s.enter('[')
	for s.more(']') {
		tool := s.value()
		t.count++
		if tool[0] != '{' {
			return t, badRequest("tools", "each tool must be an object")
		}
		var typ, name, inner []byte
		pick(tool, []string{"type", "name", "tools"}, &typ, &name, &inner)
		switch {
		case strEq(typ, "function"):
			if !isString(name) {
				return t, badRequest("tools", "a function tool needs a name")
			}
			out = appendFunctionTool(out, tool, name)
			t.flat[decoded(name)] = true
		case strEq(typ, "namespace"):
			if !isString(name) {
				return t, badRequest("tools", "a namespace tool needs a name")
			}
			if isNull(inner) {
				continue
			}
			if inner[0] != '[' {
				return t, badRequest("tools", "a namespace tool's tools must be an array")
			}
			ns, _ := strContent(name)
			is := scanner{b: inner}
			is.enter('[')
			for is.more(']') {
				fn := is.value()
				if fn[0] != '{' {
					return t, badRequest("tools", "each tool must be an object")
				}
				var ftyp, fname []byte
				pick(fn, []string{"type", "name"}, &ftyp, &fname)
				if !strEq(ftyp, "function") {
					continue
				}
				if !isString(fname) {
					return t, badRequest("tools", "a function tool needs a name")
				}
				fc, _ := strContent(fname)
				flat := make([]byte, 0, len(ns)+len(fc)+4)
				flat = append(append(append(append(append(flat, '"'), ns...), "__"...), fc...), '"')
				out = appendFunctionTool(out, fn, flat)
				key := decoded(flat)
				t.flat[key] = true
				t.names[key] = toolName{name: appendCompact(nil, fname), namespace: appendCompact(nil, name)}
				if b := decoded(fname); t.bare[b] == nil {
					t.bare[b] = flat
				}
			}
		}
	}
	if len(out) > 1 {
		t.json = append(out, ']')
	}
	return t, nil
}

// appendFunctionTool appends one chat tool for a Responses function tool,
// named name (its own name, or its flattened namespace name).
func appendFunctionTool(out, tool, name []byte) []byte {
	var desc, params, strict, deferLoading []byte
	pick(tool, []string{"description", "parameters", "strict", "defer_loading"}, &desc, &params, &strict, &deferLoading)
	if len(out) > 1 {
		out = append(out, ',')
	}
	out = append(out, `{"type":"function","function":{"name":`...)
	out = append(out, name...)
	for _, kv := range [...]struct {
		k string
		v []byte
	}{{"description", desc}, {"parameters", params}, {"strict", strict}, {"defer_loading", deferLoading}} {
		if !isNull(kv.v) {
			out = append(out, ',', '"')
			out = append(out, kv.k...)
			out = append(out, '"', ':')
			out = appendCompact(out, kv.v)
		}
	}
	return append(out, "}}"...)
}

// toolChoice returns the chat tool_choice (nil: leave it out) and the value
// the response object echoes, following vLLM's check_tool_usage: without
// tools "auto" and "none" become "none", "required" and a named function are
// refused; a named function must be one of the tools (for a namespaced tool
// its bare name is accepted too).
func toolChoice(raw []byte, t chatTools) (chat, echo []byte, e *Error) {
	const (
		notFound = "Tool choice 'function' not found in 'tools' parameter."
		required = "Tool choice 'required' must be specified with 'tools' parameter."
	)
	echo = []byte(`"auto"`)
	if !isNull(raw) {
		echo = appendCompact(nil, raw)
	}
	hasFunctions := t.json != nil
	switch {
	case isNull(raw), strEq(raw, "auto"), strEq(raw, "none"):
		if t.count == 0 {
			echo = []byte(`"none"`)
		}
		if !hasFunctions {
			return nil, echo, nil
		}
		if isNull(raw) {
			return []byte(`"auto"`), echo, nil
		}
		return echo, echo, nil
	case strEq(raw, "required"):
		if !hasFunctions {
			return nil, nil, badRequest("tool_choice", required)
		}
		return echo, echo, nil
	case raw[0] == '{':
		var typ, name []byte
		pick(raw, []string{"type", "name"}, &typ, &name)
		if !strEq(typ, "function") {
			return nil, nil, badRequest("tool_choice", "tool_choice of type "+string(appendCompact(nil, typ))+" is not supported: only function tools reach the model")
		}
		if !isString(name) || !hasFunctions {
			return nil, nil, badRequest("tool_choice", notFound)
		}
		n := decoded(name)
		flat := appendCompact(nil, name)
		if !t.flat[n] {
			if t.bare[n] == nil {
				return nil, nil, badRequest("tool_choice", notFound)
			}
			flat = t.bare[n]
		}
		chat = append(append([]byte(`{"type":"function","function":{"name":`), flat...), "}}"...)
		return chat, echo, nil
	}
	return nil, nil, badRequest("tool_choice", `tool_choice must be "auto", "none", "required" or a function`)
}

// responseFormat maps text.format to chat's response_format (nil: none).
func responseFormat(text, structured []byte) ([]byte, *Error) {
	if isNull(text) {
		return nil, nil
	}
	if text[0] != '{' {
		return nil, badRequest("text", "text must be an object")
	}
	format := member(text, "format")
	if isNull(format) {
		return nil, nil
	}
	if !isNull(structured) {
		return nil, badRequest("text", "Cannot specify both structured_outputs and text.format")
	}
	if format[0] != '{' {
		return nil, badRequest("text", "text.format must be an object")
	}
	var typ, name, desc, schema, strict []byte
	pick(format, []string{"type", "name", "description", "schema", "strict"}, &typ, &name, &desc, &schema, &strict)
	switch {
	case strEq(typ, "text"):
		return nil, nil
	case strEq(typ, "json_object"):
		return []byte(`{"type":"json_object"}`), nil
	case strEq(typ, "json_schema"):
		if isNull(schema) {
			return nil, nil // vLLM applies no constraint without a schema
		}
		out := []byte(`{"type":"json_schema","json_schema":{"name":`)
		if isString(name) {
			out = append(out, name...)
		} else {
			out = append(out, `"json_schema"`...)
		}
		if !isNull(desc) {
			out = appendCompact(append(out, `,"description":`...), desc)
		}
		out = appendCompact(append(out, `,"schema":`...), schema)
		if !isNull(strict) {
			out = appendCompact(append(out, `,"strict":`...), strict)
		}
		return append(out, "}}"...), nil
	}
	return nil, badRequest("text", "text.format type "+string(appendCompact(nil, typ))+" is not supported")
}

// chatBody writes the chat completions request.
func (r *Request) chatBody(f *fields, w *walker, t chatTools, choice, format []byte, partial bool) []byte {
	out := make([]byte, 0, 256+len(t.json)+w.size)
	out = append(out, '{')
	field := func(name string, v []byte) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, name...)
		out = append(out, '"', ':')
		out = append(out, v...)
	}
	if !isNull(f.model) {
		field("model", f.model)
	}
	field("messages", nil)
	out = w.appendMessages(out, f.instructions)
	if t.json != nil {
		field("tools", t.json)
		if choice != nil {
			field("tool_choice", choice)
		}
	}
	if !isNull(f.maxOutputTokens) {
		field("max_completion_tokens", f.maxOutputTokens)
	}
	for _, kv := range f.sampling {
		if !isNull(kv[1]) {
			field(string(kv[0]), kv[1])
		}
	}
	if effort := reasoningEffort(f.reasoning); effort != nil {
		field("reasoning_effort", effort)
	}
	if format != nil {
		field("response_format", format)
	}
	if r.logprobs {
		field("logprobs", []byte("true"))
		if isNull(f.topLogprobs) {
			field("top_logprobs", []byte("0"))
		} else {
			field("top_logprobs", f.topLogprobs)
		}
	}
	if strEq(f.truncation, "auto") {
		field("truncate_prompt_tokens", []byte("-1"))
	}
	if partial {
		field("add_generation_prompt", []byte("false"))
		field("continue_final_message", []byte("true"))
	}
	if !isNull(f.structuredOutputs) {
		field("structured_outputs", f.structuredOutputs)
	}
	for _, kv := range f.extras {
		if !isNull(kv[1]) {
			field(string(kv[0]), kv[1])
		}
	}
	if r.stream {
		field("stream", []byte("true"))
		field("stream_options", []byte(`{"include_usage":true}`))
	}
	return append(out, '}')
}

// reasoningEffort returns reasoning.effort (raw), or nil. reasoning.summary
// is ignored, as vLLM ignores it.
func reasoningEffort(reasoning []byte) []byte {
	if isNull(reasoning) || reasoning[0] != '{' {
		return nil
	}
	effort := member(reasoning, "effort")
	if isNull(effort) {
		return nil
	}
	return effort
}

// echoSegments writes the request fields the response object echoes, in
// the order of vLLM's ResponsesResponse, as four runs between the fields
// the answer fills in (see appendResponse). Sampling values the request
// left unset are echoed as null: vLLM echoes the effective value, which only
// vLLM knows (it may come from the model's generation_config).
func echoSegments(f *fields, toolChoice []byte, logprobs bool) [4][]byte {
	val := func(b, raw []byte, def string) []byte {
		if isNull(raw) {
			return append(b, def...)
		}
		return appendCompact(b, raw)
	}
	var sampling = map[string][]byte{}
	for _, kv := range f.sampling {
		sampling[string(kv[0])] = kv[1]
	}
	b := make([]byte, 0, 512+len(f.tools))
	var seg [4][]byte
	start := 0
	cut := func(i int) {
		seg[i] = b[start:len(b):len(b)]
		start = len(b)
	}
	b = val(append(b, `"instructions":`...), f.instructions, "null")
	b = val(append(b, `,"metadata":`...), f.metadata, "null")
	b = append(b, ',')
	cut(0)
	b = val(append(b, `"parallel_tool_calls":`...), f.parallelToolCalls, "true")
	b = val(append(b, `,"temperature":`...), sampling["temperature"], "null")
	b = append(append(b, `,"tool_choice":`...), toolChoice...)
	b = val(append(b, `,"tools":`...), f.tools, "[]")
	b = val(append(b, `,"top_p":`...), sampling["top_p"], "null")
	b = append(b, `,"background":false`...)
	b = val(append(b, `,"max_output_tokens":`...), f.maxOutputTokens, "null")
	b = val(append(b, `,"max_tool_calls":`...), f.maxToolCalls, "null")
	b = val(append(b, `,"previous_response_id":`...), f.previousResponseID, "null")
	b = append(b, `,"prompt":null`...)
	b = val(append(b, `,"reasoning":`...), f.reasoning, "null")
	b = val(append(b, `,"service_tier":`...), f.serviceTier, `"auto"`)
	b = append(b, ',')
	cut(1)
	b = val(append(b, `"text":`...), f.text, "null")
	if logprobs {
		b = val(append(b, `,"top_logprobs":`...), f.topLogprobs, "0")
	} else {
		b = append(b, `,"top_logprobs":null`...)
	}
	b = val(append(b, `,"truncation":`...), f.truncation, `"disabled"`)
	b = append(b, ',')
	cut(2)
	b = val(append(b, `"user":`...), f.user, "null")
	b = val(append(b, `,"presence_penalty":`...), f.presencePenalty, "0.0")
	b = val(append(b, `,"frequency_penalty":`...), f.frequencyPenalty, "0.0")
	b = append(b, ',')
	cut(3)
	return seg
}

// historyInput writes History.Input for this response: the conversation's
// earlier input and output, then this request's input as items.
func historyInput(prev *History, f *fields) []byte {
	out := []byte{'['}
	add := func(arr []byte) {
		s := scanner{b: arr}
		if !s.enter('[') {
			return
		}
		for s.more(']') {
			if len(out) > 1 {
				out = append(out, ',')
			}
			out = appendCompact(out, s.value())
		}
	}
	if prev != nil && isString(f.previousResponseID) && decoded(f.previousResponseID) != "" {
		add(prev.Input)
		add(prev.Output)
	}
	if isString(f.input) {
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(out, `{"type":"message","role":"user","content":`...)
		out = append(append(out, f.input...), '}')
	} else {
		add(f.input)
	}
	return append(out, ']')
}
