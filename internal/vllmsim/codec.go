package vllmsim

import "strings"

// Tokenizer encodes text (added tokens recognised, no BOS) and decodes IDs (special tokens included).
type Tokenizer interface {
	Encode(text string) []int64
	Decode(ids []int64) string
}

// ChatTemplate renders a chat request's prompt text from the request's raw JSON: messages and tools arrays
// (tools nil when absent) and chat_template_kwargs object (nil when absent).
//
// The messages array is given as vLLM hands it to the template: each message
// has "role" and "content" (a string: content parts' text joined with "\n"),
// assistant messages "reasoning" and "reasoning_content" when the client sent
// either, and "tool_calls" whose function.arguments are the json.loads-ed
// value (an object, normally) rather than the JSON string on the wire; tool
// messages carry "tool_call_id". tools and kwargs are the request's own
// values, compact.
type ChatTemplate interface {
	Render(messages, tools []byte, addGenerationPrompt, continueFinal bool, kwargs []byte) (string, error)
}

// encode tokenises text with Options.Tokenizer or the word tokenizer.
func (s *Server) encode(text string) []int64 {
	if t := s.opts.Tokenizer; t != nil {
		return t.Encode(text)
	}
	return s.tok.encode(text)
}

// decode is the inverse of encode, special tokens included.
func (s *Server) decode(ids []int64) string {
	if t := s.opts.Tokenizer; t != nil {
		return t.Decode(ids)
	}
	return s.tok.decode(ids)
}

// tokenString is one token's text as logprobs and token_strs show it.
func (s *Server) tokenString(id int64) string {
	if t := s.opts.Tokenizer; t != nil {
		return validUTF8(t.Decode([]int64{id}))
	}
	return s.tok.tokenString(id)
}

// pieceIDs returns the IDs of one generator piece (one ID with the word
// tokenizer; a real BPE may need several).
func (s *Server) pieceIDs(piece string) []int64 {
	if t := s.opts.Tokenizer; t != nil {
		return t.Encode(piece)
	}
	return []int64{s.tok.id(piece)}
}

// detokenizer accumulates a sample's output text token by token, as vLLM's
// incremental detokenizer does: special tokens are dropped when
// skip_special_tokens is set, and with a real tokenizer a token that ends
// inside a multi-byte character contributes nothing until the character is
// complete (and nothing when the sample ends inside it).
type detokenizer struct {
	s           *Server
	skipSpecial bool
	ids         []int64 // kept tokens (external tokenizer only)
	text        string  // text handed out so far (external tokenizer only)
}

// add returns the text token id appends.
func (d *detokenizer) add(id int64) string {
	t := d.s.opts.Tokenizer
	if t == nil {
		return d.s.tok.outputPiece(id, d.skipSpecial)
	}
	if d.skipSpecial && d.s.tok.skipped(id) {
		return ""
	}
	d.ids = append(d.ids, id)
	full := t.Decode(d.ids)
	if strings.HasSuffix(full, "\uFFFD") {
		return ""
	}
	return d.advance(full)
}

func (d *detokenizer) advance(full string) string {
	n := 0
	for n < len(full) && n < len(d.text) && full[n] == d.text[n] {
		n++
	}
	if n < len(d.text) {
		// Decoding changed text already handed out; keep what was sent.
		return ""
	}
	piece := full[len(d.text):]
	d.text = full
	return piece
}

// renderPrompt renders a chat request's prompt text through
// Options.ChatTemplate or the selected Go template. The error is vLLM's 400
// for a template failure.
func (s *Server) renderPrompt(req *chatRequest) (string, *apiError) {
	if ct := s.opts.ChatTemplate; ct != nil {
		var tools, kwargs []byte
		if req.toolsRaw != nil {
			tools = appendCompactJSON(nil, req.toolsRaw)
		}
		if req.kwargs != nil {
			kwargs = appendCompactJSON(nil, req.kwargs)
		}
		text, err := ct.Render(appendMessagesJSON(nil, req.messages), tools, req.addGenerationPrompt, req.continueFinal, kwargs)
		if err != nil {
			return "", badRequest(err.Error(), nil)
		}
		return text, nil
	}
	text := renderGo(s.template, templateInput{
		messages:            req.messages,
		tools:               req.tools,
		addGenerationPrompt: req.addGenerationPrompt,
		noThink:             req.noThink(),
	})
	if req.continueFinal {
		t, err := continueFinalMessage(text, req.messages)
		if err != nil {
			return "", badRequest(err.Error(), nil)
		}
		text = t
	}
	return text, nil
}

// appendMessagesJSON writes msgs in the form ChatTemplate documents.
func appendMessagesJSON(b []byte, msgs []Message) []byte {
	b = append(b, '[')
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":`...)
		b = appendJSONString(b, m.Role)
		b = append(b, `,"content":`...)
		b = appendJSONString(b, m.Content)
		if m.hasReasoning() {
			b = append(b, `,"reasoning":`...)
			b = appendJSONString(b, m.Reasoning)
			b = append(b, `,"reasoning_content":`...)
			b = appendJSONString(b, m.Reasoning)
		}
		if len(m.ToolCalls) > 0 {
			b = append(b, `,"tool_calls":[`...)
			for j, tc := range m.ToolCalls {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"id":`...)
				b = appendJSONString(b, tc.ID)
				b = append(b, `,"type":"function","function":{"name":`...)
				b = appendJSONString(b, tc.Name)
				b = append(b, `,"arguments":`...)
				switch v, err := parseOrdered([]byte(tc.Arguments)); {
				case tc.Arguments == "":
					b = append(b, "{}"...)
				case err != nil:
					b = appendJSONString(b, tc.Arguments)
				default:
					b = appendCompactJSON(b, v)
				}
				b = append(b, "}}"...)
			}
			b = append(b, ']')
		}
		if m.ToolCallID != "" {
			b = append(b, `,"tool_call_id":`...)
			b = appendJSONString(b, m.ToolCallID)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendCompactJSON writes v as compact JSON, number literals unchanged.
func appendCompactJSON(b []byte, v *jv) []byte { return appendJSONValue(b, v, false) }
