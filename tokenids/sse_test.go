package tokenids

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type sseEvent struct {
	raw, data string
	lines     int
}

func readEvents(t testing.TB, r io.Reader, max int) (events []sseEvent, rest string, err error) {
	er := NewEventReader(r, max)
	for {
		ev, err := er.Next()
		if err != nil {
			return events, string(er.Rest()), err
		}
		if ev.DataLines == 1 && string(ev.Raw[ev.DataStart:ev.DataStart+len(ev.Data)]) != string(ev.Data) {
			t.Fatalf("DataStart %d does not locate %q in %q", ev.DataStart, ev.Data, ev.Raw)
		}
		events = append(events, sseEvent{string(ev.Raw), string(ev.Data), ev.DataLines})
	}
}

func TestEventReaderFraming(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEvent
		rest string
	}{
		{
			name: "vLLM framing",
			in:   "data: {\"a\":1}\n\ndata: [DONE]\n\n",
			want: []sseEvent{{"data: {\"a\":1}\n\n", `{"a":1}`, 1}, {"data: [DONE]\n\n", "[DONE]", 1}},
		},
		{
			name: "CRLF",
			in:   "data: x\r\n\r\ndata: y\r\n\r\n",
			want: []sseEvent{{"data: x\r\n\r\n", "x", 1}, {"data: y\r\n\r\n", "y", 1}},
		},
		{
			name: "bare CR",
			in:   "data: x\r\rdata: y\r\r",
			want: []sseEvent{{"data: x\r\r", "x", 1}, {"data: y\r\r", "y", 1}},
		},
		{
			name: "comments, event and id lines, no space after colon",
			in:   ": keep-alive\n\nevent: message\nid: 7\ndata:{\"a\":1}\nretry: 10\n\n",
			want: []sseEvent{{": keep-alive\n\n", "", 0}, {"event: message\nid: 7\ndata:{\"a\":1}\nretry: 10\n\n", `{"a":1}`, 1}},
		},
		{
			name: "multi-line data",
			in:   "data: a\ndata: b\ndata\n\n",
			want: []sseEvent{{"data: a\ndata: b\ndata\n\n", "a\nb\n", 3}},
		},
		{
			name: "blank lines between events travel with the next",
			in:   "\n\ndata: a\n\n\n\ndata: b\n\n",
			want: []sseEvent{{"\n\ndata: a\n\n", "a", 1}, {"\n\ndata: b\n\n", "b", 1}},
		},
		{
			name: "unterminated tail",
			in:   "data: a\n\ndata: b\n",
			want: []sseEvent{{"data: a\n\n", "a", 1}},
			rest: "data: b\n",
		},
		{
			name: "not a data field",
			in:   "database: x\ndata2: y\n\n",
			want: []sseEvent{{"database: x\ndata2: y\n\n", "", 0}},
		},
	}
	for _, tt := range tests {
		for _, split := range []string{"whole", "bytewise"} {
			t.Run(tt.name+"/"+split, func(t *testing.T) {
				var r io.Reader = strings.NewReader(tt.in)
				if split == "bytewise" {
					r = iotest.OneByteReader(r)
				}
				got, rest, err := readEvents(t, r, 1<<20)
				if err != io.EOF {
					t.Fatal(err)
				}
				// Bytes may be attributed to events differently when a CRLF is
				// split across reads; what must hold is that the bytes are all
				// handed on, in order, and that the same events are found.
				var all strings.Builder
				var events []sseEvent
				for _, ev := range got {
					all.WriteString(ev.raw)
					if strings.Trim(ev.raw, "\r\n") != "" {
						ev.raw = strings.Trim(ev.raw, "\r\n")
						events = append(events, ev)
					}
				}
				var wantAll strings.Builder
				for i := range tt.want {
					wantAll.WriteString(tt.want[i].raw)
					tt.want[i].raw = strings.Trim(tt.want[i].raw, "\r\n")
				}
				if all.String()+rest != tt.in {
					t.Errorf("bytes handed on %q, want %q", all.String()+rest, tt.in)
				}
				if split == "whole" && all.String() != wantAll.String() {
					t.Errorf("raw events %q, want %q", all.String(), wantAll.String())
				}
				if len(events) != len(tt.want) {
					t.Fatalf("events = %+v, want %+v", events, tt.want)
				}
				for i := range events {
					if events[i] != tt.want[i] {
						t.Errorf("event %d = %+v, want %+v", i, events[i], tt.want[i])
					}
				}
				if rest != tt.rest {
					t.Errorf("rest = %q, want %q", rest, tt.rest)
				}
			})
		}
	}
}

// An event is returned the moment its blank line arrives: the reader never
// asks for more input first. The pipe blocks any read past what was written.
func TestEventReaderDoesNotReadAhead(t *testing.T) {
	pr, pw := io.Pipe()
	er := NewEventReader(pr, 1<<20)
	go pw.Write([]byte("data: one\n\n"))
	ev, err := er.Next()
	if err != nil || string(ev.Data) != "one" {
		t.Fatalf("got %q, %v", ev.Data, err)
	}
	go func() {
		pw.Write([]byte("data: two\r"))
		pw.Write([]byte("\r"))
	}()
	ev, err = er.Next()
	if err != nil || string(ev.Data) != "two" {
		t.Fatalf("got %q, %v", ev.Data, err)
	}
	go func() {
		pw.Write([]byte("\ndata: three\n\n")) // the LF may finish the CR before it
		pw.Close()
	}()
	ev, err = er.Next()
	if err != nil || ev.Data != nil || string(ev.Raw) != "\n" {
		t.Fatalf("the late LF of a CRLF: got %q raw %q, %v", ev.Data, ev.Raw, err)
	}
	ev, err = er.Next()
	if err != nil || string(ev.Data) != "three" || string(ev.Raw) != "data: three\n\n" {
		t.Fatalf("got %q raw %q, %v", ev.Data, ev.Raw, err)
	}
}

func TestEventReaderLimit(t *testing.T) {
	big := "data: " + strings.Repeat("x", 2<<20) + "\n\n"
	got, _, err := readEvents(t, strings.NewReader(big+"data: [DONE]\n\n"), 4<<20)
	if err != io.EOF || len(got) != 2 || len(got[0].data) != 2<<20 {
		t.Fatalf("2 MB event: %d events, err %v", len(got), err)
	}
	er := NewEventReader(strings.NewReader(big), 1<<20)
	if _, err := er.Next(); !errors.Is(err, ErrEventTooLarge) {
		t.Fatalf("err = %v, want ErrEventTooLarge", err)
	}
	if rest := er.Rest(); len(rest) < 1<<20 || !bytes.HasPrefix(rest, []byte("data: xxx")) {
		t.Errorf("rest holds %d bytes", len(rest))
	}
}

func TestEventReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b"), iotest.ErrReader(boom))
	got, rest, err := readEvents(t, r, 1<<20)
	if !errors.Is(err, boom) || len(got) != 1 || rest != "data: b" {
		t.Errorf("events %+v rest %q err %v", got, rest, err)
	}
}
