package anthropic

import (
	"crypto/rand"
	"io"
	"net/http"
	"strconv"
	"time"
)

// usage is chat usage as _build_anthropic_usage reads it.
type usage struct {
	set                 bool // a usage object was there (else zeros)
	prompt, completion  int64
	cached, created     int64
	hasCached, hasCreat bool
}

// intValue reads an integral JSON number without allocating.
func intValue(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	neg := v[0] == '-'
	if neg {
		v = v[1:]
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// parseUsage reads a chat usage object of a validated text. Fields of the wrong type count as
// absent: usage is reported, never acted on.
func parseUsage(v []byte) usage {
	var u usage
	if !isObject(v) {
		return u
	}
	u.set = true
	it := trustedIter(v)
	for k, esc, val, ok := it.member(); ok; k, esc, val, ok = it.member() {
		switch {
		case keyIs(k, esc, "prompt_tokens"):
			u.prompt, _ = intValue(val)
		case keyIs(k, esc, "completion_tokens"):
			u.completion, _ = intValue(val)
		case keyIs(k, esc, "prompt_tokens_details") && isObject(val):
			dit := trustedIter(val)
			for dk, desc, dv, dok := dit.member(); dok; dk, desc, dv, dok = dit.member() {
				switch {
				case keyIs(dk, desc, "cached_tokens"):
					u.cached, u.hasCached = intValue(dv)
				case keyIs(dk, desc, "created_cache_tokens"):
					u.created, u.hasCreat = intValue(dv)
				}
			}
		}
	}
	return u
}

// appendUsage writes _build_anthropic_usage (#40912, v0.24; the creation
// count from #48535, after v0.25.1; before #40912 input_tokens was the whole
// prompt and there were no cache fields): input_tokens is the prompt
// minus cache reads and cache creation (Anthropic's total input is their
// sum), and the cache fields appear only when chat reported them
// (--enable-prompt-tokens-details; in streams, on the last chunk only).
func appendUsage(dst []byte, u usage) []byte {
	in := u.prompt
	if u.hasCached {
		in -= u.cached
	}
	if u.hasCreat {
		in -= u.created
	}
	dst = append(dst, `{"input_tokens":`...)
	dst = strconv.AppendInt(dst, max(0, in), 10)
	dst = append(dst, `,"output_tokens":`...)
	dst = strconv.AppendInt(dst, u.completion, 10)
	if u.hasCreat {
		dst = append(dst, `,"cache_creation_input_tokens":`...)
		dst = strconv.AppendInt(dst, u.created, 10)
	}
	if u.hasCached {
		dst = append(dst, `,"cache_read_input_tokens":`...)
		dst = strconv.AppendInt(dst, u.cached, 10)
	}
	return append(dst, '}')
}

// stopReason maps a chat finish_reason as vLLM's stop_reason_map does;
// "" for anything else (abort, ...), which Anthropic reports as null.
func stopReason(finish []byte) string {
	switch string(finish) {
	case `"stop"`:
		return "end_turn"
	case `"length"`:
		return "max_tokens"
	case `"tool_calls"`:
		return "tool_use"
	}
	if isString(finish) {
		switch str(finish) {
		case "stop":
			return "end_turn"
		case "length":
			return "max_tokens"
		case "tool_calls":
			return "tool_use"
		}
	}
	return ""
}

func readRandom(r io.Reader, b []byte) {
	if r == nil {
		rand.Read(b) // never fails (crypto/rand documents it)
		return
	}
	if _, err := io.ReadFull(r, b); err != nil {
		rand.Read(b)
	}
}

// appendUUIDHex writes uuid4().hex: 32 hex digits, version and variant bits
// set. vLLM signs each thinking block with one.
func appendUUIDHex(dst []byte, r io.Reader) []byte {
	var b [16]byte
	return appendUUIDHexBuf(dst, r, &b)
}

// appendStopReason writes a stop_reason value: one of stopReason's names
// (plain ASCII, nothing to escape), or null when there is none.
func appendStopReason(dst []byte, reason string) []byte {
	if reason == "" {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = append(dst, reason...)
	return append(dst, '"')
}

// appendMessageID writes the message id vLLM uses: the chat completion's
// id (chatcmpl-…, never msg_…), or msg_<unix ms> when that is empty
// (AnthropicMessagesResponse.model_post_init).
func appendMessageID(dst []byte, id string) []byte {
	if id == "" {
		dst = append(dst, `"msg_`...)
		dst = strconv.AppendInt(dst, time.Now().UnixMilli(), 10)
		return append(dst, '"')
	}
	return appendPyString(dst, id, false)
}

func serverError(msg string) *Error {
	return &Error{Status: http.StatusInternalServerError, Type: "api_error", Message: msg}
}

// Answer translates a non-streaming chat completion into the Anthropic
// Message vLLM's messages_full_converter makes of it: content blocks in the
// order thinking (with a fresh signature), text, tool_use (input parsed,
// key order kept), or a single empty text block for an empty completion;
// stop_reason from finish_reason (stop→end_turn, length→max_tokens,
// tool_calls→tool_use, a matched stop string→stop_sequence); usage net of
// cache. An answer it cannot read gives a 502 *Error; tool arguments that
// are not a JSON object give a 500, as in vLLM (json.loads raises).
//
// Deliberately unlike vLLM, which drops null keys (model_dump(exclude_none)),
// "stop_reason" and "stop_sequence" are always present, null when unset, as
// Anthropic's API sends them and as vLLM issue #56371 asks.
func (r *Request) Answer(chat []byte) ([]byte, error) {
	if err := validDocument(chat); err != nil {
		return nil, badUpstream("not JSON: " + err.Error())
	}
	top, ferr := fields(chat[skipWS(chat, 0):], "", "id", "model", "choices", "usage",
		"kv_transfer_params", "ec_transfer_params")
	if ferr != nil {
		return nil, badUpstream("not a JSON object")
	}
	id, model, choices := top[0], top[1], top[2]
	if present(id) && !isString(id) || !isString(model) || !isArray(choices) {
		return nil, badUpstream("not a chat completion (id, model, choices)")
	}
	cit := newIter(choices)
	choice, ok := cit.elem()
	if !ok {
		return nil, badUpstream("no choices")
	}
	cf, ferr := fields(choice, "", "message", "finish_reason", "stop_reason")
	if ferr != nil {
		return nil, badUpstream("choices[0] is not an object")
	}
	mf, ferr := fields(cf[0], "", "content", "reasoning", "reasoning_content", "tool_calls")
	if ferr != nil {
		return nil, badUpstream("choices[0].message is not an object")
	}
	content, reasoning, toolCalls := mf[0], mf[1], mf[3]
	if !present(reasoning) {
		// vLLM 0.10.2–0.12 named it reasoning_content.
		reasoning = mf[2]
	}
	for _, s := range [][]byte{content, reasoning} {
		if present(s) && !isString(s) {
			return nil, badUpstream("choices[0].message content or reasoning is not a string")
		}
	}

	dst := make([]byte, 0, len(chat)/2+256)
	dst = append(dst, `{"id":`...)
	if id == nil {
		// ChatCompletionResponse's default id.
		dst = append(dst, `"chatcmpl-`...)
		dst = appendUUIDHex(dst, r.random)
		dst = append(dst, '"')
	} else {
		dst = appendMessageID(dst, str(id))
	}
	dst = append(dst, `,"type":"message","role":"assistant","content":[`...)
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
	}
	if present(reasoning) && len(reasoning) > 2 {
		sep()
		dst = append(dst, `{"type":"thinking","thinking":`...)
		dst = appendPyString(dst, str(reasoning), false)
		dst = append(dst, `,"signature":"`...)
		dst = appendUUIDHex(dst, r.random)
		dst = append(dst, `"}`...)
	}
	if present(content) && len(content) > 2 {
		sep()
		dst = append(dst, `{"type":"text","text":`...)
		dst = appendPyString(dst, str(content), false)
		dst = append(dst, '}')
	}
	if present(toolCalls) {
		if !isArray(toolCalls) {
			return nil, badUpstream("choices[0].message.tool_calls is not a list")
		}
		tit := newIter(toolCalls)
		for tc, ok := tit.elem(); ok; tc, ok = tit.elem() {
			sep()
			var err *Error
			if dst, err = r.appendToolUse(dst, tc); err != nil {
				return nil, err
			}
		}
	}
	if n == 0 {
		// Anthropic's shape for an empty completion (vLLM #46525, v0.25;
		// older versions sent []): strict clients read content[0].
		dst = append(dst, `{"type":"text","text":""}`...)
	}
	dst = append(dst, `],"model":`...)
	dst = appendPyString(dst, str(model), false)

	finish := cf[1]
	if finish == nil {
		finish = []byte(`"stop"`) // ChatCompletionResponseChoice's default
	}
	reason, seq := stopReason(finish), []byte(nil)
	if reason == "end_turn" && isString(cf[2]) {
		// a8c3bdb2 (#45807): a matched stop string is reported; a stop
		// token id (an int) is still end_turn.
		reason, seq = "stop_sequence", cf[2]
	}
	dst = append(dst, `,"stop_reason":`...)
	dst = appendStopReason(dst, reason)
	dst = append(dst, `,"stop_sequence":`...)
	if seq == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendPyString(dst, str(seq), false)
	}
	dst = append(dst, `,"usage":`...)
	dst = appendUsage(dst, parseUsage(top[3]))
	for j, key := range []string{"kv_transfer_params", "ec_transfer_params"} {
		if v := top[4+j]; present(v) {
			dst = append(dst, `,"`...)
			dst = append(dst, key...)
			dst = append(dst, `":`...)
			var err error
			if dst, err = (pyJSON{}).appendPyJSON(dst, v); err != nil {
				return nil, serverError(key + ": " + err.Error())
			}
		}
	}
	return append(dst, '}'), nil
}

// appendToolUse writes one tool_use block: the chat tool call's id (the
// parser's chatcmpl-tool-…, kept so that the agent's tool_result finds it),
// its name, and its arguments parsed into an object.
func (r *Request) appendToolUse(dst, tc []byte) ([]byte, *Error) {
	tf, ferr := fields(tc, "", "id", "function")
	if ferr != nil {
		return nil, badUpstream("a tool call is not an object")
	}
	ff, ferr := fields(tf[1], "", "name", "arguments")
	if ferr != nil || !isString(ff[0]) || !isString(ff[1]) {
		return nil, badUpstream("a tool call has no function name and arguments")
	}
	dst = append(dst, `{"type":"tool_use","id":`...)
	if isString(tf[0]) {
		dst = appendPyString(dst, str(tf[0]), false)
	} else {
		// ToolCall's default id, chatcmpl-tool-<16 hex>.
		dst = append(dst, `"chatcmpl-tool-`...)
		mark := len(dst)
		dst = appendUUIDHex(dst, r.random)[:mark+16]
		dst = append(dst, '"')
	}
	dst = append(dst, `,"name":`...)
	dst = appendPyString(dst, str(ff[0]), false)
	dst = append(dst, `,"input":`...)
	args := []byte(str(ff[1]))
	if len(args) == skipWS(args, 0) {
		// No arguments at all reads as {} — what a stream with no
		// input_json_delta gives the SDKs. vLLM's json.loads("") raises.
		return append(dst, "{}}"...), nil
	}
	if err := validDocument(args); err != nil {
		return nil, serverError("tool call " + strconv.Quote(str(ff[0])) + " has arguments that are not JSON: " + err.Error())
	}
	args = args[skipWS(args, 0):]
	if !isObject(args) {
		return nil, serverError("tool call " + strconv.Quote(str(ff[0])) + " has arguments that are not a JSON object")
	}
	out, err := (pyJSON{}).appendPyJSON(dst, args)
	if err != nil {
		return nil, serverError("tool call " + strconv.Quote(str(ff[0])) + ": " + err.Error())
	}
	return append(out, '}'), nil
}
