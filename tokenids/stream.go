package tokenids

// Stream extracts token IDs from a streaming answer one event payload at a
// time, and strips injected fields from each payload. It holds the token
// arrays and texts it accumulates, never the stream: a call's memory is
// bounded by its tokens, not its bytes.
type Stream struct {
	p      parser
	out    []byte
	events int
	done   bool
}

// NewStream starts the extraction of a streaming answer to req.
func NewStream(req *Request, strip Strip) *Stream {
	s := &Stream{}
	s.p.init(req, strip)
	return s
}

// Event reads one event's data payload and returns the payload to forward:
// data itself, a rewritten copy that is valid until the next call, or nil
// when the event must not be forwarded at all. The "[DONE]" terminator
// marks the stream done. A payload that cannot be read is returned
// unchanged with an error; later events are still read.
//
// An event is dropped (nil, nil) when vLLM sent it only because of what
// tokentap injected, so that the agent, which did not ask for it, gets the
// stream vLLM would have sent it. What a dropped event carries is recorded
// all the same. That is exactly:
//
//   - with Strip.TokenIDs, a chat chunk whose choices hold one choice, every
//     "delta" of which is {}, with no string finish_reason and no "usage"
//     object: a token a tool or reasoning parser swallowed, which vLLM
//     skips without return_token_ids and sends with an empty delta and its
//     token_ids with it (vLLM PR #29074);
//   - with Strip.Usage, a chunk with no choice object and a "usage" object:
//     the usage chunk of a stream whose include_usage tokentap turned on.
func (s *Stream) Event(data []byte) ([]byte, error) {
	if IsDone(data) {
		s.done = true
		return data, nil
	}
	s.events++
	p := &s.p
	p.scan = scanner{buf: data}
	p.edits = p.edits[:0]
	p.chunk = chunkShape{}
	if p.scan.ws() != '{' {
		return data, p.scan.errorf("event payload is not a JSON object")
	}
	if err := p.readChunk(true); err != nil {
		return data, err
	}
	if err := p.scan.endOfText(); err != nil {
		return data, err
	}
	if p.dropped() {
		return nil, nil
	}
	if len(p.edits) == 0 {
		return data, nil
	}
	s.out = appendEdits(s.out[:0], data, p.edits)
	return s.out, nil
}

// dropped reports whether the event just read is one Event drops (see
// there for the contract).
func (p *parser) dropped() bool {
	c := p.chunk
	switch {
	case p.strip.TokenIDs && p.ep == Chat && c.choices == 1 && c.deltas > 0 && c.emptyDeltas == c.deltas && !c.finished && !c.usage:
		return true
	case p.strip.Usage && c.choices == 0 && c.usage:
		return true
	}
	return false
}

// Done reports whether the "[DONE]" terminator was seen.
func (s *Stream) Done() bool { return s.done }

// Events is the number of JSON events read so far.
func (s *Stream) Events() int { return s.events }

// Result assembles what the events carried so far.
func (s *Stream) Result() Result { return s.p.result() }
