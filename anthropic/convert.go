package anthropic

import (
	"strconv"
	"strings"
	"time"
)

// This file turns Anthropic messages into chat messages the way
// AnthropicServingMessages._convert_messages does (serving.py @a8c3bdb2),
// quirks included: a user turn's tool_result blocks become role:"tool"
// messages placed before the rest of that turn, images inside a tool result
// become a user message of their own right after it, thinking becomes
// "reasoning", redacted_thinking is dropped.

const (
	partText = iota
	partImage
	partToolReference
)

type chatPart struct {
	kind int
	text string // text, image URL or tool name
}

type chatToolCall struct {
	id, name string
	args     []byte // json.dumps of the input
}

type chatMessage struct {
	role       string
	reasoning  *string
	toolCalls  []chatToolCall
	toolCallID *string
	hasContent bool
	isParts    bool
	content    string
	parts      []chatPart
}

func (t *Translator) unixNow() int64 {
	if t.now != nil {
		return t.now().Unix()
	}
	return time.Now().Unix()
}

// chatMessages is to_chat_completion_request's message half: inline system
// placement, the leading system message, then each message.
func (t *Translator) chatMessages(r *anthropicRequest, mode InlineSystem) ([]chatMessage, *Error) {
	leading, msgs := normalizeInline(mode, r.systemMsg, r.messages)
	var out []chatMessage
	if sys := joinText(systemPromptText(r.systemMsg), leading); sys != "" {
		out = append(out, chatMessage{role: "system", hasContent: true, content: sys})
	}
	for i, m := range msgs {
		var err *Error
		if out, err = t.convertMessage(out, m, idx("messages", i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (t *Translator) convertMessage(out []chatMessage, m message, path string) ([]chatMessage, *Error) {
	if m.role == "system" {
		// Billing header stripped, empty ones dropped; never through the
		// block conversion, which could leave a message with no content.
		if text := systemText(m); text != "" {
			out = append(out, chatMessage{role: "system", hasContent: true, content: text})
		}
		return out, nil
	}
	cm := chatMessage{role: m.role}
	if m.isStr {
		cm.hasContent, cm.content = true, m.s
		return append(out, cm), nil
	}
	var parts []chatPart
	var reasoning []string
	hasReasoning := false
	for j, b := range m.blocks {
		bp := join(path, "content."+strconv.Itoa(j))
		switch b.typ {
		case "text":
			if b.text != nil && *b.text != "" {
				parts = append(parts, chatPart{partText, *b.text})
			}
		case "image":
			if b.source != nil && hasMembers(b.source) {
				url, err := imageURL(b.source, join(bp, "source"))
				if err != nil {
					return nil, err
				}
				parts = append(parts, chatPart{partImage, url})
			}
		case "thinking":
			if b.thinking != nil {
				reasoning = append(reasoning, *b.thinking)
				hasReasoning = true
			}
		case "redacted_thinking":
			// Opaque, safety-filtered reasoning: accepted so that an echoed
			// assistant turn validates, and dropped.
		case "tool_use":
			cm.toolCalls = append(cm.toolCalls, t.toolCall(b))
		case "tool_result":
			if m.role == "user" {
				var err *Error
				if out, err = userToolResult(out, b, bp); err != nil {
					return nil, err
				}
			} else {
				text := ""
				switch b.content.kind {
				case contentString:
					text = b.content.s
				case contentList:
					if len(b.content.items) > 0 {
						text = string(appendPyRepr(nil, b.content.raw))
					}
				}
				parts = append(parts, chatPart{partText, "Tool result: " + text})
			}
		case "tool_reference":
			// Expanded only inside a tool_result's content.
		}
	}
	if hasReasoning {
		r := strings.Join(reasoning, "")
		cm.reasoning = &r
	}
	if len(parts) > 0 {
		cm.hasContent = true
		if len(parts) == 1 && parts[0].kind == partText {
			cm.content = parts[0].text
		} else {
			cm.isParts, cm.parts = true, parts
		}
	}
	// A user turn of tool results only has said everything in its tool
	// messages; an assistant turn is kept even with no content at all (no
	// "content" key: the 2026-05 version sent "content": "" instead).
	if m.role == "user" && !cm.hasContent {
		return out, nil
	}
	return append(out, cm), nil
}

// toolCall is _convert_tool_use_block: the arguments are Python's
// json.dumps of the input (", " and ": " separators, ASCII escapes), which
// vLLM parses back into a dict before rendering, key order kept.
func (t *Translator) toolCall(b block) chatToolCall {
	tc := chatToolCall{args: []byte("{}")}
	if b.id != nil && *b.id != "" {
		tc.id = *b.id
	} else {
		tc.id = "call_" + strconv.FormatInt(t.unixNow(), 10)
	}
	if b.name != nil {
		tc.name = *b.name
	}
	if b.input != nil {
		// Validated, and json.dumps' default allow_nan writes overflowing
		// floats as Infinity, so this cannot fail.
		tc.args, _ = pyJSON{ascii: true, spaced: true, allowNaN: true}.appendPyJSON(nil, b.input)
	}
	return tc
}

// pyFormat is Python's f"{value}" of a JSON value: strings as they are,
// anything else through str().
func pyFormat(v []byte) string {
	if isString(v) {
		return str(v)
	}
	return string(appendPyRepr(nil, v))
}

// imageURL is _convert_image_source_to_url: source.url for a url source,
// else a data URI, media_type defaulting to image/jpeg.
func imageURL(source []byte, path string) (string, *Error) {
	f, err := fields(source, path, "type", "url", "media_type", "data")
	if err != nil {
		return "", err
	}
	if isString(f[0]) && str(f[0]) == "url" {
		if f[1] == nil {
			return "", nil
		}
		if !isString(f[1]) {
			return "", invalid(join(path, "url"), "Input should be a valid string")
		}
		return str(f[1]), nil
	}
	media := "image/jpeg"
	if f[2] != nil {
		media = pyFormat(f[2])
	}
	data := ""
	if f[3] != nil {
		data = pyFormat(f[3])
	}
	return "data:" + media + ";base64," + data, nil
}

// userToolResult is _convert_user_tool_result: one tool message with the
// text, then a user message with the images, then a tool message with the
// tool references.
func userToolResult(out []chatMessage, b block, path string) ([]chatMessage, *Error) {
	id := ""
	if b.toolUseID != nil {
		id = *b.toolUseID
	}
	text := ""
	var images []chatPart
	var refs []chatPart
	switch b.content.kind {
	case contentString:
		text = b.content.s
	case contentList:
		texts := make([]string, 0, len(b.content.items))
		for k, it := range b.content.items {
			ip := join(path, "content."+strconv.Itoa(k))
			switch it.typ {
			case "text":
				switch {
				case it.text == nil:
					texts = append(texts, "")
				case isString(it.text):
					texts = append(texts, str(it.text))
				default:
					// None: vLLM's "\n".join raises.
					return nil, invalid(join(ip, "text"), "Input should be a valid string")
				}
			case "image":
				src := it.source
				if src == nil {
					src = []byte("{}")
				}
				if !isObject(src) {
					return nil, invalid(join(ip, "source"), "Input should be a valid dictionary")
				}
				url, err := imageURL(src, join(ip, "source"))
				if err != nil {
					return nil, err
				}
				if url != "" {
					images = append(images, chatPart{partImage, url})
				}
			case "tool_reference":
				ref := it.toolName
				if !truthy(ref) {
					ref = it.name
				}
				if truthy(ref) {
					if !isString(ref) {
						return nil, invalid(join(ip, "tool_name"), "Input should be a valid string")
					}
					refs = append(refs, chatPart{partToolReference, str(ref)})
				}
			}
		}
		text = strings.Join(texts, "\n")
	}
	out = append(out, chatMessage{role: "tool", toolCallID: &id, hasContent: true, content: text})
	if len(images) > 0 {
		out = append(out, chatMessage{role: "user", hasContent: true, isParts: true, parts: images})
	}
	if len(refs) > 0 {
		out = append(out, chatMessage{role: "tool", toolCallID: &id, hasContent: true, isParts: true, parts: refs})
	}
	return out, nil
}

// truthy is Python's bool() of a JSON value.
func truthy(v []byte) bool {
	switch {
	case v == nil || isNull(v):
		return false
	case isString(v):
		return len(v) > 2
	case isBool(v):
		return v[0] == 't'
	case isNumber(v):
		f, err := strconv.ParseFloat(string(v), 64)
		return err != nil || f != 0
	case isObject(v):
		return hasMembers(v)
	case isArray(v):
		it := newIter(v)
		_, ok := it.elem()
		return ok
	}
	return false
}

// appendChatMessages writes the messages with their keys in the order
// vLLM's dicts have them: role, reasoning, tool_calls, tool_call_id,
// content.
func appendChatMessages(dst []byte, msgs []chatMessage) []byte {
	dst = append(dst, '[')
	for i, m := range msgs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"role":`...)
		dst = appendPyString(dst, m.role, false)
		if m.reasoning != nil {
			dst = append(dst, `,"reasoning":`...)
			dst = appendPyString(dst, *m.reasoning, false)
		}
		if len(m.toolCalls) > 0 {
			dst = append(dst, `,"tool_calls":[`...)
			for j, tc := range m.toolCalls {
				if j > 0 {
					dst = append(dst, ',')
				}
				dst = append(dst, `{"id":`...)
				dst = appendPyString(dst, tc.id, false)
				dst = append(dst, `,"type":"function","function":{"name":`...)
				dst = appendPyString(dst, tc.name, false)
				dst = append(dst, `,"arguments":`...)
				dst = appendPyString(dst, string(tc.args), false)
				dst = append(dst, "}}"...)
			}
			dst = append(dst, ']')
		}
		if m.toolCallID != nil {
			dst = append(dst, `,"tool_call_id":`...)
			dst = appendPyString(dst, *m.toolCallID, false)
		}
		if m.hasContent {
			dst = append(dst, `,"content":`...)
			if !m.isParts {
				dst = appendPyString(dst, m.content, false)
			} else {
				dst = appendParts(dst, m.parts)
			}
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

func appendParts(dst []byte, parts []chatPart) []byte {
	dst = append(dst, '[')
	for i, p := range parts {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch p.kind {
		case partText:
			dst = append(dst, `{"type":"text","text":`...)
			dst = appendPyString(dst, p.text, false)
			dst = append(dst, '}')
		case partImage:
			dst = append(dst, `{"type":"image_url","image_url":{"url":`...)
			dst = appendPyString(dst, p.text, false)
			dst = append(dst, "}}"...)
		case partToolReference:
			dst = append(dst, `{"type":"tool_reference","name":`...)
			dst = appendPyString(dst, p.text, false)
			dst = append(dst, '}')
		}
	}
	return append(dst, ']')
}
