package tokenids

import "errors"

// The members of one choice: its IDs, message or delta, tool calls and
// logprobs.

func (p *parser) choiceObject(stream bool) error {
	s := &p.scan
	if s.ws() != '{' {
		return s.skip()
	}
	p.chunk.choices++
	// vLLM writes "index" first; find it before extracting, reading ahead
	// only as far as it (JSON member order is not guaranteed, so a choice
	// that puts it later is read twice).
	start := s.pos
	index := int64(0) // a choice without an index is the only one
	if err := s.object(func(key []byte) error {
		if string(key) != "index" {
			return s.skip()
		}
		v, ok, err := s.optInt()
		if !ok {
			return err
		}
		index = v
		return errFoundIndex
	}); err != nil && err != errFoundIndex {
		return err
	}
	c, err := p.choice(index)
	if err != nil {
		return err
	}
	s.pos = start
	err = s.object(func(key []byte) error {
		switch string(key) {
		case "token_ids":
			s.ws()
			vstart := s.pos
			ids, present, err := s.ints(c.c.TokenIDs)
			if err != nil {
				return err
			}
			if present {
				c.c.TokenIDs = ids
			}
			if p.strip.TokenIDs && present {
				p.edits = append(p.edits, edit{start: vstart, end: s.pos, repl: "null"})
			}
			return nil
		case "prompt_token_ids": // completions: per choice
			return p.promptIDs(c)
		case "logprobs":
			return p.logprobs(c)
		case "finish_reason":
			if s.ws() == '"' {
				p.chunk.finished = true
				b, _, err := s.text(p.text[:0])
				p.text = b
				c.c.FinishReason = string(b)
				return err
			}
		case "text":
			var err error
			c.text, _, err = s.text(c.text)
			return err
		case "message", "delta":
			return p.message(c, stream, stream && string(key) == "delta")
		}
		return s.skip()
	})
	return err
}

var errFoundIndex = errors.New("found index")

// message reads a JSON answer's message or a stream's delta (delta: the
// member is a stream's "delta", which the chunk's shape counts).
func (p *parser) message(c *choiceAcc, stream, delta bool) error {
	s := &p.scan
	if delta {
		p.chunk.deltas++
	}
	if s.ws() != '{' {
		return s.skip()
	}
	members := 0
	defer func() {
		if delta && members == 0 {
			p.chunk.emptyDeltas++
		}
	}()
	// vLLM names the reasoning "reasoning", "reasoning_content" before
	// 0.13, and some versions send both with the same text: per message
	// (or delta) one is kept, "reasoning" when it is not null, so that a
	// stream records what the JSON answer records.
	var hasReasoning, hasAlt bool
	p.alt = p.alt[:0]
	err := s.object(func(key []byte) error {
		members++
		var err error
		var present bool
		switch string(key) {
		case "content":
			c.text, _, err = s.text(c.text)
		case "reasoning":
			c.reasoning, present, err = s.text(c.reasoning)
			hasReasoning = hasReasoning || present
		case "reasoning_content":
			p.alt, present, err = s.text(p.alt)
			hasAlt = hasAlt || present
		case "tool_calls":
			if stream {
				err = p.toolCallDeltas(c)
			} else {
				s.ws()
				start := s.pos
				err = s.skip()
				if err == nil && s.buf[start] == '[' && s.pos-start > 2 {
					c.c.ToolCalls = append([]byte(nil), s.buf[start:s.pos]...)
				}
			}
		default:
			err = s.skip()
		}
		return err
	})
	if err == nil && hasAlt && !hasReasoning {
		c.reasoning = append(c.reasoning, p.alt...)
	}
	return err
}

// toolCallDeltas merges a stream's tool_calls deltas by their index: the id,
// type and name arrive once, the arguments in pieces.
func (p *parser) toolCallDeltas(c *choiceAcc) error {
	s := &p.scan
	if s.ws() != '[' {
		return s.skip()
	}
	return s.array(func() error {
		if s.ws() != '{' {
			return s.skip()
		}
		var tc toolCallAcc
		index := int64(len(c.tools))
		err := s.object(func(key []byte) error {
			var err error
			var b []byte
			switch string(key) {
			case "index":
				var v int64
				var ok bool
				if v, ok, err = s.optInt(); ok {
					index = v
				}
			case "id":
				b, _, err = s.text(nil)
				tc.id = string(b)
			case "type":
				b, _, err = s.text(nil)
				tc.typ = string(b)
			case "function":
				if s.ws() != '{' {
					return s.skip()
				}
				err = s.object(func(key []byte) error {
					var err error
					switch string(key) {
					case "name":
						var b []byte
						b, _, err = s.text(nil)
						tc.name = string(b)
					case "arguments":
						tc.args, _, err = s.text(tc.args)
					default:
						err = s.skip()
					}
					return err
				})
			default:
				err = s.skip()
			}
			return err
		})
		if err != nil {
			return err
		}
		if index < 0 || index >= maxChoices {
			return s.errorf("tool call index %d out of range", index)
		}
		for int(index) >= len(c.tools) {
			c.tools = append(c.tools, toolCallAcc{})
		}
		t := &c.tools[index]
		t.id = firstNonEmpty(t.id, tc.id)
		t.typ = firstNonEmpty(t.typ, tc.typ)
		t.name += tc.name
		t.args = append(t.args, tc.args...)
		return nil
	})
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// logprobs reads a choice's logprobs: chat {"content":[{"logprob":..}..]},
// completions {"token_logprobs":[..]}.
func (p *parser) logprobs(c *choiceAcc) error {
	s := &p.scan
	s.ws()
	start := s.pos
	if s.isNull() {
		return nil
	}
	if s.ws() != '{' {
		return s.skip()
	}
	if c.c.Logprobs == nil {
		c.c.Logprobs = []float64{}
	}
	err := s.object(func(key []byte) error {
		switch {
		case p.ep == Chat && string(key) == "content":
			if s.isNull() {
				return nil
			}
			return s.array(func() error {
				if s.ws() != '{' {
					return s.skip()
				}
				return s.object(func(key []byte) error {
					if string(key) != "logprob" {
						return s.skip()
					}
					return s.logprob(c)
				})
			})
		case p.ep == Completions && string(key) == "token_logprobs":
			if s.isNull() {
				return nil
			}
			return s.array(func() error { return s.logprob(c) })
		}
		return s.skip()
	})
	if err == nil && p.strip.Logprobs {
		p.edits = append(p.edits, edit{start: start, end: s.pos, repl: "null"})
	}
	return err
}

// logprob reads one logprob into c; a null (echo's first prompt token)
// makes the choice's logprobs unusable rather than padded.
func (s *scanner) logprob(c *choiceAcc) error {
	if s.isNull() {
		c.c.nullLogprob = true
		return nil
	}
	v, err := s.float64()
	c.c.Logprobs = append(c.c.Logprobs, v)
	return err
}
