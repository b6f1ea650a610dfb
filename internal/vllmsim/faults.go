package vllmsim

import (
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Faults a test can ask of the simulator with the request header
// X-Vllmsim-Fault, to see what a proxy does with a broken upstream. They
// change the bytes on the wire, not the generation.
const (
	FaultMalformedJSON = "malformed-json" // a JSON body cut short, or one SSE event's JSON broken
	FaultNoDone        = "no-done"        // the stream ends without data: [DONE]
	FaultCRLF          = "crlf"           // SSE lines end with CRLF
	FaultSplit         = "split"          // each SSE event written in three pieces, a millisecond apart
	FaultComments      = "comments"       // ": keep-alive" comments and "event:"/"id:" lines around the events
	FaultBigEvent      = "big-event"      // the first SSE event padded to over 2 MB
	FaultHang          = "hang"           // no answer until the client gives up
	FaultCloseMidway   = "close-midway"   // the connection drops after three events (or half a JSON body)
	FaultRedirect      = "redirect"       // 302 to another host
)

// withFault serves a request through the fault it asks for, if any.
func (s *Server) withFault(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request)) {
	switch fault := r.Header.Get("X-Vllmsim-Fault"); fault {
	case "":
		serve(w, r)
	case FaultHang:
		// Read the request first: net/http notices a client that left only
		// once the body is consumed.
		io.Copy(io.Discard, r.Body)
		<-r.Context().Done()
	case FaultRedirect:
		w.Header().Set("Location", "http://example.com/v1/chat/completions")
		w.WriteHeader(http.StatusFound)
	default:
		fw := &faultWriter{ResponseWriter: w, fault: fault}
		serve(fw, r)
		fw.finish()
	}
}

// faultWriter rewrites what a handler writes.
type faultWriter struct {
	http.ResponseWriter
	fault   string
	events  int
	body    []byte // a non-stream body, held to be cut
	stream  bool
	started bool
}

func (f *faultWriter) WriteHeader(code int) {
	f.stream = strings.HasPrefix(f.Header().Get("Content-Type"), "text/event-stream")
	if !f.stream && (f.fault == FaultMalformedJSON || f.fault == FaultCloseMidway) {
		f.Header().Del("Content-Length") // finish writes the body, cut short
	}
	f.ResponseWriter.WriteHeader(code)
	f.started = true
}

func (f *faultWriter) Write(p []byte) (int, error) {
	if !f.started {
		f.WriteHeader(http.StatusOK)
	}
	if !f.stream {
		if f.fault == FaultMalformedJSON || f.fault == FaultCloseMidway {
			f.body = append(f.body, p...)
			return len(p), nil
		}
		return f.ResponseWriter.Write(p)
	}
	f.events++
	out := p
	switch f.fault {
	case FaultMalformedJSON:
		if f.events == 2 {
			out = bytes.Replace(p, []byte(`"choices":[`), []byte(`"choices":[{`), 1)
		}
	case FaultNoDone:
		if bytes.HasPrefix(p, []byte("data: [DONE]")) {
			return len(p), nil
		}
	case FaultCRLF:
		out = bytes.ReplaceAll(p, []byte("\n"), []byte("\r\n"))
	case FaultComments:
		out = append([]byte(": keep-alive\n\nevent: message\nid: "+strconv.Itoa(f.events)+"\n"), p...)
	case FaultBigEvent:
		if f.events == 1 {
			pad := `,"pad":"` + strings.Repeat("x", 2<<20) + `"}`
			out = append(bytes.TrimSuffix(bytes.TrimRight(p, "\n"), []byte("}")), pad+"\n\n"...)
		}
	case FaultCloseMidway:
		if f.events > 3 {
			panic(http.ErrAbortHandler) // the server drops the connection
		}
	case FaultSplit:
		for i, part := range [][]byte{p[:len(p)/3], p[len(p)/3 : 2*len(p)/3], p[2*len(p)/3:]} {
			if i > 0 {
				time.Sleep(time.Millisecond)
			}
			if _, err := f.ResponseWriter.Write(part); err != nil {
				return 0, err
			}
			f.Flush()
		}
		return len(p), nil
	}
	if _, err := f.ResponseWriter.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (f *faultWriter) Flush() {
	if fl, ok := f.ResponseWriter.(http.Flusher); ok {
		fl.Flush()
	}
}

// finish writes a held JSON body, cut short.
func (f *faultWriter) finish() {
	if f.stream || f.body == nil {
		return
	}
	switch f.fault {
	case FaultMalformedJSON:
		f.ResponseWriter.Write(f.body[:len(f.body)-20])
	case FaultCloseMidway:
		f.ResponseWriter.Write(f.body[:len(f.body)/2])
		f.Flush()
		panic(http.ErrAbortHandler)
	}
}
