package intercept

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/responses"
	"github.com/tokentap/tokentap/tokenids"
)

// sseBody is the body of a streaming answer as the agent reads it: the
// upstream's events, each handed on whole as soon as it has arrived, with
// injected fields stripped, while the extractor accumulates the IDs. The
// call is committed before the "data: [DONE]" event (or the end of the
// stream) reaches the agent.
//
// For a Messages call, each event the chat stream yields (stripped, as the
// agent would have had it) goes through the Anthropic translator instead,
// and what it makes of it is handed on in its place: the same reads, the
// same write and flush per batch of events, and the same commit before the
// last byte, which is message_stop (or the error event that ends the
// stream). See dialect.go.
//
// goproxy copies it with io.Copy, which uses WriteTo: one write, and one
// flush, per event.
type sseBody struct {
	ex       *exchange
	upstream io.ReadCloser
	events   *tokenids.EventReader
	stream   *tokenids.Stream
	// msgs translates a Messages call's stream, rsp a Responses call's;
	// both nil for chat and completions.
	msgs    *anthropic.Stream
	rsp     *responses.Stream
	out     []byte // scratch for rewritten events
	readBuf []byte // for the pieces of an oversized event
	batch   []byte // the events gathered for one write
	pending []byte // for Read: bytes of the current event not yet read
	// big is the event being handed on in pieces because it is over the
	// event bound; nil between events.
	big *oversizedEvent
	err error // the error that ended the stream, io.EOF when clean
}

func newSSEBody(ex *exchange, upstream io.ReadCloser) *sseBody {
	b := &sseBody{
		ex:       ex,
		upstream: upstream,
		events:   tokenids.NewEventReader(upstream, ex.p.maxEvent()),
		stream:   tokenids.NewStream(&ex.req, ex.req.Strip()),
	}
	if ex.msgs != nil {
		b.msgs = ex.msgs.NewStream()
	}
	if ex.rsp != nil {
		b.rsp = ex.rsp.NewStream()
	}
	return b
}

// WriteTo hands the stream on as it arrives: the events that came in one
// read go out in one write (and one flush), each as soon as it is complete.
func (b *sseBody) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		chunk, err := b.next()
		if err == nil && b.big == nil {
			// Gather what is already here; never wait for more.
			b.batch = append(b.batch[:0], chunk...)
			for b.err == nil {
				ev, ok := b.events.Buffered()
				if !ok {
					break
				}
				more, _ := b.event(ev)
				b.batch = append(b.batch, more...)
			}
			chunk = b.batch
		}
		if len(chunk) > 0 {
			n, werr := w.Write(chunk)
			total += int64(n)
			if werr != nil {
				b.ex.finish(exporter.StatusCancelled, http.StatusOK, "cancelled", "the client went away during the stream: "+werr.Error(), b.result())
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Read serves readers other than io.Copy.
func (b *sseBody) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		chunk, err := b.next()
		b.pending = chunk
		if len(chunk) == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
}

// Close closes the upstream body. A stream closed before its end is a call
// cut short.
func (b *sseBody) Close() error {
	err := b.upstream.Close()
	b.ex.finish(exporter.StatusCancelled, http.StatusOK, "cancelled", "the stream was closed before its end", b.result())
	return err
}

func (b *sseBody) result() *tokenids.Result {
	res := b.stream.Result()
	return &res
}

// next returns the bytes of the next event to hand on, and io.EOF (with the
// last bytes) at the end of the stream.
func (b *sseBody) next() ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.big != nil {
		return b.oversized()
	}
	ev, err := b.events.Next()
	switch {
	case err == nil:
		return b.event(ev)
	case errors.Is(err, tokenids.ErrEventTooLarge) && b.msgs != nil:
		return b.messagesOversized()
	case errors.Is(err, tokenids.ErrEventTooLarge) && b.rsp != nil:
		return b.responsesOversized()
	case errors.Is(err, tokenids.ErrEventTooLarge):
		b.ex.noteUnread(fmt.Sprintf("an event of the stream is over %d bytes: its token IDs were not read", b.ex.p.maxEvent()))
		b.big = &oversizedEvent{strip: tokenids.NewStreamStripper(b.ex.req.Strip())}
		return b.feedOversized(b.events.Rest()), nil
	default:
		return b.end(b.events.Rest(), err)
	}
}

// oversized hands on the next piece of an event over the bound.
func (b *sseBody) oversized() ([]byte, error) {
	if cap(b.readBuf) == 0 {
		b.readBuf = make([]byte, 32<<10)
	}
	n, err := b.upstream.Read(b.readBuf)
	out := b.feedOversized(b.readBuf[:n])
	if err != nil && b.big != nil {
		return b.end(out, err)
	}
	// An error that came with the event's last bytes is met again by the
	// reader of the events that follow it.
	return out, nil
}

// feedOversized strips a piece of an oversized event; once the event ends,
// what follows it is read as events again.
func (b *sseBody) feedOversized(in []byte) []byte {
	out, rest, ended := b.big.feed(b.out[:0], in)
	b.out = out
	if ended {
		b.big = nil
		follows := io.MultiReader(bytes.NewReader(bytes.Clone(rest)), b.upstream)
		b.events = tokenids.NewEventReader(follows, b.ex.p.maxEvent())
	}
	return out
}

func (b *sseBody) event(ev tokenids.Event) ([]byte, error) {
	if b.msgs != nil {
		return b.messagesEvent(ev), nil
	}
	if b.rsp != nil {
		return b.responsesEvent(ev), nil
	}
	if ev.DataLines == 0 {
		return ev.Raw, nil // a comment, or blank lines
	}
	if tokenids.IsDone(ev.Data) {
		b.stream.Event(ev.Data)
		if err := b.finishStream(); err != nil {
			// Not recorded: the agent must not take this answer as whole,
			// so it gets an error event in place of the terminator.
			return b.recordFailed(err), nil
		}
		return ev.Raw, nil
	}
	out, keep := b.extract(ev.Data)
	if !keep {
		return nil, nil // only there because tokentap asked for the IDs
	}
	if ev.DataLines != 1 || sameBytes(out, ev.Data) {
		// Unchanged, or spread over several data lines (vLLM never does
		// that), which is passed on as it came.
		return ev.Raw, nil
	}
	b.out = append(b.out[:0], ev.Raw[:ev.DataStart]...)
	b.out = append(b.out, out...)
	b.out = append(b.out, ev.Raw[ev.DataStart+len(ev.Data):]...)
	return b.out, nil
}

// recordFailed is the event that ends a stream whose call could not be
// committed: an OpenAI-shaped error, and no "data: [DONE]".
func (b *sseBody) recordFailed(err error) []byte {
	b.out = append(b.out[:0], "data: "...)
	b.out = append(b.out, httperr.Body(http.StatusServiceUnavailable, "tokentap could not record this call: "+err.Error())...)
	return append(b.out, "\n\n"...)
}

// finishStream records a stream that reached its terminator.
func (b *sseBody) finishStream() error {
	res := b.result()
	if e := res.Error; e != nil {
		return b.ex.finish(exporter.StatusError, http.StatusOK, firstNonEmpty(e.Type, "stream_error"), "error event in the stream: "+e.Message, res)
	}
	if b.ex.malformed {
		return b.ex.finish(exporter.StatusError, http.StatusOK, "upstream_malformed", "an event of the stream is not valid JSON", res)
	}
	return b.ex.finish(exporter.StatusOK, http.StatusOK, "", "", res)
}

// end handles the end of the upstream stream: clean (io.EOF) or broken.
func (b *sseBody) end(rest []byte, err error) ([]byte, error) {
	res := b.result()
	var recordErr error
	switch {
	case err == io.EOF && b.stream.Done():
		// Bytes after [DONE] (none in practice) changed nothing.
	case err == io.EOF:
		recordErr = b.ex.finish(exporter.StatusError, http.StatusOK, "stream_incomplete", "the upstream ended the stream without data: [DONE]", res)
	case b.ex.ctx.Err() != nil:
		b.ex.finish(exporter.StatusCancelled, http.StatusOK, "cancelled", "the client went away during the stream", res)
	default:
		// A chat stream is cut as the upstream's was; a Messages stream
		// ends with an error event, which Anthropic clients read.
		b.ex.cutClient = b.msgs == nil && b.rsp == nil
		recordErr = b.ex.finish(exporter.StatusError, http.StatusOK, "upstream_broken", "the upstream stream broke: "+err.Error(), res)
	}
	if b.msgs != nil {
		return b.messagesEnd(err, recordErr)
	}
	if b.rsp != nil {
		return b.responsesEnd(err, recordErr)
	}
	b.err = err
	return rest, err
}

// sameBytes reports whether a and b are the same slice of memory.
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// extract feeds one data event to the extractor and returns the event as
// the agent gets it (nil: unchanged); keep is false when the event was only
// there because tokentap asked for the IDs.
func (b *sseBody) extract(data []byte) (out []byte, keep bool) {
	b.ex.p.stage(stageEvent)
	if b.stream.Events() == 0 {
		b.ex.firstEvent = time.Now()
	}
	out, err := b.stream.Event(data)
	if err != nil {
		b.ex.noteProblem(err)
	}
	return out, out != nil || err != nil
}
