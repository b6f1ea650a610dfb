package anthropic

import "strings"

// This file ports vllm/entrypoints/anthropic/inline_system.py @a8c3bdb2:
// where role:"system" messages inside "messages" go. Claude Code appends one
// almost every turn (<total_tokens>…</total_tokens> after tool results).
// Older vLLM versions differ: v0.23 merged them all into the leading system
// prompt, 1ad84fea8 kept them in place unless the chat template rejected
// that; the newest (followed here) keeps or folds them, chosen per
// deployment (InlineSystem), and never rewrites earlier turns, so each
// request of a session renders as an extension of the previous one.

// InlineSystem says where role:"system" messages inside "messages" go. vLLM
// resolves it once per server by probing the chat template ("auto"); a proxy
// cannot probe, so the deployment says which one its vLLM resolves to. Either
// choice changes the prompt tokens.
type InlineSystem string

const (
	// InlinePreserve keeps them in place as system turns (the zero value).
	// Without a system prompt it folds instead, because some templates
	// render request-level tools at the first system message wherever it
	// is. vLLM resolves to this for templates that mark a system turn.
	InlinePreserve InlineSystem = "preserve"
	// InlineFold appends their text to the neighbouring user turn (its own
	// trailing text, else its last tool_result), or prepends it to the next
	// user turn when it follows an assistant turn. vLLM resolves to this
	// when the probe fails or the template drops or mangles system turns.
	InlineFold InlineSystem = "fold"
)

// joinText is vLLM's _join: the non-empty texts, "\n\n" between them.
func joinText(texts ...string) string {
	var sb strings.Builder
	for _, t := range texts {
		if t == "" {
			continue
		}
		if sb.Len() > 0 {
			sb.WriteString("\n\n")
		}
		sb.WriteString(t)
	}
	return sb.String()
}

// blocksText is the text of a system block list: the non-empty text blocks,
// billing header skipped, joined with no separator.
func blocksText(blocks []block) string {
	var sb strings.Builder
	for _, b := range blocks {
		if b.typ == "text" && b.text != nil && *b.text != "" && !strings.HasPrefix(*b.text, billingHeader) {
			sb.WriteString(*b.text)
		}
	}
	return sb.String()
}

// systemText is the text of a system message, without the billing header.
func systemText(m message) string {
	if m.isStr {
		if strings.HasPrefix(m.s, billingHeader) {
			return ""
		}
		return m.s
	}
	return blocksText(m.blocks)
}

// systemPromptText is the text of the top-level "system". A string is
// taken whole, billing header or not, as vLLM does.
func systemPromptText(sys *message) string {
	if sys == nil {
		return ""
	}
	if sys.isStr {
		return sys.s
	}
	return blocksText(sys.blocks)
}

func textBlock(t string) block { return block{typ: "text", text: &t} }

// addText joins text onto the text at one end of a message's content,
// merging into an adjacent text block rather than adding one, because some
// templates concatenate text blocks without a separator.
func addText(m message, text string, atEnd bool) message {
	if m.isStr {
		if atEnd {
			m.s = joinText(m.s, text)
		} else {
			m.s = joinText(text, m.s)
		}
		return m
	}
	blocks := append([]block(nil), m.blocks...)
	end := 0
	if atEnd {
		end = len(blocks) - 1
	}
	if len(blocks) > 0 && blocks[end].typ == "text" {
		old := ""
		if blocks[end].text != nil {
			old = *blocks[end].text
		}
		var t string
		if atEnd {
			t = joinText(old, text)
		} else {
			t = joinText(text, old)
		}
		blocks[end].text = &t
	} else if atEnd {
		blocks = append(blocks, textBlock(text))
	} else {
		blocks = append([]block{textBlock(text)}, blocks...)
	}
	m.blocks = blocks
	return m
}

// addToolResultText appends text to a tool_result's content, the same way.
func addToolResultText(c blockContent, text string) blockContent {
	switch c.kind {
	case contentNone:
		return blockContent{kind: contentString, s: text}
	case contentString:
		return blockContent{kind: contentString, s: joinText(c.s, text)}
	}
	items := append([]item(nil), c.items...)
	if n := len(items); n > 0 && items[n-1].typ == "text" {
		old := ""
		if isString(items[n-1].text) {
			old = str(items[n-1].text)
		}
		items[n-1].text = appendPyString(nil, joinText(old, text), false)
	} else {
		items = append(items, item{typ: "text", text: appendPyString(nil, text, false)})
	}
	return blockContent{kind: contentList, items: items}
}

// appendToUser appends to the user's own text or, failing that, to the last
// tool result. Blocks other than tool_result become the user message that
// follows the tool messages, so appending there never adds a turn.
func appendToUser(m message, text string) message {
	if !m.isStr && len(m.blocks) > 0 {
		allResults := true
		for _, b := range m.blocks {
			if b.typ != "tool_result" {
				allResults = false
				break
			}
		}
		if allResults {
			blocks := append([]block(nil), m.blocks...)
			last := &blocks[len(blocks)-1]
			last.content = addToolResultText(last.content, text)
			m.blocks = blocks
			return m
		}
	}
	if m.isStr {
		return addText(m, text, true)
	}
	var results, own []block
	for _, b := range m.blocks {
		if b.typ == "tool_result" {
			results = append(results, b)
		} else {
			own = append(own, b)
		}
	}
	m = addText(message{role: m.role, blocks: own}, text, true)
	m.blocks = append(results, m.blocks...)
	return m
}

func hasToolUse(m message) bool {
	if m.isStr {
		return false
	}
	for _, b := range m.blocks {
		if b.typ == "tool_use" {
			return true
		}
	}
	return false
}

// moveOutOfToolRuns moves system messages that sit between a tool_use and
// its results to after the results.
func moveOutOfToolRuns(msgs []message) []message {
	out := make([]message, 0, len(msgs))
	var held []message
	awaiting := false
	for _, m := range msgs {
		if m.role == "system" {
			if awaiting {
				held = append(held, m)
			} else {
				out = append(out, m)
			}
			continue
		}
		if m.role == "assistant" {
			out = append(out, held...)
			held = held[:0]
		}
		out = append(out, m)
		if m.role == "user" {
			out = append(out, held...)
			held = held[:0]
		}
		awaiting = m.role == "assistant" && hasToolUse(m)
	}
	return append(out, held...)
}

// normalizeInline places inline system messages. It returns the text to
// append to the system prompt (that of the system messages leading
// "messages") and the remaining messages.
func normalizeInline(mode InlineSystem, sys *message, msgs []message) (string, []message) {
	inline := false
	for _, m := range msgs {
		if m.role == "system" {
			inline = true
			break
		}
	}
	if !inline {
		return "", msgs
	}
	n := 0
	for n < len(msgs) && msgs[n].role == "system" {
		n++
	}
	texts := make([]string, n)
	for i := range n {
		texts[i] = systemText(msgs[i])
	}
	leading := joinText(texts...)
	rest := moveOutOfToolRuns(msgs[n:])
	if mode != InlineFold && (systemPromptText(sys) != "" || leading != "") {
		return leading, rest
	}
	var out []message
	var pending []string // system text after an assistant turn
	for _, m := range rest {
		if m.role == "system" {
			text := systemText(m)
			if text == "" {
				continue
			}
			if len(out) > 0 && out[len(out)-1].role == "user" && len(pending) == 0 {
				out[len(out)-1] = appendToUser(out[len(out)-1], text)
			} else {
				pending = append(pending, text)
			}
			continue
		}
		if len(pending) > 0 {
			text := joinText(pending...)
			pending = pending[:0]
			if m.role == "user" {
				m = addText(m, text, false)
			} else {
				out = append(out, message{role: "user", isStr: true, s: text})
			}
		}
		out = append(out, m)
	}
	if len(pending) > 0 {
		out = append(out, message{role: "user", isStr: true, s: joinText(pending...)})
	}
	return leading, out
}
