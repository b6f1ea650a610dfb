package anthropic

import (
	"bytes"
	"io"
	"net/http"
	"strconv"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// Stream translates one chat completions SSE stream into the Anthropic
// Messages stream vLLM's message_stream_converter makes of it (serving.py
// @a8c3bdb2), event by event: feed each chat event's data to AppendEvent and
// write what it appends at once. Events, in order:
//
//	message_start                      from the first chunk (its delta is discarded)
//	content_block_start/_delta/_stop   one block at a time, indexed from 0:
//	                                   thinking (thinking_delta…, signature_delta last),
//	                                   text (text_delta…),
//	                                   tool_use (input_json_delta…, the chat argument
//	                                   fragments verbatim)
//	message_delta                      from the usage chunk ("choices": []): stop_reason,
//	                                   stop_sequence (always present), usage
//	message_stop                       at "data: [DONE]"; no [DONE] follows (vLLM ≥ 0.19)
//
// A chat error event, or a chunk it cannot read, becomes one "event: error"
// and ends the stream, as in vLLM; after that, and after message_stop,
// AppendEvent appends nothing.
//
// Text that arrives while a tool_use block is open is held and sent as its
// own text block right after that block, as vLLM does. Unlike vLLM, tool
// call deltas are followed by their index: argument fragments of a call
// whose block is not open yet (no name seen, or another call's arguments
// still incomplete) are kept and sent when its block opens, where vLLM drops
// them. A tool_use block stays open until its arguments form a complete JSON
// value, so deltas of several calls that interleave are not lost either.
//
// The zero Stream is not usable; get one from Request.NewStream. A Stream is
// not safe for concurrent use. Once its buffers have grown, a text, thinking
// or tool-argument chunk costs no allocation.
type Stream struct {
	random io.Reader
	sig    [16]byte

	started   bool // message_start sent
	done      bool // message_stop or error sent
	deltaSent bool // message_delta sent
	finished  bool // a finish_reason was seen
	finish    string
	stopSeq   []byte // the matched stop string (a JSON string), when finish named one
	usage     []byte // the latest usage seen (continuous_usage_stats), a validated object

	block     int // blockNone, ...
	index     int // of the open block
	nextIndex int
	openCall  int    // index into calls of the open tool_use block
	pending   []byte // raw JSON string contents of text held behind a tool_use block

	calls []call
	tcs   []toolDelta // scratch: the tool call deltas of the chunk being read
}

const (
	blockNone = iota
	blockThinking
	blockText
	blockTool
)

// call is one chat tool call, keyed by its tool_calls[].index.
type call struct {
	index     int64
	id, name  []byte // raw JSON string contents
	hasID     bool
	named     bool
	opened    bool
	closed    bool
	replaced  bool   // a later call with another id took its index
	args      []byte // raw contents of fragments held until the block opens
	arguments argState
}

// argState follows the JSON text of a call's arguments, fragment by
// fragment, to tell when it is complete.
type argState struct {
	depth    int
	inStr    bool
	esc      bool
	started  bool
	complete bool
}

// feed reads raw JSON string contents (the escapes of the chunk's string,
// each whole within one fragment).
func (a *argState) feed(raw []byte) {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c == '\\' {
			switch raw[i+1] {
			case 'u':
				if r, _ := jsonbytes.Hex4(raw[i+2 : i+6]); r < 0x80 {
					c = byte(r)
				} else {
					c = 'x'
				}
				i += 5
			case 'n', 'r', 't', 'b', 'f':
				c = ' '
				i++
			default: // '"', '\\', '/'
				c = raw[i+1]
				i++
			}
		}
		a.step(c)
	}
}

func (a *argState) step(c byte) {
	if a.inStr {
		switch {
		case a.esc:
			a.esc = false
		case c == '\\':
			a.esc = true
		case c == '"':
			a.inStr = false
			if a.depth == 0 {
				a.complete = true
			}
		}
		return
	}
	switch c {
	case ' ', '\t', '\n', '\r':
		return
	}
	a.complete = false
	switch c {
	case '"':
		a.inStr, a.started = true, true
	case '{', '[':
		a.depth++
		a.started = true
	case '}', ']':
		a.depth--
		if a.depth <= 0 {
			a.depth = 0
			a.complete = a.started
		}
	default:
		a.started = true
	}
}

// toolDelta is one entry of a chunk's delta.tool_calls: raw JSON string
// tokens, nil when absent or null.
type toolDelta struct {
	index          int64
	id, name, args []byte
}

// chunk is what a chat chunk says, as raw tokens into its text.
type chunk struct {
	id, model, usage, errObj []byte
	noChoices                bool
	finish, stopReason       []byte
	reasoning, content       []byte
}

// NewStream starts translating the chat stream that answers r.
func (r *Request) NewStream() *Stream {
	return &Stream{random: r.random, openCall: -1}
}

// Done reports whether the stream has ended (message_stop or an error
// event was appended).
func (s *Stream) Done() bool { return s.done }

var doneData = []byte("[DONE]")

// AppendEvent appends to dst the Anthropic events for one chat SSE event and
// returns the extended slice. data is the event's data payload, with or
// without its "data:" field name; surrounding whitespace is ignored, and an
// event with no data (an SSE comment, a keep-alive) appends nothing. data is
// not retained.
func (s *Stream) AppendEvent(dst, data []byte) []byte {
	if s.done {
		return dst
	}
	data = bytes.TrimSpace(data)
	if rest, ok := bytes.CutPrefix(data, []byte("data:")); ok {
		data = bytes.TrimSpace(rest)
	}
	if len(data) == 0 {
		return dst
	}
	if bytes.Equal(data, doneData) {
		return s.finishMessage(dst)
	}
	var c chunk
	if msg := s.readChunk(data, &c); msg != "" {
		return s.appendError(dst, "api_error", "upstream sent an unreadable chunk: "+msg)
	}
	if c.errObj != nil {
		e := chatStreamError(data, c.errObj)
		return s.appendError(dst, e.Type, e.Message)
	}
	if c.usage != nil {
		// Kept raw: copying is cheaper than reading it on every chunk.
		s.usage = append(s.usage[:0], c.usage...)
	}
	if !s.started {
		s.started = true
		return s.appendMessageStart(dst, &c)
	}
	if c.noChoices {
		// The usage chunk's own usage, as vLLM reads it (zeros if none).
		s.usage = append(s.usage[:0], c.usage...)
		dst = s.flushAll(dst)
		s.deltaSent = true
		return s.appendMessageDelta(dst)
	}
	if present(c.finish) {
		s.finished = true
		s.finish = stopReason(c.finish)
		if string(c.finish) == `""` {
			s.finish = "end_turn" // vLLM maps `finish_reason or "stop"`
		}
		s.stopSeq = s.stopSeq[:0]
		if isString(c.stopReason) {
			s.stopSeq = append(s.stopSeq, c.stopReason...)
		}
	}
	if len(c.reasoning) > 2 {
		if s.block != blockThinking {
			dst = s.stopAndFlush(dst)
			dst = s.startBlock(dst, blockThinking, nil)
		}
		dst = s.appendDelta(dst, "thinking_delta", "thinking", c.reasoning[1:len(c.reasoning)-1])
	}
	if len(c.content) > 2 {
		switch s.block {
		case blockTool:
			s.pending = append(s.pending, c.content[1:len(c.content)-1]...)
		default:
			if s.block != blockText {
				dst = s.stopAndFlush(dst)
				dst = s.startBlock(dst, blockText, nil)
			}
			dst = s.appendDelta(dst, "text_delta", "text", c.content[1:len(c.content)-1])
		}
	}
	for i := range s.tcs {
		dst = s.toolDelta(dst, &s.tcs[i])
	}
	return dst
}

// AppendEnd appends what ends a stream whose upstream body ended without
// "data: [DONE]": a normal end (message_delta if none was sent,
// message_stop) when the answer was complete (a finish_reason or the usage
// chunk arrived), else an error event, so the agent never sees a stream
// that just stops. It appends nothing to a stream that is already Done.
func (s *Stream) AppendEnd(dst []byte) []byte {
	switch {
	case s.done:
		return dst
	case s.started && (s.finished || s.deltaSent):
		return s.finishMessage(dst)
	case !s.started:
		return s.appendError(dst, "api_error", "upstream stream ended before the answer began")
	}
	return s.appendError(dst, "api_error", "upstream stream ended before the answer was complete")
}

// AppendError appends an error event for a failure of tokentap's own in
// the middle of the stream (an upstream read error, a timeout) and ends the
// stream. It appends nothing to a stream that is already Done.
func (s *Stream) AppendError(dst []byte, e *Error) []byte {
	if s.done {
		return dst
	}
	return s.appendError(dst, e.Type, e.Message)
}

func (s *Stream) appendError(dst []byte, typ, msg string) []byte {
	s.done = true
	dst = append(dst, "event: error\ndata: "...)
	dst = appendErrorJSON(dst, typ, msg)
	return append(dst, "\n\n"...)
}

// chatStreamError reads chat's in-stream error frame,
// data: {"error":{"message":…,"type":…,"param":…,"code":N}}. vLLM's own
// layer fails to parse it and reports a pydantic message instead (vLLM
// issue #46028); the agent gets the real one here.
func chatStreamError(data, errObj []byte) *Error {
	status := http.StatusInternalServerError
	if isObject(errObj) {
		f, _ := fields(errObj, "", "code")
		if f != nil {
			if n, ok := intValue(f[0]); ok && n >= 400 && n <= 599 {
				status = int(n)
			}
		}
	}
	return UpstreamError(status, data)
}

// readChunk reads the parts of a chat chunk the translation uses, checking
// their types as ChatCompletionStreamResponse does, before anything is
// emitted. It returns why the chunk is unreadable, or "".
func (s *Stream) readChunk(data []byte, c *chunk) string {
	// One strict pass over the whole chunk, then cheap navigation.
	if err := validDocument(data); err != nil {
		return err.Error()
	}
	if data[0] != '{' {
		return "not a JSON object"
	}
	s.tcs = s.tcs[:0]
	var choices []byte
	pick(trustedIter(data), []string{"id", "model", "choices", "usage", "error"},
		&c.id, &c.model, &choices, &c.usage, &c.errObj)
	if c.errObj != nil && choices == nil {
		return ""
	}
	c.errObj = nil
	switch {
	case c.id != nil && !isString(c.id) && !isNull(c.id):
		return "id is not a string"
	case !isString(c.model):
		return "no model"
	case !isArray(choices):
		return "no choices"
	case c.usage != nil && !isObject(c.usage) && !isNull(c.usage):
		return "usage is not an object"
	}
	if isNull(c.usage) {
		c.usage = nil
	}
	cit := trustedIter(choices)
	choice, ok := cit.elem()
	if !ok {
		c.noChoices = true
		return ""
	}
	if !isObject(choice) {
		return "a choice is not an object"
	}
	var delta []byte
	pick(trustedIter(choice), []string{"delta", "finish_reason", "stop_reason"},
		&delta, &c.finish, &c.stopReason)
	switch {
	case !isObject(delta):
		return "a choice has no delta"
	case present(c.finish) && !isString(c.finish):
		return "finish_reason is not a string"
	case present(c.stopReason) && !isString(c.stopReason) && !isNumber(c.stopReason):
		return "stop_reason is not a string or a number"
	}
	var reasoningContent, toolCalls []byte
	pick(trustedIter(delta), []string{"content", "reasoning", "reasoning_content", "tool_calls"},
		&c.content, &c.reasoning, &reasoningContent, &toolCalls)
	if !present(c.reasoning) {
		// vLLM 0.10.2–0.12 named it reasoning_content; some versions send
		// both, the same text.
		c.reasoning = reasoningContent
	}
	for _, v := range [][]byte{c.content, c.reasoning} {
		if present(v) && !isString(v) {
			return "delta content or reasoning is not a string"
		}
	}
	if !present(c.content) {
		c.content = nil
	}
	if !present(c.reasoning) {
		c.reasoning = nil
	}
	if !present(toolCalls) {
		return ""
	}
	if !isArray(toolCalls) {
		return "tool_calls is not a list"
	}
	tit := trustedIter(toolCalls)
	for tc, ok := tit.elem(); ok; tc, ok = tit.elem() {
		if !isObject(tc) {
			return "a tool call is not an object"
		}
		var d toolDelta
		var index, fn []byte
		pick(trustedIter(tc), []string{"index", "id", "function"}, &index, &d.id, &fn)
		n, ok := intValue(index)
		if !ok {
			return "a tool call has no index"
		}
		d.index = n
		if present(fn) {
			if !isObject(fn) {
				return "a tool call's function is not an object"
			}
			pick(trustedIter(fn), []string{"name", "arguments"}, &d.name, &d.args)
		}
		for _, v := range [][]byte{d.id, d.name, d.args} {
			if present(v) && !isString(v) {
				return "a tool call's id, name or arguments is not a string"
			}
		}
		if !present(d.id) {
			d.id = nil
		}
		if !present(d.name) {
			d.name = nil
		}
		if !present(d.args) {
			d.args = nil
		}
		s.tcs = append(s.tcs, d)
	}
	return ""
}

// appendMessageStart writes message_start from the first chunk. type and
// role are set explicitly since v0.24 (#45376; strict SDK clients need
// them), and usage carries the prompt from v0.13 on (#29971, and it needs
// continuous_usage_stats).
func (s *Stream) appendMessageStart(dst []byte, c *chunk) []byte {
	dst = append(dst, "event: message_start\ndata: "...)
	dst = append(dst, `{"type":"message_start","message":{"id":`...)
	switch {
	case !present(c.id):
		// ChatCompletionStreamResponse's default id.
		dst = append(dst, `"chatcmpl-`...)
		dst = appendUUIDHexBuf(dst, s.random, &s.sig)
		dst = append(dst, '"')
	case len(c.id) == 2:
		dst = appendMessageID(dst, "")
	default:
		dst = append(dst, c.id...)
	}
	dst = append(dst, `,"type":"message","role":"assistant","content":[],"model":`...)
	dst = append(dst, c.model...)
	dst = append(dst, `,"stop_reason":null,"stop_sequence":null,"usage":`...)
	dst = appendUsage(dst, parseUsage(s.usage))
	return append(dst, "}}\n\n"...)
}

// appendMessageDelta writes message_delta. a8c3bdb2 sends stop_sequence
// explicitly, null when no stop string matched (#55325); 1ad84fea8 left it
// out.
func (s *Stream) appendMessageDelta(dst []byte) []byte {
	dst = append(dst, "event: message_delta\ndata: "...)
	dst = append(dst, `{"type":"message_delta","delta":{"stop_reason":`...)
	switch {
	case len(s.stopSeq) > 0:
		dst = append(dst, `"stop_sequence","stop_sequence":`...)
		dst = append(dst, s.stopSeq...)
	default:
		reason := "end_turn" // `finish_reason or "stop"`
		if s.finished {
			reason = s.finish
		}
		dst = appendStopReason(dst, reason)
		dst = append(dst, `,"stop_sequence":null`...)
	}
	dst = append(dst, `},"usage":`...)
	dst = appendUsage(dst, parseUsage(s.usage))
	return append(dst, "}\n\n"...)
}

// finishMessage ends the message at [DONE]. Without a usage chunk vLLM
// sends no message_delta at all (vLLM always asks for one, so it always
// comes from vLLM); here one is made from the last usage seen, so that the
// agent still learns the stop_reason.
func (s *Stream) finishMessage(dst []byte) []byte {
	if !s.started {
		return s.appendError(dst, "api_error", "upstream stream ended before the answer began")
	}
	dst = s.flushAll(dst)
	if !s.deltaSent {
		s.deltaSent = true
		dst = s.appendMessageDelta(dst)
	}
	s.done = true
	return append(dst, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"...)
}

func (s *Stream) startBlock(dst []byte, kind int, c *call) []byte {
	s.block, s.index = kind, s.nextIndex
	dst = append(dst, "event: content_block_start\ndata: "...)
	dst = append(dst, `{"type":"content_block_start","content_block":`...)
	switch kind {
	case blockThinking:
		dst = append(dst, `{"type":"thinking","thinking":""}`...)
	case blockText:
		dst = append(dst, `{"type":"text","text":""}`...)
	case blockTool:
		dst = append(dst, `{"type":"tool_use","id":"`...)
		dst = append(dst, c.id...)
		dst = append(dst, `","name":"`...)
		dst = append(dst, c.name...)
		dst = append(dst, `","input":{}}`...)
	}
	dst = append(dst, `,"index":`...)
	dst = strconv.AppendInt(dst, int64(s.index), 10)
	return append(dst, "}\n\n"...)
}

// appendDelta writes a content_block_delta for the open block; raw is the
// contents of a validated JSON string.
func (s *Stream) appendDelta(dst []byte, typ, key string, raw []byte) []byte {
	dst = append(dst, "event: content_block_delta\ndata: "...)
	dst = append(dst, `{"type":"content_block_delta","delta":{"type":"`...)
	dst = append(dst, typ...)
	dst = append(dst, `","`...)
	dst = append(dst, key...)
	dst = append(dst, `":"`...)
	dst = append(dst, raw...)
	dst = append(dst, `"},"index":`...)
	dst = strconv.AppendInt(dst, int64(s.index), 10)
	return append(dst, "}\n\n"...)
}

// stopBlock closes the open block; a thinking block gets its signature
// first, a random uuid4 hex as vLLM makes it.
func (s *Stream) stopBlock(dst []byte) []byte {
	if s.block == blockNone {
		return dst
	}
	if s.block == blockThinking {
		dst = append(dst, "event: content_block_delta\ndata: "...)
		dst = append(dst, `{"type":"content_block_delta","delta":{"type":"signature_delta","signature":"`...)
		dst = appendUUIDHexBuf(dst, s.random, &s.sig)
		dst = append(dst, `"},"index":`...)
		dst = strconv.AppendInt(dst, int64(s.index), 10)
		dst = append(dst, "}\n\n"...)
	}
	if s.block == blockTool {
		s.calls[s.openCall].closed = true
		s.openCall = -1
	}
	dst = append(dst, "event: content_block_stop\ndata: "...)
	dst = append(dst, `{"type":"content_block_stop","index":`...)
	dst = strconv.AppendInt(dst, int64(s.index), 10)
	dst = append(dst, "}\n\n"...)
	s.block = blockNone
	s.nextIndex++
	return dst
}

// stopAndFlush closes the open block, then sends the text held behind a
// tool_use block as a text block of its own.
func (s *Stream) stopAndFlush(dst []byte) []byte {
	dst = s.stopBlock(dst)
	if len(s.pending) == 0 {
		return dst
	}
	dst = s.startBlock(dst, blockText, nil)
	dst = s.appendDelta(dst, "text_delta", "text", s.pending)
	s.pending = s.pending[:0]
	return s.stopBlock(dst)
}

// flushAll is stopAndFlush at the end of the answer: the calls that never
// got their turn are sent too, each whole.
func (s *Stream) flushAll(dst []byte) []byte {
	dst = s.stopAndFlush(dst)
	for i := range s.calls {
		c := &s.calls[i]
		if c.opened || !c.named || c.replaced {
			continue
		}
		if !c.hasID {
			// vLLM's tool parsers always send an id with the name; a call
			// that never got one still needs an id in its tool_use block.
			c.id = append(append(c.id[:0], "chatcmpl-tool-"...), appendUUIDHexBuf(nil, s.random, &s.sig)[:16]...)
			c.hasID = true
		}
		dst = s.openTool(dst, i)
		dst = s.stopAndFlush(dst)
	}
	return dst
}

// toolDelta handles one tools_calls entry of a chunk.
func (s *Stream) toolDelta(dst []byte, d *toolDelta) []byte {
	ci := -1
	for i := len(s.calls) - 1; i >= 0; i-- {
		if s.calls[i].index == d.index && !s.calls[i].replaced {
			ci = i
			break
		}
	}
	if ci >= 0 && d.id != nil && s.calls[ci].hasID && !bytes.Equal(s.calls[ci].id, d.id[1:len(d.id)-1]) {
		// Another id at the same index: a new call, as vLLM reads it.
		s.calls[ci].replaced = true
		ci = -1
	}
	if ci < 0 {
		s.calls = append(s.calls, call{index: d.index})
		ci = len(s.calls) - 1
	}
	c := &s.calls[ci]
	if d.id != nil && !c.hasID {
		c.id = append(c.id[:0], d.id[1:len(d.id)-1]...)
		c.hasID = true
	}
	if d.name != nil && !c.named {
		c.name = append(c.name[:0], d.name[1:len(d.name)-1]...)
		c.named = true
	}
	if len(d.args) > 2 {
		raw := d.args[1 : len(d.args)-1]
		switch {
		case s.block == blockTool && s.openCall == ci:
			dst = s.appendDelta(dst, "input_json_delta", "partial_json", raw)
			c.arguments.feed(raw)
		case c.closed || c.replaced:
			// Its block is closed (reasoning came in between, or its index
			// was reused): vLLM drops these too.
		default:
			c.args = append(c.args, raw...)
		}
	}
	return s.advance(dst)
}

// advance opens the next call that is ready (named, with an id) unless the
// open tool_use block's arguments are still incomplete.
func (s *Stream) advance(dst []byte) []byte {
	for {
		if s.block == blockTool && !s.calls[s.openCall].arguments.complete {
			return dst
		}
		next := -1
		for i := range s.calls {
			c := &s.calls[i]
			if c.named && c.hasID && !c.opened && !c.replaced {
				next = i
				break
			}
		}
		if next < 0 {
			return dst
		}
		dst = s.stopAndFlush(dst)
		dst = s.openTool(dst, next)
	}
}

// openTool opens call i's tool_use block and sends the arguments held for
// it as one input_json_delta.
func (s *Stream) openTool(dst []byte, i int) []byte {
	c := &s.calls[i]
	c.opened = true
	dst = s.startBlock(dst, blockTool, c)
	s.openCall = i
	if len(c.args) > 0 {
		dst = s.appendDelta(dst, "input_json_delta", "partial_json", c.args)
		c.arguments.feed(c.args)
		c.args = c.args[:0]
	}
	return dst
}

// appendUUIDHexBuf is appendUUIDHex with caller-owned scratch, so that a
// signature costs no allocation.
func appendUUIDHexBuf(dst []byte, r io.Reader, b *[16]byte) []byte {
	readRandom(r, b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	for _, c := range b {
		dst = append(dst, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return dst
}
