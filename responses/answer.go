package responses

import (
	"encoding/base64"
	"net/http"
	"strconv"
)

// usage is a response's token accounting. vLLM always reports both details
// as integers, and Codex fails to parse a null inside a details object.
type usage struct {
	input, cached, output, reasoning int64
}

// outcome is what the answer contributes to the response object.
type outcome struct {
	created int64
	model   []byte // raw JSON string (or null)
	status  string // in_progress, completed, incomplete, failed
	output  []byte // the output items, comma-joined
	usage   *usage // nil: null
	kv      []byte // kv_transfer_params from the upstream, nil: null
	failure []byte // the error message of a failed response, a raw JSON string
}

// appendResponse writes the response object in the field order of vLLM's
// ResponsesResponse (model_dump, nulls kept), with the request's echoed
// fields in between. A failed response also carries OpenAI's "error" member,
// placed where OpenAI's Response model has it, since vLLM's has none.
func (r *Request) appendResponse(dst []byte, o *outcome) []byte {
	dst = append(append(dst, `{"id":`...), r.id...)
	dst = strconv.AppendInt(append(dst, `,"created_at":`...), o.created, 10)
	if o.status == "failed" {
		dst = append(append(append(dst, `,"error":{"code":"server_error","message":`...), o.failure...), '}')
	}
	if o.status == "incomplete" {
		dst = append(dst, `,"incomplete_details":{"reason":"max_output_tokens"},`...)
	} else {
		dst = append(dst, `,"incomplete_details":null,`...)
	}
	dst = append(dst, r.echo[0]...)
	dst = append(append(dst, `"model":`...), o.model...)
	dst = append(append(dst, `,"object":"response","output":[`...), o.output...)
	dst = append(append(dst, "],"...), r.echo[1]...)
	dst = append(append(append(dst, `"status":"`...), o.status...), `",`...)
	dst = append(append(dst, r.echo[2]...), `"usage":`...)
	if o.usage == nil {
		dst = append(dst, "null"...)
	} else {
		dst = appendUsage(dst, o.usage)
	}
	dst = append(append(dst, ','), r.echo[3]...)
	dst = append(dst, `"kv_transfer_params":`...)
	if o.kv == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, o.kv...)
	}
	return append(dst, `,"ec_transfer_params":null,"input_messages":null,"output_messages":null}`...)
}

// appendUsage writes vLLM's ResponseUsage, its per-turn extras included.
func appendUsage(dst []byte, u *usage) []byte {
	dst = strconv.AppendInt(append(dst, `{"input_tokens":`...), u.input, 10)
	dst = strconv.AppendInt(append(dst, `,"input_tokens_details":{"cached_tokens":`...), u.cached, 10)
	dst = strconv.AppendInt(append(dst, `,"input_tokens_per_turn":[],"cached_tokens_per_turn":[]},"output_tokens":`...), u.output, 10)
	dst = strconv.AppendInt(append(dst, `,"output_tokens_details":{"reasoning_tokens":`...), u.reasoning, 10)
	dst = append(dst, `,"tool_output_tokens":0,"output_tokens_per_turn":[],"tool_output_tokens_per_turn":[]},"total_tokens":`...)
	return append(strconv.AppendInt(dst, u.input+u.output, 10), '}')
}

// readUsage reads a chat usage object.
func readUsage(raw []byte) (usage, bool) {
	var u usage
	if len(raw) == 0 || raw[0] != '{' {
		return u, false
	}
	var prompt, completion, promptDetails, completionDetails []byte
	pick(raw, []string{"prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details"},
		&prompt, &completion, &promptDetails, &completionDetails)
	u.input, _ = parseInt(prompt)
	u.output, _ = parseInt(completion)
	u.cached, _ = parseInt(member(promptDetails, "cached_tokens"))
	u.reasoning, _ = parseInt(member(completionDetails, "reasoning_tokens"))
	return u, true
}

// Item writers. Each output item has the field order of its openai-python
// model. text, args and callID are raw JSON string contents (no quotes);
// the reasoning and message shapes of the final response object are vLLM's
// build_response_output_items, the "done" ones those of its stream.

func appendReasoningItem(dst, id, text, carrier []byte, status string) []byte {
	dst = append(append(append(dst, `{"id":"`...), id...), `","summary":[],"type":"reasoning","content":[{"text":"`...)
	dst = append(append(dst, text...), `","type":"reasoning_text"}],"encrypted_content":`...)
	if carrier == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, carrier...)
	}
	return append(append(append(dst, `,"status":`...), status...), '}')
}

func appendMessageItem(dst, id, text, logprobs []byte) []byte {
	dst = append(append(append(dst, `{"id":"`...), id...), `","content":[{"annotations":[],"text":"`...)
	dst = append(append(dst, text...), `","type":"output_text","logprobs":`...)
	if logprobs == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(append(append(dst, '['), logprobs...), ']')
	}
	return append(dst, `}],"role":"assistant","status":"completed","type":"message"}`...)
}

// appendCallItem writes a function_call item. A chat name that flattens a
// namespace tool is written back as its name and namespace.
func (r *Request) appendCallItem(dst, id, callID, chatName, args []byte, status string) []byte {
	dst = append(append(append(dst, `{"arguments":"`...), args...), `","call_id":"`...)
	dst = append(append(dst, callID...), `","name":`...)
	tn, mapped := r.names[string(chatName)]
	if !mapped && len(r.names) > 0 {
		tn, mapped = r.names[string(unescape(nil, chatName))]
	}
	if mapped {
		dst = append(dst, tn.name...)
	} else {
		dst = append(append(append(dst, '"'), chatName...), '"')
	}
	dst = append(append(append(dst, `,"type":"function_call","id":"`...), id...), '"')
	if mapped {
		dst = append(append(dst, `,"namespace":`...), tn.namespace...)
	}
	return append(append(append(append(dst, `,"status":"`...), status...), '"'), '}')
}

// appendCallName writes the name a chat tool call has in the Responses
// answer (function_call_arguments.done carries it).
func (r *Request) appendCallName(dst, chatName []byte) []byte {
	if tn, ok := r.names[string(chatName)]; ok {
		return append(dst, tn.name...)
	}
	if len(r.names) > 0 {
		if tn, ok := r.names[string(unescape(nil, chatName))]; ok {
			return append(dst, tn.name...)
		}
	}
	return append(append(append(dst, '"'), chatName...), '"')
}

// appendCarrier writes the encrypted_content value that carries reasoning
// text (raw JSON string contents) back to tokentap; scratch is reused.
func appendCarrier(dst, text []byte, scratch *[]byte) []byte {
	plain := unescape((*scratch)[:0], text)
	*scratch = plain
	dst = append(append(dst, '"'), carrierPrefix...)
	dst = base64.RawStdEncoding.AppendEncode(dst, plain)
	return append(dst, '"')
}

// appendLogprobs converts the entries of a chat logprobs "content" array.
// final selects the shape of an output_text part (token, bytes, logprob,
// top_logprobs) over the lighter one of an output_text.delta event (token,
// logprob, top_logprobs), as vLLM writes them. Entries are comma-joined.
func appendLogprobs(dst, content []byte, final bool) []byte {
	if len(content) == 0 || content[0] != '[' {
		return dst
	}
	first := true
	s := scanner{b: content}
	s.enter('[')
	for s.more(']') {
		entry := s.value()
		if entry[0] != '{' {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		var token, logprob, bytes, top []byte
		pick(entry, []string{"token", "logprob", "bytes", "top_logprobs"}, &token, &logprob, &bytes, &top)
		dst = appendLogprob(dst, token, logprob, bytes, final)
		dst = append(dst, `,"top_logprobs":[`...)
		if len(top) > 0 && top[0] == '[' {
			tfirst := true
			ts := scanner{b: top}
			ts.enter('[')
			for ts.more(']') {
				alt := ts.value()
				if alt[0] != '{' {
					continue
				}
				if !tfirst {
					dst = append(dst, ',')
				}
				tfirst = false
				var at, al, ab []byte
				pick(alt, []string{"token", "logprob", "bytes"}, &at, &al, &ab)
				dst = append(appendLogprob(dst, at, al, ab, final), '}')
			}
		}
		dst = append(dst, "]}"...)
	}
	return dst
}

// appendLogprob writes the opening of one logprob object, without its
// closing brace: {"token":…[,"bytes":…],"logprob":…
func appendLogprob(dst, token, logprob, bytes []byte, final bool) []byte {
	if !isString(token) {
		token = []byte(`""`)
	}
	dst = append(append(dst, `{"token":`...), token...)
	if final {
		dst = append(dst, `,"bytes":`...)
		if len(bytes) > 0 && bytes[0] == '[' {
			dst = appendCompact(dst, bytes)
		} else { // vLLM sends the UTF-8 of the token when chat has none
			dst = append(dst, '[')
			c, _ := strContent(token)
			for i, b := range unescape(nil, c) {
				if i > 0 {
					dst = append(dst, ',')
				}
				dst = strconv.AppendUint(dst, uint64(b), 10)
			}
			dst = append(dst, ']')
		}
	}
	dst = append(dst, `,"logprob":`...)
	if _, ok := parseNumber(logprob); ok {
		return append(dst, logprob...)
	}
	return append(dst, "-9999.0"...)
}

// parseNumber reports whether raw is a JSON number.
func parseNumber(raw []byte) ([]byte, bool) {
	if len(raw) == 0 {
		return nil, false
	}
	c := raw[0]
	return raw, c == '-' || (c >= '0' && c <= '9')
}

// Answer translates the upstream's chat completion JSON into the Responses
// object the agent receives, and returns the History to store under ID()
// when Store() allows it. The output items are vLLM's: reasoning, then the
// message (only when the content is not empty), then one function_call per
// tool call, its call_id the chat tool call's id; finish_reason "length"
// makes the status "incomplete" (reason "max_output_tokens").
//
// An answer that is not a chat completion gives an *Error (502).
func (r *Request) Answer(chat []byte) ([]byte, *History, error) {
	bad := func(msg string) ([]byte, *History, error) {
		return nil, nil, &Error{Status: http.StatusBadGateway, Type: "server_error", Message: "upstream answer " + msg}
	}
	if !wellFormed(chat) {
		return bad("is not valid JSON")
	}
	s := scanner{b: chat}
	if !s.enter('{') {
		return bad("is not a JSON object")
	}
	o := outcome{created: r.created, model: r.model, status: "completed"}
	var choices, usageRaw []byte
	for s.more('}') {
		k := s.key()
		v := s.value()
		switch string(k) {
		case "created":
			if n, ok := parseInt(v); ok {
				o.created = n
			}
		case "model":
			if isString(v) {
				o.model = v
			}
		case "choices":
			choices = v
		case "usage":
			usageRaw = v
		case "kv_transfer_params":
			if !isNull(v) {
				o.kv = appendCompact(nil, v)
			}
		}
	}
	choice := firstChoice(choices)
	if choice == nil {
		return bad("has no choices")
	}
	var message, finish, logprobs []byte
	pick(choice, []string{"message", "finish_reason", "logprobs"}, &message, &finish, &logprobs)
	if strEq(finish, "length") {
		o.status = "incomplete"
	}
	var content, reasoning, reasoningOld, calls []byte
	if len(message) > 0 && message[0] == '{' {
		// reasoning_content: vLLM 0.10.2 to ~0.12
		pick(message, []string{"content", "reasoning", "reasoning_content", "tool_calls"}, &content, &reasoning, &reasoningOld, &calls)
	}
	if !isString(reasoning) {
		reasoning = reasoningOld
	}

	var out, id, scratch []byte
	if text, _ := strContent(reasoning); isString(reasoning) && len(text) > 0 {
		id = r.ids(id[:0], "rs_")
		var carrier []byte
		if r.carrier {
			carrier = appendCarrier(nil, text, &scratch)
		}
		out = appendReasoningItem(out, id, text, carrier, "null")
	}
	if text, _ := strContent(content); isString(content) && len(text) > 0 {
		var lp []byte
		if r.logprobs {
			lp = appendLogprobs([]byte{}, member(logprobs, "content"), true)
		}
		if len(out) > 0 {
			out = append(out, ',')
		}
		id = r.ids(id[:0], "msg_")
		out = appendMessageItem(out, id, text, lp)
	}
	if len(calls) > 0 && calls[0] == '[' {
		ts := scanner{b: calls}
		ts.enter('[')
		for ts.more(']') {
			tc := ts.value()
			if tc[0] != '{' {
				continue
			}
			callID, name, args := toolCall(tc)
			if callID == nil {
				callID = r.ids(nil, "chatcmpl-tool-")
			}
			if len(out) > 0 {
				out = append(out, ',')
			}
			id = r.ids(id[:0], "fc_")
			out = r.appendCallItem(out, id, callID, name, args, "completed")
		}
	}
	o.output = out
	u, ok := readUsage(usageRaw)
	if !ok {
		u = usage{}
	}
	o.usage = &u
	body := r.appendResponse(make([]byte, 0, 1024+len(out)+len(r.echo[1])), &o)
	hist := &History{Input: r.input, Output: append(append(append(make([]byte, 0, len(out)+2), '['), out...), ']')}
	return body, hist, nil
}

// firstChoice returns the choice with index 0 (the only one a Responses
// request produces), or the first choice.
func firstChoice(choices []byte) []byte {
	if len(choices) == 0 || choices[0] != '[' {
		return nil
	}
	var first []byte
	s := scanner{b: choices}
	s.enter('[')
	for s.more(']') {
		c := s.value()
		if c[0] != '{' {
			continue
		}
		if first == nil {
			first = c
		}
		if n, ok := parseInt(member(c, "index")); ok && n == 0 {
			return c
		}
	}
	return first
}

// toolCall reads a chat tool call: its id, function name and arguments as
// raw string contents (nil id when missing).
func toolCall(tc []byte) (id, name, args []byte) {
	s := scanner{b: tc}
	s.enter('{')
	for s.more('}') {
		switch k := s.key(); string(k) {
		case "id":
			if v := s.value(); isString(v) {
				if c, _ := strContent(v); len(c) > 0 {
					id = c
				}
			}
		case "function":
			fn := s.value()
			if len(fn) == 0 || fn[0] != '{' {
				continue
			}
			fs := scanner{b: fn}
			fs.enter('{')
			for fs.more('}') {
				switch k := fs.key(); string(k) {
				case "name":
					if v := fs.value(); isString(v) {
						name, _ = strContent(v)
					}
				case "arguments":
					if v := fs.value(); isString(v) {
						args, _ = strContent(v)
					}
				default:
					fs.value()
				}
			}
		default:
			s.value()
		}
	}
	return id, name, args
}
