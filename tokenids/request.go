package tokenids

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Endpoint is the kind of generation call a body belongs to.
type Endpoint uint8

const (
	Chat        Endpoint = iota + 1 // POST /v1/chat/completions
	Completions                     // POST /v1/completions
)

// Operation is the GenAI semantic-convention operation name of the endpoint.
func (e Endpoint) Operation() string {
	if e == Completions {
		return "text_completion"
	}
	return "chat"
}

// Options say what PrepareRequest injects besides return_token_ids.
type Options struct {
	// Logprobs also asks for per-token logprobs when the client did not
	// (chat: "logprobs": true; completions: "logprobs": 0).
	Logprobs bool
	// Force sets top-level request fields whatever the client sent (a
	// trainer pinning on-policy sampling, e.g. temperature=1.0).
	Force []Param
	// ModelMap rewrites the model the client named to the first matching
	// rule's model.
	ModelMap []ModelRule
}

// Param is a top-level request field and its raw JSON value.
type Param struct {
	Key   string
	Value []byte
}

// unforceable are the fields that say what a call is, or that tokentap
// itself manages: forcing them would change more than sampling.
var unforceable = map[string]string{
	"model": "", "messages": "", "prompt": "", "stream": "", "stream_options": "", "echo": "",
	"return_token_ids": "", "logprobs": " (use --logprobs)", "top_logprobs": "", "prompt_logprobs": "",
}

// ParseParam reads a key=value forced parameter; the value is JSON
// (temperature=1.0, stop=["</answer>"], top_k=-1).
func ParseParam(s string) (Param, error) {
	key, value, ok := strings.Cut(s, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !ok || key == "" {
		return Param{}, fmt.Errorf("%q: want key=value, e.g. temperature=1.0", s)
	}
	if hint, bad := unforceable[key]; bad {
		return Param{}, fmt.Errorf("%q: %s cannot be forced%s", s, key, hint)
	}
	if !json.Valid([]byte(value)) {
		return Param{}, fmt.Errorf("%q: the value must be JSON (a string needs quotes: %s=\"...\")", s, key)
	}
	v := scanner{buf: []byte(value)}
	c := v.ws()
	numeric, err := v.sampling(key, &Request{})
	if err != nil || numeric && c != '-' && (c < '0' || c > '9') {
		return Param{}, fmt.Errorf("%q: %s takes a number", s, key)
	}
	return Param{Key: key, Value: []byte(value)}, nil
}

// Request is what tokentap learned from a call's request body, and what it
// changed in it.
type Request struct {
	Endpoint Endpoint
	// Model is the model sent upstream; RequestedModel the one the client
	// named, when Options.ModelMap changed it ("" otherwise).
	Model          string
	RequestedModel string
	Stream         bool
	IncludeUsage   bool // a usage chunk will close the stream
	N              int  // samples per prompt (1 when absent)
	Prompts        int  // number of prompts: 1 for chat, len(prompt list) for completions
	Echo           bool
	Temperature    *float64
	TopP           *float64
	MaxTokens      *int64 // max_tokens, or chat's max_completion_tokens
	Seed           *int64

	// ClientUsage says whether the client asked for the usage chunk itself.
	// When a stream's client did not, tokentap turns include_usage on (and
	// IncludeUsage is true) so that the IDs are checked against usage; the
	// chunk is then dropped from what the client gets.
	ClientUsage bool

	// TokenIDs and Logprobs say whether the upstream was asked for them;
	// ClientTokenIDs and ClientLogprobs whether the client asked itself. What
	// tokentap asked for and the client did not is stripped from the answer.
	TokenIDs       bool
	Logprobs       bool
	ClientTokenIDs bool
	ClientLogprobs bool

	// Forced lists the fields set by Options.Force.
	Forced []string

	// Input is the raw JSON of the request's messages (chat) or prompt
	// (completions), a subslice of the body given to PrepareRequest.
	Input []byte
}

// Strip says which fields of the answer tokentap added and must remove.
func (r *Request) Strip() Strip {
	return Strip{
		TokenIDs: r.TokenIDs && !r.ClientTokenIDs,
		Logprobs: r.Logprobs && !r.ClientLogprobs,
		Usage:    r.Stream && r.IncludeUsage && !r.ClientUsage,
	}
}

// Strip names the injected fields to reset to null in an answer.
type Strip struct {
	TokenIDs bool // prompt_token_ids and token_ids
	Logprobs bool // each choice's logprobs
	// Usage drops a stream's usage chunk: tokentap turned include_usage on.
	Usage bool
}

// Any reports whether any field is to be reset to null (dropping the usage
// chunk resets none).
func (s Strip) Any() bool { return s.TokenIDs || s.Logprobs }

// ErrNotObject is returned for request bodies that are not a JSON object.
var ErrNotObject = errors.New("request body is not a JSON object")

// edit replaces buf[start:end] with repl (an insertion when start == end).
type edit struct {
	start, end int
	repl       string
}

// PrepareRequest reads a chat or completions request body and returns it with
// "return_token_ids": true injected (and logprobs under opts.Logprobs),
// touching nothing else: the body is scanned once and copied at most once,
// never decoded into a map. When nothing needs injecting, out is body
// itself; when body has spare capacity for what is added, out is body
// rewritten in place.
//
// A streaming request whose stream_options give no usage chunk (absent,
// null, or include_usage false, null or 0) gets
// "stream_options":{"include_usage":true} (continuous_usage_stats turned
// off with it), recorded in the Request for the Stream to drop that chunk.
// A stream_options vLLM would reject or read its own way (not an object,
// a string include_usage) is left for vLLM to judge.
//
// Completions requests with "echo": true get no return_token_ids: vLLM blanks the
// echoed prompt from "text" when return_token_ids is also set (vLLM issue
// #57996), which would change what the client sees.
func PrepareRequest(ep Endpoint, body []byte, opts Options) (out []byte, req Request, err error) {
	req = Request{Endpoint: ep, N: 1, Prompts: 1}
	s := scanner{buf: body}
	if s.ws() != '{' {
		return nil, req, ErrNotObject
	}
	var (
		tokenIDSpans, logprobSpans [][2]int // [start, end) of each occurrence's value
		logprobsTrue               bool
		lastValueEnd               int
		members                    int
		streamOpts                 streamOptions // the last stream_options, which vLLM honours
		forcedSpans                [][][2]int    // per opts.Force entry
		modelSpans                 [][2]int
	)
	if len(opts.Force) > 0 {
		forcedSpans = make([][][2]int, len(opts.Force))
	}
	err = s.object(func(key []byte) error {
		members++
		s.ws()
		start := s.pos
		var err error
		if i := forcedIndex(opts.Force, key); i >= 0 {
			// Replaced below; what the client sent does not count.
			if err := s.skip(); err != nil {
				return fmt.Errorf("field %q: %w", key, err)
			}
			forcedSpans[i] = append(forcedSpans[i], [2]int{start, s.pos})
			lastValueEnd = s.pos
			return nil
		}
		if handled, err := s.sampling(string(key), &req); handled {
			if err != nil {
				return fmt.Errorf("field %q: %w", key, err)
			}
			lastValueEnd = s.pos
			return nil
		}
		switch string(key) {
		case "return_token_ids":
			req.ClientTokenIDs, err = s.truthy()
			tokenIDSpans = append(tokenIDSpans, [2]int{start, s.pos})
		case "logprobs":
			if ep == Chat {
				logprobsTrue, err = s.truthy()
			} else {
				logprobsTrue = s.ws() != 'n'
				err = s.skip()
			}
			logprobSpans = append(logprobSpans, [2]int{start, s.pos})
		case "model":
			if s.ws() == '"' {
				var b []byte
				b, _, err = s.text(nil)
				req.Model = string(b)
				modelSpans = append(modelSpans, [2]int{start, s.pos})
			} else {
				err = s.skip()
			}
		case "stream":
			req.Stream, err = s.truthy()
		case "stream_options":
			streamOpts, err = s.streamOptions()
			streamOpts.present = true
			streamOpts.span = [2]int{start, s.pos}
		case "echo":
			req.Echo, err = s.truthy()
		case "messages":
			err = s.skip()
			if ep == Chat {
				req.Input = body[start:s.pos]
			}
		case "prompt":
			if ep == Completions {
				req.Prompts, err = s.promptCount()
				req.Input = body[start:s.pos]
			} else {
				err = s.skip()
			}
		default:
			err = s.skip()
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		lastValueEnd = s.pos
		return nil
	})
	if err != nil {
		return nil, req, fmt.Errorf("%w: %w", ErrNotObject, err)
	}
	if err := s.endOfText(); err != nil {
		return nil, req, fmt.Errorf("%w: %w", ErrNotObject, err)
	}
	var (
		edits   []edit
		inserts []string // "key":value members to add
	)
	set := func(spans [][2]int, member, value string) {
		if len(spans) == 0 {
			inserts = append(inserts, member+":"+value)
			return
		}
		// Duplicate keys: vLLM honours the last, but fix every one.
		for _, sp := range spans {
			edits = append(edits, edit{start: sp[0], end: sp[1], repl: value})
		}
	}
	if served, ok := MapModel(opts.ModelMap, req.Model); ok && req.Model != "" && served != req.Model {
		// vLLM reads the last model member; every string one is rewritten.
		quoted, _ := json.Marshal(served)
		for _, sp := range modelSpans {
			edits = append(edits, edit{start: sp[0], end: sp[1], repl: string(quoted)})
		}
		req.RequestedModel, req.Model = req.Model, served
	}
	for i, f := range opts.Force {
		set(forcedSpans[i], `"`+f.Key+`"`, string(f.Value))
		// Record what is sent, not what the client asked for.
		v := scanner{buf: f.Value}
		v.ws()
		if _, err := v.sampling(f.Key, &req); err != nil {
			return nil, req, fmt.Errorf("forced %s: %w", f.Key, err)
		}
		req.Forced = append(req.Forced, f.Key)
	}
	echoed := ep == Completions && req.Echo
	req.TokenIDs = !echoed
	if req.TokenIDs && !req.ClientTokenIDs {
		set(tokenIDSpans, `"return_token_ids"`, "true")
	}
	req.ClientLogprobs = logprobsTrue
	req.Logprobs = logprobsTrue
	if opts.Logprobs && !logprobsTrue && !echoed {
		req.Logprobs = true
		value := "true"
		if ep == Completions {
			value = "0" // the sampled token's logprob, no alternatives
		}
		set(logprobSpans, `"logprobs"`, value)
	}
	req.IncludeUsage, req.ClientUsage = streamOpts.usage(), streamOpts.usage()
	if req.Stream && !req.ClientUsage {
		if usageEdits, ok := streamOpts.turnOnUsage(); ok {
			edits = append(edits, usageEdits...)
			if !streamOpts.present {
				inserts = append(inserts, `"stream_options":{"include_usage":true}`)
			}
			req.IncludeUsage = true
		}
	}
	if len(inserts) > 0 {
		added := strings.Join(inserts, ",")
		if members == 0 {
			open := bytes.IndexByte(body, '{') + 1
			edits = append(edits, edit{start: open, end: open, repl: added})
		} else {
			edits = append(edits, edit{start: lastValueEnd, end: lastValueEnd, repl: "," + added})
		}
	}
	if len(edits) == 0 {
		return body, req, nil
	}
	if e := edits[0]; len(edits) == 1 && e.start == e.end && cap(body)-len(body) >= len(e.repl) {
		// The usual case, one member added at the end, fits in the spare
		// capacity the caller left: shift the tail, no copy of the body.
		n := len(body)
		body = body[:n+len(e.repl)]
		copy(body[e.start+len(e.repl):], body[e.start:n])
		copy(body[e.start:], e.repl)
		return body, req, nil
	}
	return appendEdits(nil, body, edits), req, nil
}

// appendEdits appends body with edits applied to dst.
func appendEdits(dst, body []byte, edits []edit) []byte {
	// A body has a handful of edits, nearly always already in body order;
	// insertion sort is linear then.
	for i := 1; i < len(edits); i++ {
		for j := i; j > 0 && edits[j].start < edits[j-1].start; j-- {
			edits[j], edits[j-1] = edits[j-1], edits[j]
		}
	}
	if dst == nil {
		size := len(body)
		for _, e := range edits {
			size += len(e.repl) - (e.end - e.start)
		}
		dst = make([]byte, 0, size)
	}
	prev := 0
	for _, e := range edits {
		dst = append(dst, body[prev:e.start]...)
		dst = append(dst, e.repl...)
		prev = e.end
	}
	return append(dst, body[prev:]...)
}

// sampling reads the sampling fields tokentap records.
func (s *scanner) sampling(key string, req *Request) (handled bool, err error) {
	switch key {
	case "n":
		var v int64
		var ok bool
		if v, ok, err = s.optInt(); ok && v > 0 && v <= 1<<16 {
			req.N = int(v)
		}
	case "temperature":
		req.Temperature, err = s.optFloat()
	case "top_p":
		req.TopP, err = s.optFloat()
	case "max_tokens", "max_completion_tokens":
		req.MaxTokens, err = s.intPtr()
	case "seed":
		req.Seed, err = s.intPtr()
	default:
		return false, nil
	}
	return true, err
}

func forcedIndex(force []Param, key []byte) int {
	for i := range force {
		if force[i].Key == string(key) {
			return i
		}
	}
	return -1
}

// promptCount counts the prompts of a completions "prompt": a string or a
// token list is one prompt, a list of strings or of token lists is many.
func (s *scanner) promptCount() (int, error) {
	if s.ws() != '[' {
		return 1, s.skip()
	}
	count, tokens := 0, false
	err := s.array(func() error {
		if count == 0 {
			c := s.ws()
			tokens = c == '-' || c >= '0' && c <= '9'
		}
		count++
		return s.skip()
	})
	if tokens {
		return 1, err
	}
	return count, err
}

// The readers below are lenient about types: a field of the wrong type is
// skipped and read as absent, because vLLM validates the body and answers
// with its own error; tokentap fails a request only when it is not JSON.

// truthy reads a flag the way pydantic's lax mode would: true, or a
// non-zero number, is true; anything else (false, null, other types) false.
func (s *scanner) truthy() (bool, error) {
	switch c := s.ws(); {
	case c == 't' || c == 'f':
		return s.boolean()
	case c == '-' || c >= '0' && c <= '9':
		f, err := s.float64()
		return f != 0, err
	}
	return false, s.skip()
}

// optInt reads an integer; ok is false for any other value, which is skipped.
func (s *scanner) optInt() (v int64, ok bool, err error) {
	if c := s.ws(); c != '-' && (c < '0' || c > '9') {
		return 0, false, s.skip()
	}
	v, err = s.int64()
	return v, err == nil, err
}

func (s *scanner) intPtr() (*int64, error) {
	v, ok, err := s.optInt()
	if !ok {
		return nil, err
	}
	return &v, nil
}

func (s *scanner) optFloat() (*float64, error) {
	if c := s.ws(); c != '-' && (c < '0' || c > '9') {
		return nil, s.skip()
	}
	v, err := s.float64()
	if err != nil {
		return nil, err
	}
	return &v, nil
}
