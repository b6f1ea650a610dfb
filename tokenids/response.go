package tokenids

import (
	"fmt"
	"sort"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// Result is what tokentap extracted from one call's answer.
type Result struct {
	ResponseID string
	Model      string
	// PromptTokenIDs is the engine's prompt: chat's top-level field, or the
	// first prompt's for completions. nil when vLLM returned none.
	PromptTokenIDs []int64
	// Prompts lists every prompt's IDs by prompt index (completions; for
	// chat it holds PromptTokenIDs alone). An entry is nil when missing.
	Prompts [][]int64
	Choices []Choice // ordered by Index
	Usage   *Usage   // nil when the answer carried no usage
	Error   *APIError
}

// Choice is one sampled continuation.
type Choice struct {
	Index       int
	PromptIndex int     // which prompt it continues (completions with several prompts)
	TokenIDs    []int64 // nil when vLLM returned none; the engine's raw IDs, EOS included
	// Logprobs holds the sampled tokens' logprobs, one per token ID, or nil.
	Logprobs     []float64
	FinishReason string
	Text         string // chat message content, or completions text
	Reasoning    string // chat reasoning (reasoning or reasoning_content)
	ToolCalls    []byte // chat tool calls as a JSON array, or nil

	nullLogprob bool // a logprob was null: Logprobs is withheld
}

// Usage is vLLM's token accounting for the whole call.
type Usage struct {
	PromptTokens     int64
	CompletionTokens int64
	TotalTokens      int64
}

// APIError is an OpenAI-shaped error found in an answer: the body of a
// failed call, or an error event inside a stream.
type APIError struct {
	Message string
	Type    string
	Code    int64
}

// ParseResponse extracts the IDs, logprobs, finish reasons and usage of a
// non-streaming chat or completions answer (req is the call's Request).
// When strip asks for it, out is body with the injected fields reset to
// null (what vLLM sends when they were not requested), rewritten in place
// when that only shrinks it (out then shares body's memory and body's
// contents past len(out) are garbage); otherwise out is body.
//
// A body ParseResponse cannot read gives an error and out == body: the
// answer still reaches the client untouched.
func ParseResponse(req *Request, body []byte, strip Strip) (res Result, out []byte, err error) {
	var p parser
	p.init(req, strip)
	if err := p.body(body); err != nil {
		return p.result(), body, err
	}
	return p.result(), p.apply(body), nil
}

// ParseError reads an OpenAI-shaped error body ({"error":{...}}, also the
// flat pre-0.10.1 form and vLLM's {"error":"Unauthorized"}). ok is false
// for bodies of any other shape.
func ParseError(body []byte) (e APIError, ok bool) {
	s := scanner{buf: body}
	if s.ws() != '{' {
		return e, false
	}
	err := s.object(func(key []byte) error {
		switch string(key) {
		case "error":
			if s.ws() == '"' {
				b, _, err := s.text(nil)
				e.Message, ok = string(b), true
				return err
			}
			ok = s.ws() == '{'
			return s.errorFields(&e)
		case "message":
			if s.ws() == '"' {
				b, _, err := s.text(nil)
				e.Message, ok = string(b), true
				return err
			}
		case "detail":
			if s.ws() == '"' {
				b, _, err := s.text(nil)
				e.Message, ok = string(b), true
				return err
			}
		case "type":
			return s.errorField("type", &e)
		case "code":
			return s.errorField("code", &e)
		}
		return s.skip()
	})
	return e, ok && err == nil
}

func (s *scanner) errorFields(e *APIError) error {
	if s.ws() != '{' {
		return s.skip()
	}
	return s.object(func(key []byte) error { return s.errorField(string(key), e) })
}

func (s *scanner) errorField(key string, e *APIError) error {
	switch key {
	case "message", "type":
		if s.ws() != '"' {
			return s.skip()
		}
		b, _, err := s.text(nil)
		if key == "message" {
			e.Message = string(b)
		} else {
			e.Type = string(b)
		}
		return err
	case "code":
		v, ok, err := s.optInt()
		if ok {
			e.Code = v
		}
		return err
	}
	return s.skip()
}

// parser holds the state of one answer's extraction: a whole JSON body, or
// the events of a stream fed one by one.
type parser struct {
	ep      Endpoint
	n       int
	wantLP  bool // logprobs were requested
	strip   Strip
	scan    scanner
	edits   []edit // value spans to reset to null, in body order
	choices []*choiceAcc
	res     Result
	text    []byte // scratch for unescaping
	alt     []byte // scratch for a message's reasoning_content
	chunk   chunkShape
}

// chunkShape describes the stream event being read: what Stream.dropped
// decides on.
type chunkShape struct {
	choices     int  // choice objects in "choices"
	deltas      int  // "delta" members of those choices
	emptyDeltas int  // ... that are {}
	finished    bool // a choice has a string finish_reason
	usage       bool // a top-level "usage" is an object
}

// choiceAcc accumulates one choice across stream events.
type choiceAcc struct {
	seen      bool
	c         Choice
	prompt    []int64
	hasPrompt bool
	text      []byte
	reasoning []byte
	tools     []toolCallAcc
}

type toolCallAcc struct {
	id, typ, name string
	args          []byte
}

// maxChoices bounds the choice index an answer may use, so a hostile index
// cannot make tokentap allocate without limit.
const maxChoices = 1 << 16

func (p *parser) init(req *Request, strip Strip) {
	p.ep = req.Endpoint
	p.n = max(req.N, 1)
	p.wantLP = req.Logprobs
	p.strip = strip
}

func (p *parser) choice(index int64) (*choiceAcc, error) {
	if index < 0 || index >= maxChoices {
		return nil, p.scan.errorf("choice index %d out of range", index)
	}
	for int(index) >= len(p.choices) {
		p.choices = append(p.choices, nil)
	}
	c := p.choices[index]
	if c == nil {
		c = &choiceAcc{}
		p.choices[index] = c
	}
	c.seen = true
	c.c.Index = int(index)
	return c, nil
}

// body reads a whole non-streaming answer.
func (p *parser) body(body []byte) error {
	p.scan = scanner{buf: body}
	if err := p.readChunk(false); err != nil {
		return err
	}
	return p.scan.endOfText()
}

// chunk reads one answer object: a whole body, or one stream event.
func (p *parser) readChunk(stream bool) error {
	s := &p.scan
	return s.object(func(key []byte) error {
		switch string(key) {
		case "id":
			if p.res.ResponseID == "" && s.ws() == '"' {
				b, _, err := s.text(nil)
				p.res.ResponseID = string(b)
				return err
			}
		case "model":
			if p.res.Model == "" && s.ws() == '"' {
				b, _, err := s.text(nil)
				p.res.Model = string(b)
				return err
			}
		case "prompt_token_ids": // chat: top level
			return p.promptIDs(nil)
		case "choices":
			if s.ws() == '[' {
				return s.array(func() error { return p.choiceObject(stream) })
			}
		case "usage":
			if s.ws() == '{' {
				p.chunk.usage = true
				return p.usage()
			}
		case "error":
			if s.ws() == '{' {
				e := &APIError{}
				p.res.Error = e
				return s.errorFields(e)
			}
		}
		return s.skip()
	})
}

// promptIDs reads a prompt_token_ids value, into the choice's accumulator
// for completions (c != nil) or the top level for chat.
func (p *parser) promptIDs(c *choiceAcc) error {
	s := &p.scan
	s.ws()
	start := s.pos
	var (
		ids     []int64
		present bool
		err     error
	)
	already := p.res.PromptTokenIDs != nil
	if c != nil {
		already = c.hasPrompt
	}
	if already {
		err = s.skip() // n>1 chat streams repeat the prompt in every role chunk
	} else {
		ids, present, err = s.ints(nil)
	}
	if err != nil {
		return err
	}
	if p.strip.TokenIDs && string(s.buf[start:s.pos]) != "null" {
		p.edits = append(p.edits, edit{start: start, end: s.pos, repl: "null"})
	}
	if present {
		if c != nil {
			c.prompt, c.hasPrompt = ids, true
		} else {
			p.res.PromptTokenIDs = ids
		}
	}
	return nil
}

func (p *parser) usage() error {
	s := &p.scan
	u := Usage{}
	err := s.object(func(key []byte) error {
		var dst *int64
		switch string(key) {
		case "prompt_tokens":
			dst = &u.PromptTokens
		case "completion_tokens":
			dst = &u.CompletionTokens
		case "total_tokens":
			dst = &u.TotalTokens
		default:
			return s.skip()
		}
		v, ok, err := s.optInt()
		if ok {
			*dst = v
		}
		return err
	})
	if err != nil {
		return err
	}
	// Continuous usage stats repeat a cumulative usage on every chunk; the
	// last one read is the answer's.
	if p.res.Usage == nil {
		p.res.Usage = &Usage{}
	}
	*p.res.Usage = u
	return nil
}

// apply returns body with the recorded edits, or body itself when none.
func (p *parser) apply(body []byte) []byte {
	if len(p.edits) == 0 {
		return body
	}
	for _, e := range p.edits {
		if len(e.repl) > e.end-e.start { // an empty array [] becomes null
			return appendEdits(make([]byte, 0, len(body)+8*len(p.edits)), body, p.edits)
		}
	}
	// Every edit shrinks: writes trail reads, and copy handles the overlap.
	return appendEdits(body[:0], body, p.edits)
}

// result assembles the Result from the accumulated choices.
func (p *parser) result() Result {
	res := p.res
	res.Choices = res.Choices[:0]
	var prompts [][]int64
	for _, c := range p.choices {
		if c == nil || !c.seen {
			continue
		}
		ch := c.c
		ch.Text = string(c.text)
		ch.Reasoning = string(c.reasoning)
		if ch.nullLogprob {
			ch.Logprobs = nil
		}
		if len(c.tools) > 0 {
			ch.ToolCalls = toolCallsJSON(c.tools)
		}
		if p.ep == Completions {
			ch.PromptIndex = ch.Index / p.n
			for ch.PromptIndex >= len(prompts) {
				prompts = append(prompts, nil)
			}
			if prompts[ch.PromptIndex] == nil && c.hasPrompt {
				prompts[ch.PromptIndex] = c.prompt
			}
		}
		res.Choices = append(res.Choices, ch)
	}
	sort.SliceStable(res.Choices, func(i, j int) bool { return res.Choices[i].Index < res.Choices[j].Index })
	if p.ep == Completions {
		res.Prompts = prompts
		if len(prompts) > 0 {
			res.PromptTokenIDs = prompts[0]
		}
	} else if res.PromptTokenIDs != nil {
		res.Prompts = [][]int64{res.PromptTokenIDs}
	}
	return res
}

func toolCallsJSON(tools []toolCallAcc) []byte {
	out := []byte{'['}
	for i, t := range tools {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"id":`...)
		out = AppendJSONString(out, t.id)
		out = append(out, `,"type":`...)
		out = AppendJSONString(out, firstNonEmpty(t.typ, "function"))
		out = append(out, `,"function":{"name":`...)
		out = AppendJSONString(out, t.name)
		out = append(out, `,"arguments":`...)
		out = AppendJSONString(out, string(t.args))
		out = append(out, "}}"...)
	}
	return append(out, ']')
}

// AppendJSONString appends s to dst as a JSON string literal: the quote,
// the backslash and control characters escaped (\n, \r, \t, else \u00XX),
// every other byte copied as it is.
func AppendJSONString(dst []byte, s string) []byte {
	return jsonbytes.AppendString(dst, s, 0)
}

func (e *APIError) String() string {
	if e.Type != "" {
		return fmt.Sprintf("%s (%s, %d)", e.Message, e.Type, e.Code)
	}
	return e.Message
}
