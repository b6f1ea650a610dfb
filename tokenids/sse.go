package tokenids

import (
	"bytes"
	"errors"
	"io"
)

// EventReader splits a Server-Sent Events byte stream into events as they
// arrive, following the WHATWG framing: lines end with CRLF, LF or CR; an
// empty line ends an event; "data:" lines carry the payload (several are
// joined with "\n"); comments (":…") and other fields are kept in the raw
// bytes but ignored.
//
// Next returns an event as soon as its terminating empty line has been read,
// without waiting for more input, so forwarding each event on return keeps
// the upstream's timing. Concatenating every raw slice Next returns, and then
// Rest, reproduces the input byte for byte.
type EventReader struct {
	r        io.Reader
	buf      []byte
	start    int // first byte of the event being assembled
	scan     int // bytes before scan are known to hold no event terminator
	end      int // end of buffered input
	lineOpen bool
	afterCR  bool // the last line ended with CR: a following LF belongs to it
	max      int
	data     []byte // scratch for multi-line payloads
	err      error
}

// ErrEventTooLarge is returned by Next when an event grows past the limit
// given to NewEventReader. The reader's buffered bytes are then available
// from Rest.
var ErrEventTooLarge = errors.New("SSE event too large")

// NewEventReader reads events from r. maxEvent bounds the bytes of one event
// (and so the memory the reader holds).
func NewEventReader(r io.Reader, maxEvent int) *EventReader {
	return &EventReader{r: r, buf: make([]byte, 4096), max: maxEvent}
}

// Event is one SSE event.
type Event struct {
	// Raw holds the event's bytes, terminator included. It is valid until
	// the next call to Next.
	Raw []byte
	// Data is the payload of its data lines (nil when it has none). When the
	// event has exactly one data line, Data is a subslice of Raw starting at
	// DataStart.
	Data      []byte
	DataStart int
	DataLines int
}

// Next returns the next complete event. At the end of input it returns
// io.EOF (use Rest for an unterminated tail); other errors are the
// underlying reader's, or ErrEventTooLarge.
func (e *EventReader) Next() (Event, error) {
	if e.start > 0 && e.start == e.end {
		e.start, e.scan, e.end = 0, 0, 0
	}
	for {
		if ev, ok := e.find(); ok {
			return ev, nil
		}
		if e.err != nil {
			return Event{}, e.err
		}
		if e.end-e.start >= e.max {
			return Event{}, ErrEventTooLarge
		}
		e.fill()
	}
}

// Buffered returns the next event when it is already complete in the
// buffer, without reading: ok is false when getting it would wait for input.
// A caller can gather the events that arrived together and hand them on in
// one write.
func (e *EventReader) Buffered() (ev Event, ok bool) {
	if e.start > 0 && e.start == e.end {
		return Event{}, false
	}
	return e.find()
}

// Rest returns the bytes read but not returned as an event: the
// unterminated tail at the end of the stream, or the oversized event after
// ErrEventTooLarge. It empties the buffer.
func (e *EventReader) Rest() []byte {
	b := e.buf[e.start:e.end]
	e.start, e.scan = e.end, e.end
	return b
}

func (e *EventReader) fill() {
	if e.start > 0 {
		// Slide the partial event to the front before growing.
		n := copy(e.buf, e.buf[e.start:e.end])
		e.scan -= e.start
		e.end, e.start = n, 0
	}
	if e.end == len(e.buf) {
		grown := make([]byte, min(2*len(e.buf), e.max+1))
		if len(grown) <= len(e.buf) {
			grown = make([]byte, len(e.buf)+4096)
		}
		copy(grown, e.buf[:e.end])
		e.buf = grown
	}
	n, err := e.r.Read(e.buf[e.end:])
	e.end += n
	if err != nil {
		e.err = err
	}
}

// find looks for the end of the event starting at e.start among the bytes
// read so far.
func (e *EventReader) find() (Event, bool) {
	for e.scan < e.end {
		c := e.buf[e.scan]
		if e.afterCR {
			e.afterCR = false
			if c == '\n' {
				e.scan++
				if e.scan-e.start == 1 {
					// The LF of a CRLF whose CR ended the last event arrived in
					// a later read: hand it on at once, not with the next event.
					raw := e.buf[e.start:e.scan]
					e.start = e.scan
					return Event{Raw: raw}, true
				}
				continue
			}
		}
		i := lineEnd(e.buf[e.scan:e.end])
		if i < 0 {
			e.lineOpen = true
			e.scan = e.end
			break
		}
		pos := e.scan + i
		empty := !e.lineOpen && i == 0
		e.afterCR = e.buf[pos] == '\r'
		e.scan = pos + 1
		if e.afterCR && e.scan < e.end && e.buf[e.scan] == '\n' {
			e.afterCR = false
			e.scan++
		}
		e.lineOpen = false
		if empty && e.scan-e.start > 0 && !e.onlyTerminators() {
			raw := e.buf[e.start:e.scan]
			e.start = e.scan
			return e.parse(raw), true
		}
		if empty && e.onlyTerminators() {
			// Blank lines between events: hand them out with the next event.
			continue
		}
	}
	return Event{}, false
}

// onlyTerminators reports whether the event so far holds nothing but line
// terminators (a blank line with no event before it dispatches nothing).
func (e *EventReader) onlyTerminators() bool {
	for _, c := range e.buf[e.start:e.scan] {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}

// parse collects the data lines of one event.
func (e *EventReader) parse(raw []byte) Event {
	ev := Event{Raw: raw}
	rest := raw
	off := 0
	for len(rest) > 0 {
		i := lineEnd(rest)
		line := rest[:i]
		next := i + 1
		if rest[i] == '\r' && next < len(rest) && rest[next] == '\n' {
			next++
		}
		if bytes.HasPrefix(line, []byte("data")) {
			value, isData := fieldValue(line, "data")
			if isData {
				ev.DataLines++
				if ev.DataLines == 1 {
					ev.Data = value
					ev.DataStart = off + (len(line) - len(value))
				} else {
					if ev.DataLines == 2 {
						e.data = append(e.data[:0], ev.Data...)
					}
					e.data = append(e.data, '\n')
					e.data = append(e.data, value...)
					ev.Data = e.data
				}
			}
		}
		off += next
		rest = rest[next:]
	}
	return ev
}

// lineEnd finds the first CR or LF. Two vectorised IndexByte scans beat
// bytes.IndexAny, which looks at bytes one at a time, on the long data lines
// of prompt-carrying events.
func lineEnd(b []byte) int {
	nl := bytes.IndexByte(b, '\n')
	before := b
	if nl >= 0 {
		before = b[:nl]
	}
	if cr := bytes.IndexByte(before, '\r'); cr >= 0 {
		return cr
	}
	return nl
}

// fieldValue splits an SSE line "name:value" (one leading space of the value
// dropped); ok is false when the line's field is not name.
func fieldValue(line []byte, name string) (value []byte, ok bool) {
	if len(line) == len(name) && string(line) == name {
		return line[len(line):], true // "data" alone: empty value
	}
	if len(line) <= len(name) || string(line[:len(name)]) != name || line[len(name)] != ':' {
		return nil, false
	}
	value = line[len(name)+1:]
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	return value, true
}

// IsDone reports whether an event payload is the OpenAI stream terminator.
func IsDone(data []byte) bool { return string(bytes.TrimSpace(data)) == "[DONE]" }
