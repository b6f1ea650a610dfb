package intercept

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/tokenids"
)

// Answers too large to hold whole (an SSE event past maxEvent, a JSON body
// past maxResponse) are handed on in pieces as they arrive, through a
// tokenids.StreamStripper so that no injected field reaches an agent that
// did not ask for it. Their IDs are not read: the call is recorded with
// the IDs marked missing, and still committed before the agent's last byte.

// oversizedEvent hands on one SSE event too large to hold: its data lines
// go through the stripper, every other byte as it came.
type oversizedEvent struct {
	strip *tokenids.StreamStripper
	phase linePhase
	// head holds the first bytes of a line until it is known whether the
	// line is a data line.
	head    [len("data:")]byte
	headLen int
	lineLen int  // bytes of the current line so far
	space   bool // right after "data:", where one space belongs to the field
	afterCR bool // the last line ended with CR: a following LF belongs to it
}

type linePhase uint8

const (
	phaseHead linePhase = iota // the line's first bytes, held
	phaseData                  // a data line's value: stripped
	phaseRaw                   // any other line: as it came
)

// feed appends to dst what the agent gets of in. When the event ends
// within in, ended is true and rest is what follows it in in.
func (o *oversizedEvent) feed(dst, in []byte) (out, rest []byte, ended bool) {
	for i := 0; i < len(in); i++ {
		c := in[i]
		if o.afterCR {
			o.afterCR = false
			if c == '\n' {
				dst = append(dst, c)
				continue
			}
		}
		if c == '\n' || c == '\r' {
			dst = append(dst, o.head[:o.headLen]...)
			dst = append(dst, c)
			empty := o.lineLen == 0
			o.headLen, o.lineLen, o.phase, o.afterCR = 0, 0, phaseHead, c == '\r'
			if !empty {
				continue
			}
			// An empty line: the event ends.
			if o.afterCR && i+1 < len(in) && in[i+1] == '\n' {
				dst = append(dst, '\n')
				i++
				o.afterCR = false
			}
			return dst, in[i+1:], true
		}
		o.lineLen++
		switch o.phase {
		case phaseHead:
			o.head[o.headLen] = c
			o.headLen++
			if o.headLen == len(o.head) {
				o.phase = phaseRaw
				if string(o.head[:]) == "data:" {
					o.phase, o.space = phaseData, true
				}
				dst = append(dst, o.head[:]...)
				o.headLen = 0
			}
		case phaseRaw:
			dst = append(dst, c)
		case phaseData:
			if o.space {
				o.space = false
				if c == ' ' {
					dst = append(dst, c)
					continue
				}
			}
			// The rest of the line goes through the stripper at once.
			end := bytes.IndexAny(in[i:], "\r\n")
			if end < 0 {
				end = len(in)
			} else {
				end += i
			}
			dst = o.strip.Append(dst, in[i:end])
			o.lineLen += end - i - 1
			i = end - 1
		}
	}
	return dst, nil, false
}

// errAnswerTooLarge: a JSON answer goes past the bytes tokentap reads whole.
var errAnswerTooLarge = errors.New("answer too large to read whole")

// largeJSONBody is a JSON answer past maxResponse as the agent reads it:
// the bytes read so far, then the rest as it arrives, stripped. The last
// byte waits until the call is committed.
type largeJSONBody struct {
	ex       *exchange
	upstream io.ReadCloser
	strip    *tokenids.StreamStripper
	head     []byte // read before the bound, not yet handed on
	buf      []byte
	out      []byte
	pending  []byte // output not yet read by the agent
	held     byte   // the last byte of output so far, not yet handed on
	hasHeld  bool
	err      error
}

func newLargeJSONBody(ex *exchange, head []byte, upstream io.ReadCloser) *largeJSONBody {
	ex.noteUnread(fmt.Sprintf("the answer is over %d bytes: its token IDs were not read", ex.p.maxResponse()))
	return &largeJSONBody{
		ex: ex, upstream: upstream, head: head,
		strip: tokenids.NewStreamStripper(ex.req.Strip()),
		buf:   make([]byte, 32<<10),
	}
}

func (b *largeJSONBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		b.fill()
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// fill produces the next piece of output.
func (b *largeJSONBody) fill() {
	var in []byte
	if len(b.head) > 0 {
		n := min(len(b.head), len(b.buf))
		in, b.head = b.head[:n], b.head[n:]
	} else {
		n, err := b.upstream.Read(b.buf)
		in = b.buf[:n]
		if err != nil {
			b.end(in, err)
			return
		}
	}
	b.out = b.out[:0]
	if b.hasHeld {
		b.out = append(b.out, b.held)
	}
	b.out = b.strip.Append(b.out, in)
	b.hasHeld = len(b.out) > 0
	if b.hasHeld {
		b.held = b.out[len(b.out)-1]
		b.out = b.out[:len(b.out)-1]
	}
	b.pending = b.out
}

// end records the call when the upstream's answer ends, then lets the
// agent have its last byte, or cuts the agent off when the answer broke or
// could not be recorded.
func (b *largeJSONBody) end(last []byte, err error) {
	ex := b.ex
	b.out = b.out[:0]
	if b.hasHeld {
		b.out = append(b.out, b.held)
	}
	b.out = b.strip.Append(b.out, last)
	switch {
	case err == io.EOF:
		if rerr := ex.finish(exporter.StatusOK, http.StatusOK, "", "", nil); rerr != nil {
			// The status line is long gone: cutting the connection is the
			// only way left to tell the agent the answer is not whole.
			ex.cutClient = true
			b.err = rerr
			return
		}
		b.pending, b.err = b.out, io.EOF
		return
	case ex.ctx.Err() != nil:
		ex.finish(exporter.StatusCancelled, http.StatusOK, "cancelled", "the client went away while the answer was read", nil)
	default:
		ex.finish(exporter.StatusError, http.StatusBadGateway, "upstream_broken", "reading the upstream's answer: "+err.Error(), nil)
	}
	ex.cutClient = true
	b.err = err
}

// Close closes the upstream's answer; one closed before its end is a call
// cut short.
func (b *largeJSONBody) Close() error {
	err := b.upstream.Close()
	b.ex.finish(exporter.StatusCancelled, http.StatusOK, "cancelled", "the answer was closed before its end", nil)
	return err
}
