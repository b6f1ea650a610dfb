package responses

import (
	"strconv"
)

// Stream translates one chat completions SSE stream into the Responses
// events of vLLM's own /v1/responses stream (its simple, non-Harmony path),
// event by event: each chat event is turned into the Responses events it
// implies as soon as it arrives, nothing of the answer is held back, and
// once its buffers have grown a Stream allocates nothing per event.
//
// The events are response.created and response.in_progress (on the first
// chat event), then per output item output_item.added, its deltas
// (reasoning_part.added + reasoning_text.delta, content_part.added +
// output_text.delta, function_call_arguments.delta) and its done events,
// output_item.done last; then response.completed with the whole response.
// Every event carries a sequence_number from 0. Item ids are prefixed
// (rs_, msg_, fc_) and a function call's call_id is the chat tool call's id,
// the same in every event and in the final object. A stream that fails
// (an error event from the upstream, an invalid event, or End before the
// generation finished) ends with response.failed instead, never with
// silence: Codex treats a stream without a terminal event as an error.
//
// A Stream is not safe for concurrent use.
type Stream struct {
	r     *Request
	seq   int64
	phase uint8 // fresh, running, finished

	created int64
	model   []byte
	kv      []byte
	finish  uint8 // 0 not seen, 1 finished, 2 finished by length
	usage   usage
	gotUse  bool
	prompt  int64 // prompt_token_ids seen, and output token_ids, for when
	outIDs  int64 // the upstream sends no usage chunk
	gotIDs  bool
	success bool

	out  []byte // finished items in their final form, comma-joined
	nOut int64  // output_index of the open (or next) item

	cur   uint8  // kind of the open item
	curID []byte // its item id
	text  []byte // its raw text or arguments so far
	lps   []byte // the final-form logprobs of the open message
	call  int    // index in calls of the open function call

	calls   []streamCall
	scratch []byte
	resp    []byte
}

const (
	fresh uint8 = iota
	running
	finished
)

const (
	kindNone uint8 = iota
	kindReasoning
	kindText
	kindCall
)

// streamCall is one chat tool call of the stream, keyed by its chat index:
// its id arrives only in its first delta, its name possibly later, and
// argument fragments that come before the name wait in pending.
type streamCall struct {
	index    int64
	id, name []byte // raw JSON string contents
	pending  []byte
	state    uint8 // callWaiting, callOpen, callClosed
}

const (
	callWaiting uint8 = iota
	callOpen
	callClosed
)

// NewStream starts the translation of the chat stream answering r.
func (r *Request) NewStream() *Stream {
	return &Stream{r: r, created: r.created, model: r.model}
}

// Done reports whether the stream has written its terminal event
// (response.completed or response.failed); later calls write nothing.
func (s *Stream) Done() bool { return s.phase == finished }

// History returns what to store under the request's ID() once the stream
// has completed, or nil if it has not (or failed).
func (s *Stream) History() *History {
	if !s.success {
		return nil
	}
	out := make([]byte, 0, len(s.out)+2)
	out = append(append(append(out, '['), s.out...), ']')
	return &History{Input: s.r.input, Output: out}
}

// AppendEvent translates the data of one chat SSE event (the bytes after
// "data: ", "[DONE]" included) and appends the Responses SSE bytes to write
// at once to dst. data is not retained.
func (s *Stream) AppendEvent(dst, data []byte) []byte {
	if s.phase == finished {
		return dst
	}
	d := trimSpace(data)
	if len(d) == 0 {
		return dst
	}
	if string(d) == "[DONE]" {
		return s.complete(dst)
	}
	if d[0] != '{' || !wellFormed(d) {
		return s.fail(dst, []byte(`"the upstream sent a stream event that is not a JSON object"`))
	}
	var created, model, choices, usageRaw, errRaw, object, promptIDs, kv []byte
	pick(d, []string{"created", "model", "choices", "usage", "error", "object", "prompt_token_ids", "kv_transfer_params"},
		&created, &model, &choices, &usageRaw, &errRaw, &object, &promptIDs, &kv)
	if strEq(object, "error") { // the flat error body of vLLM before 0.10.1
		errRaw = d
	}
	if !isNull(errRaw) {
		msg := member(errRaw, "message")
		if !isString(msg) {
			msg = []byte(`"the upstream failed during generation"`)
		}
		return s.fail(dst, msg)
	}
	if s.phase == fresh {
		if n, ok := parseInt(created); ok {
			s.created = n
		}
		if isString(model) {
			s.model = append(s.model[:0:0], model...)
		}
		dst = s.start(dst)
	}
	if !s.gotIDs && len(promptIDs) > 0 && promptIDs[0] == '[' {
		s.gotIDs = true
		s.prompt = count(promptIDs)
	}
	if len(choices) > 0 && choices[0] == '[' {
		cs := scanner{b: choices}
		cs.enter('[')
		for cs.more(']') {
			if c := cs.value(); c[0] == '{' {
				dst = s.choice(dst, c)
			}
		}
	}
	if u, ok := readUsage(usageRaw); ok {
		s.usage, s.gotUse = u, true
	}
	if !isNull(kv) {
		s.kv = appendCompact(s.kv[:0], kv)
	}
	return dst
}

// AppendEnd finishes a stream whose upstream ended without "[DONE]" (cut, timed
// out, or abandoned). If the generation had finished (a finish_reason was
// seen) the response completes; otherwise it fails with cause, which may be
// nil. After a terminal event AppendEnd writes nothing.
func (s *Stream) AppendEnd(dst []byte, cause error) []byte {
	if s.phase == finished {
		return dst
	}
	if s.finish != 0 {
		return s.complete(dst)
	}
	msg := "the upstream stream ended before the response completed"
	if cause != nil {
		msg += ": " + cause.Error()
	}
	return s.fail(dst, appendQuoted(nil, []byte(msg)))
}

// choice translates one choice of a chat chunk. Its delta is split in
// vLLM's order, reasoning, then content, then tool calls, whatever the key
// order; a change of kind closes the open item and opens the next.
func (s *Stream) choice(dst, c []byte) []byte {
	var index, delta, finish, logprobs, tokenIDs []byte
	pick(c, []string{"index", "delta", "finish_reason", "logprobs", "token_ids"}, &index, &delta, &finish, &logprobs, &tokenIDs)
	if n, ok := parseInt(index); !isNull(index) && (!ok || n != 0) {
		return dst // a Responses request has one choice
	}
	if !isNull(finish) {
		s.finish = 1
		if strEq(finish, "length") {
			s.finish = 2
		}
	}
	if len(tokenIDs) > 0 && tokenIDs[0] == '[' {
		s.outIDs += count(tokenIDs)
	}
	if len(delta) == 0 || delta[0] != '{' {
		return dst
	}
	var reasoning, reasoningOld, content, calls []byte
	// reasoning_content: vLLM 0.10.2 to ~0.12; some versions send both
	pick(delta, []string{"reasoning", "reasoning_content", "content", "tool_calls"}, &reasoning, &reasoningOld, &content, &calls)
	if !isString(reasoning) {
		reasoning = reasoningOld
	}
	if text, _ := strContent(reasoning); isString(reasoning) && len(text) > 0 {
		dst = s.switchTo(dst, kindReasoning)
		dst = s.head(dst, "response.reasoning_text.delta")
		dst = append(append(append(dst, `"content_index":0,"delta":"`...), text...), `","item_id":"`...)
		dst = s.seqNum(s.index(append(append(dst, s.curID...), `",`...)))
		dst = s.typ(dst, "response.reasoning_text.delta")
		s.text = append(s.text, text...)
	}
	if text, _ := strContent(content); isString(content) && len(text) > 0 {
		dst = s.switchTo(dst, kindText)
		dst = s.head(dst, "response.output_text.delta")
		dst = append(append(append(dst, `"content_index":0,"delta":"`...), text...), `","item_id":"`...)
		dst = append(append(dst, s.curID...), `","logprobs":[`...)
		if s.r.logprobs {
			lp := member(logprobs, "content")
			dst = appendLogprobs(dst, lp, false)
			mark := len(s.lps)
			if mark > 0 {
				s.lps = append(s.lps, ',')
			}
			n := len(s.lps)
			if s.lps = appendLogprobs(s.lps, lp, true); len(s.lps) == n {
				s.lps = s.lps[:mark] // no entries: no comma either
			}
		}
		dst = s.seqNum(s.index(append(dst, "],"...)))
		dst = s.typ(dst, "response.output_text.delta")
		s.text = append(s.text, text...)
	}
	if len(calls) > 0 && calls[0] == '[' {
		sc := scanner{b: calls}
		sc.enter('[')
		for sc.more(']') {
			if tc := sc.value(); tc[0] == '{' {
				dst = s.toolDelta(dst, tc)
			}
		}
	}
	return dst
}

// toolDelta handles one chat tool call delta. Calls are keyed by their chat
// index; a call opens when it first has a name, with the argument fragments
// that came before; fragments for a call already closed (the stream moved
// on to another item) are dropped, as vLLM drops them.
func (s *Stream) toolDelta(dst, tc []byte) []byte {
	var index, id, fn []byte
	pick(tc, []string{"index", "id", "function"}, &index, &id, &fn)
	var name, args []byte
	if len(fn) > 0 && fn[0] == '{' {
		sc := scanner{b: fn}
		sc.enter('{')
		for sc.more('}') {
			switch k := sc.key(); string(k) {
			case "name":
				if v := sc.value(); isString(v) {
					name, _ = strContent(v)
				}
			case "arguments":
				if v := sc.value(); isString(v) {
					args, _ = strContent(v)
				}
			default:
				sc.value()
			}
		}
	}
	idx, _ := parseInt(index) // vLLM always sends it; a missing one is call 0
	ci := -1
	for i := range s.calls {
		if s.calls[i].index == idx {
			ci = i
			break
		}
	}
	if ci < 0 {
		s.calls = append(s.calls, streamCall{index: idx})
		ci = len(s.calls) - 1
	}
	c := &s.calls[ci]
	if v, _ := strContent(id); isString(id) && len(v) > 0 && len(c.id) == 0 {
		c.id = append(c.id, v...)
	}
	if len(name) > 0 && len(c.name) == 0 {
		c.name = append(c.name, name...)
	}
	switch c.state {
	case callOpen:
		if len(args) > 0 {
			dst = s.argsDelta(dst, args)
		}
	case callWaiting:
		if len(c.name) == 0 {
			c.pending = append(c.pending, args...)
			return dst
		}
		dst = s.close(dst)
		dst = s.openCall(dst, ci)
		c = &s.calls[ci]
		if len(c.pending) > 0 {
			dst = s.argsDelta(dst, c.pending)
			c.pending = c.pending[:0]
		}
		if len(args) > 0 {
			dst = s.argsDelta(dst, args)
		}
	}
	return dst
}

// Event framing: "event: <type>\ndata: {…}\n\n". The members of each event
// are written in the order of its openai-python model (alphabetical, with
// sequence_number before text and type).

func (s *Stream) head(dst []byte, typ string) []byte {
	return append(append(append(dst, "event: "...), typ...), "\ndata: {"...)
}

func (s *Stream) typ(dst []byte, typ string) []byte {
	return append(append(append(dst, `,"type":"`...), typ...), "\"}\n\n"...)
}

func (s *Stream) seqNum(dst []byte) []byte {
	dst = strconv.AppendInt(append(dst, `"sequence_number":`...), s.seq, 10)
	s.seq++
	return dst
}

// index writes the output_index member and a comma.
func (s *Stream) index(dst []byte) []byte {
	return append(strconv.AppendInt(append(dst, `"output_index":`...), s.nOut, 10), ',')
}

// itemEvent writes output_item.added or output_item.done around an item.
func (s *Stream) itemEvent(dst []byte, typ string, item []byte) []byte {
	dst = append(append(s.head(dst, typ), `"item":`...), item...)
	return s.typ(s.seqNum(s.index(append(dst, ','))), typ)
}

func (s *Stream) start(dst []byte) []byte {
	s.phase = running
	s.resp = s.r.appendResponse(s.resp[:0], &outcome{created: s.created, model: s.model, status: "in_progress"})
	for _, typ := range [...]string{"response.created", "response.in_progress"} {
		dst = append(append(s.head(dst, typ), `"response":`...), s.resp...)
		dst = s.typ(s.seqNum(append(dst, ',')), typ)
	}
	return dst
}

// switchTo makes kind the open item, closing another one first.
func (s *Stream) switchTo(dst []byte, kind uint8) []byte {
	if s.cur == kind {
		return dst
	}
	dst = s.close(dst)
	s.cur = kind
	switch kind {
	case kindReasoning:
		s.curID = s.r.ids(s.curID[:0], "rs_")
		s.scratch = append(append(append(s.scratch[:0], `{"id":"`...), s.curID...),
			`","summary":[],"type":"reasoning","content":null,"encrypted_content":null,"status":"in_progress"}`...)
		dst = s.itemEvent(dst, "response.output_item.added", s.scratch)
		dst = append(append(s.head(dst, "response.reasoning_part.added"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.index(append(dst, `",`...))
		dst = s.seqNum(append(dst, `"part":{"text":"","type":"reasoning_text"},`...))
		dst = s.typ(dst, "response.reasoning_part.added")
	case kindText:
		s.curID = s.r.ids(s.curID[:0], "msg_")
		s.scratch = append(append(append(s.scratch[:0], `{"id":"`...), s.curID...),
			`","content":[],"role":"assistant","status":"in_progress","type":"message"}`...)
		dst = s.itemEvent(dst, "response.output_item.added", s.scratch)
		dst = append(append(s.head(dst, "response.content_part.added"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.index(append(dst, `",`...))
		dst = s.seqNum(append(dst, `"part":{"annotations":[],"text":"","type":"output_text","logprobs":[]},`...))
		dst = s.typ(dst, "response.content_part.added")
	}
	return dst
}

func (s *Stream) openCall(dst []byte, ci int) []byte {
	c := &s.calls[ci]
	c.state = callOpen
	if len(c.id) == 0 {
		c.id = s.r.ids(c.id, "chatcmpl-tool-")
	}
	s.cur, s.call = kindCall, ci
	s.curID = s.r.ids(s.curID[:0], "fc_")
	s.scratch = s.r.appendCallItem(s.scratch[:0], s.curID, c.id, c.name, nil, "in_progress")
	return s.itemEvent(dst, "response.output_item.added", s.scratch)
}

func (s *Stream) argsDelta(dst, frag []byte) []byte {
	dst = append(append(append(s.head(dst, "response.function_call_arguments.delta"), `"delta":"`...), frag...), `","item_id":"`...)
	dst = s.seqNum(s.index(append(append(dst, s.curID...), `",`...)))
	s.text = append(s.text, frag...)
	return s.typ(dst, "response.function_call_arguments.delta")
}

// close writes the done events of the open item and keeps its final form
// for the completed response.
func (s *Stream) close(dst []byte) []byte {
	if s.cur == kindNone {
		return dst
	}
	if len(s.out) > 0 {
		s.out = append(s.out, ',')
	}
	switch s.cur {
	case kindReasoning:
		dst = append(append(s.head(dst, "response.reasoning_text.done"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.seqNum(s.index(append(dst, `",`...)))
		dst = append(append(append(dst, `,"text":"`...), s.text...), '"')
		dst = s.typ(dst, "response.reasoning_text.done")
		dst = append(append(s.head(dst, "response.reasoning_part.done"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.index(append(dst, `",`...))
		dst = append(append(append(dst, `"part":{"text":"`...), s.text...), `","type":"reasoning_text"},`...)
		dst = s.typ(s.seqNum(dst), "response.reasoning_part.done")
		var carrier []byte
		if s.r.carrier {
			carrier = appendCarrier(s.resp[:0], s.text, &s.scratch)
			s.resp = carrier
		}
		item := appendReasoningItem(s.scratch[:0], s.curID, s.text, carrier, `"completed"`)
		s.scratch = item
		dst = s.itemEvent(dst, "response.output_item.done", item)
		s.out = appendReasoningItem(s.out, s.curID, s.text, carrier, "null")
	case kindText:
		dst = append(append(s.head(dst, "response.output_text.done"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.seqNum(s.index(append(dst, `","logprobs":[],`...)))
		dst = append(append(append(dst, `,"text":"`...), s.text...), '"')
		dst = s.typ(dst, "response.output_text.done")
		dst = append(append(s.head(dst, "response.content_part.done"), `"content_index":0,"item_id":"`...), s.curID...)
		dst = s.index(append(dst, `",`...))
		dst = append(append(append(dst, `"part":{"annotations":[],"text":"`...), s.text...), `","type":"output_text","logprobs":null},`...)
		dst = s.typ(s.seqNum(dst), "response.content_part.done")
		s.scratch = appendMessageItem(s.scratch[:0], s.curID, s.text, nil)
		dst = s.itemEvent(dst, "response.output_item.done", s.scratch)
		var lp []byte
		if s.r.logprobs {
			lp = s.lps
			if lp == nil {
				lp = []byte{} // asked for: an empty list, not null
			}
		}
		s.out = appendMessageItem(s.out, s.curID, s.text, lp)
		s.lps = s.lps[:0]
	case kindCall:
		c := &s.calls[s.call]
		c.state = callClosed
		dst = append(append(append(s.head(dst, "response.function_call_arguments.done"), `"arguments":"`...), s.text...), `","item_id":"`...)
		dst = append(append(dst, s.curID...), `","name":`...)
		dst = s.seqNum(s.index(append(s.r.appendCallName(dst, c.name), ',')))
		dst = s.typ(dst, "response.function_call_arguments.done")
		s.scratch = s.r.appendCallItem(s.scratch[:0], s.curID, c.id, c.name, s.text, "completed")
		dst = s.itemEvent(dst, "response.output_item.done", s.scratch)
		s.out = append(s.out, s.scratch...)
	}
	s.nOut++
	s.cur = kindNone
	s.text = s.text[:0]
	return dst
}

// complete closes the open item and writes response.completed.
func (s *Stream) complete(dst []byte) []byte {
	if s.phase == fresh {
		dst = s.start(dst)
	}
	dst = s.close(dst)
	o := outcome{created: s.created, model: s.model, status: "completed", output: s.out, kv: s.kv}
	if s.finish == 2 {
		o.status = "incomplete"
	}
	u := s.usage
	if !s.gotUse {
		u = usage{input: s.prompt, output: s.outIDs}
	}
	o.usage = &u
	s.resp = s.r.appendResponse(s.resp[:0], &o)
	dst = append(append(s.head(dst, "response.completed"), `"response":`...), s.resp...)
	dst = s.typ(s.seqNum(append(dst, ',')), "response.completed")
	s.phase, s.success = finished, true
	return dst
}

// fail writes response.failed: the response with status "failed", the
// items finished so far, and error {"code":"server_error","message":msg}
// (msg a raw JSON string), which Codex reports as the stream's error.
func (s *Stream) fail(dst, msg []byte) []byte {
	if s.phase == fresh {
		dst = s.start(dst)
	}
	o := outcome{created: s.created, model: s.model, status: "failed", output: s.out, kv: s.kv,
		failure: appendCompact(nil, msg)}
	s.resp = s.r.appendResponse(s.resp[:0], &o)
	dst = append(append(s.head(dst, "response.failed"), `"response":`...), s.resp...)
	dst = s.typ(s.seqNum(append(dst, ',')), "response.failed")
	s.phase = finished
	return dst
}

// count returns the number of elements of a JSON array.
func count(arr []byte) int64 {
	var n int64
	s := scanner{b: arr}
	s.enter('[')
	for s.more(']') {
		s.value()
		n++
	}
	return n
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
