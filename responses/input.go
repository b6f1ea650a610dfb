package responses

import "encoding/base64"

// msg is one chat message being built; the byte fields are raw JSON values,
// nil when the key is absent.
type msg struct {
	role      string // system, developer, user, assistant, tool
	content   []byte
	reasoning []byte
	calls     []byte // the tool_calls objects, comma-joined
	callID    []byte
}

// walker turns Responses items into chat messages the way vLLM's
// construct_chat_messages_with_tool_call does, each item looking only at the
// message before it: function calls join the preceding assistant message's
// tool_calls, reasoning fills its reasoning and an assistant message its
// content when those are still unset, anything else starts a new message.
type walker struct {
	msgs        []msg
	size        int  // bytes of raw values held, to size the output
	lastPartial bool // the last item is an unfinished message or reasoning
}

func (w *walker) items(arr []byte, param string) *Error {
	if arr[0] != '[' {
		return badRequest(param, "input must be a string or an array of items")
	}
	s := scanner{b: arr}
	s.enter('[')
	for s.more(']') {
		if err := w.item(s.value(), param); err != nil {
			return err
		}
	}
	return nil
}

// lastAssistant returns the previous message when it is an assistant one.
func (w *walker) lastAssistant() *msg {
	if n := len(w.msgs); n > 0 && w.msgs[n-1].role == "assistant" {
		return &w.msgs[n-1]
	}
	return nil
}

func (w *walker) item(raw []byte, param string) *Error {
	if raw[0] != '{' {
		return badRequest(param, "each input item must be an object")
	}
	w.size += len(raw)
	var typ, role, content, status, callID, name, namespace, arguments, output, summary, encrypted []byte
	pick(raw, []string{"type", "role", "content", "status", "call_id", "name", "namespace",
		"arguments", "output", "summary", "encrypted_content"},
		&typ, &role, &content, &status, &callID, &name, &namespace, &arguments, &output, &summary, &encrypted)
	kind := decoded(typ)
	if isNull(typ) && !isNull(role) {
		kind = "message" // EasyInputMessage: {"role":…,"content":…}
	}
	w.lastPartial = (kind == "message" || kind == "reasoning") &&
		(strEq(status, "in_progress") || strEq(status, "incomplete"))
	switch kind {
	case "message":
		return w.message(role, content, param)
	case "function_call":
		if !isString(callID) || !isString(name) || !isString(arguments) {
			return badRequest(param, "a function_call item needs call_id, name and arguments strings")
		}
		tc := make([]byte, 0, 64+len(callID)+len(name)+len(namespace)+len(arguments))
		tc = append(append(tc, `{"id":`...), callID...)
		tc = append(tc, `,"type":"function","function":{"name":`...)
		if ns, _ := strContent(namespace); isString(namespace) && len(ns) > 0 {
			n, _ := strContent(name)
			tc = append(append(append(append(append(tc, '"'), ns...), "__"...), n...), '"')
		} else {
			tc = append(tc, name...)
		}
		tc = append(append(append(tc, `,"arguments":`...), arguments...), "}}"...)
		if last := w.lastAssistant(); last != nil {
			if last.calls != nil {
				last.calls = append(last.calls, ',')
			}
			last.calls = append(last.calls, tc...)
			return nil
		}
		w.msgs = append(w.msgs, msg{role: "assistant", calls: tc})
	case "function_call_output":
		if !isString(callID) {
			return badRequest(param, "a function_call_output item needs a call_id string")
		}
		var out []byte
		switch {
		case isString(output):
			out = output
		case len(output) > 0 && output[0] == '[':
			var err *Error
			if out, err = chatParts(output, param); err != nil {
				return err
			}
		default:
			return badRequest(param, "a function_call_output item needs an output string or content array")
		}
		w.msgs = append(w.msgs, msg{role: "tool", callID: callID, content: out})
	case "reasoning":
		text := w.reasoningText(content, summary, encrypted)
		if last := w.lastAssistant(); last != nil && last.reasoning == nil {
			last.reasoning = text
			return nil
		}
		w.msgs = append(w.msgs, msg{role: "assistant", reasoning: text})
	case "":
		return badRequest(param, "an input item needs a type")
	default:
		return badRequest(param, "Unsupported input item type: "+kind)
	}
	return nil
}

func (w *walker) message(role, content []byte, param string) *Error {
	r := decoded(role)
	switch r {
	case "user", "system", "developer":
		// vLLM hands these to the chat renderer unchanged; the chat part types
		// render identically, and chat validation accepts nothing else.
		switch {
		case isString(content):
		case len(content) > 0 && content[0] == '[':
			var err *Error
			if content, err = chatParts(content, param); err != nil {
				return err
			}
		default:
			return badRequest(param, "a "+r+" message needs a content string or array")
		}
		w.msgs = append(w.msgs, msg{role: r, content: content})
	case "assistant":
		// Only the first content part is used, as vLLM does.
		text := []byte(`""`)
		switch {
		case isString(content):
			text = content
		case len(content) > 0 && content[0] == '[':
			s := scanner{b: content}
			s.enter('[')
			if s.more(']') {
				if part := s.value(); part[0] == '{' {
					if t := member(part, "text"); isString(t) {
						text = t
					}
				}
			}
		}
		if last := w.lastAssistant(); last != nil && last.content == nil {
			last.content = text
			return nil
		}
		w.msgs = append(w.msgs, msg{role: "assistant", content: text})
	default:
		return badRequest(param, "Unsupported message role: "+r)
	}
	return nil
}

// reasoningText is the text of a reasoning item sent back: content[0].text,
// else the text tokentap carried in encrypted_content, else summary[0].text
// (vLLM's order, with the carrier in between; any other encrypted_content is
// accepted and ignored), else "".
func (w *walker) reasoningText(content, summary, encrypted []byte) []byte {
	if t := firstText(content); t != nil {
		return t
	}
	if isString(encrypted) {
		if c, esc := strContent(encrypted); !esc && len(c) > len(carrierPrefix) && string(c[:len(carrierPrefix)]) == carrierPrefix {
			if text, err := base64.RawStdEncoding.DecodeString(string(c[len(carrierPrefix):])); err == nil {
				return appendQuoted(nil, text)
			}
		}
	}
	if t := firstText(summary); t != nil {
		return t
	}
	return []byte(`""`)
}

// firstText returns the "text" of the first element of an array of parts.
func firstText(arr []byte) []byte {
	if len(arr) == 0 || arr[0] != '[' {
		return nil
	}
	s := scanner{b: arr}
	s.enter('[')
	if !s.more(']') {
		return nil
	}
	part := s.value()
	if part[0] != '{' {
		return nil
	}
	if t := member(part, "text"); isString(t) {
		return t
	}
	return nil
}

// member returns the raw value of one member of an object, or nil.
func member(obj []byte, name string) []byte {
	if s := (scanner{b: obj}); !s.enter('{') {
		return nil
	}
	var found []byte
	pick(obj, []string{name}, &found)
	return found
}

// chatParts rewrites Responses content parts as chat parts: input_text and
// output_text become text, input_image becomes image_url. vLLM's chat parser
// renders both spellings the same; chat validation takes only its own.
func chatParts(arr []byte, param string) ([]byte, *Error) {
	out := make([]byte, 0, len(arr)+16)
	out = append(out, '[')
	s := scanner{b: arr}
	s.enter('[')
	for s.more(']') {
		part := s.value()
		if part[0] != '{' {
			return nil, badRequest(param, "each content part must be an object")
		}
		var typ, text, image []byte
		pick(part, []string{"type", "text", "image_url"}, &typ, &text, &image)
		if len(out) > 1 {
			out = append(out, ',')
		}
		switch kind := decoded(typ); kind {
		case "input_text", "output_text", "text":
			if !isString(text) {
				return nil, badRequest(param, "a "+kind+" part needs a text string")
			}
			out = append(append(append(out, `{"type":"text","text":`...), text...), '}')
		case "input_image", "image_url":
			switch {
			case isString(image):
				out = append(append(append(out, `{"type":"image_url","image_url":{"url":`...), image...), "}}"...)
			case len(image) > 0 && image[0] == '{':
				out = appendCompact(append(out, `{"type":"image_url","image_url":`...), image)
				out = append(out, '}')
			default:
				return nil, badRequest(param, "an input_image part needs an image_url (file_id is not supported)")
			}
		default:
			return nil, badRequest(param, "Unsupported content part type: "+kind)
		}
	}
	return append(out, ']'), nil
}

// appendMessages writes the chat messages: the instructions as the leading
// system message (when non-empty), then the converted items.
func (w *walker) appendMessages(out, instructions []byte) []byte {
	out = append(out, '[')
	first := true
	if c, _ := strContent(instructions); isString(instructions) && len(c) > 0 {
		out = append(append(append(out, `{"role":"system","content":`...), instructions...), '}')
		first = false
	}
	for i := range w.msgs {
		m := &w.msgs[i]
		if !first {
			out = append(out, ',')
		}
		first = false
		out = append(append(append(out, `{"role":"`...), m.role...), '"')
		if m.role == "tool" {
			out = append(append(out, `,"tool_call_id":`...), m.callID...)
		}
		if m.content != nil {
			out = append(append(out, `,"content":`...), m.content...)
		}
		if m.reasoning != nil {
			out = append(append(out, `,"reasoning":`...), m.reasoning...)
		}
		if m.calls != nil {
			out = append(append(append(out, `,"tool_calls":[`...), m.calls...), ']')
		}
		out = append(out, '}')
	}
	return append(out, ']')
}
