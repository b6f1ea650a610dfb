package store

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestResponseHistory(t *testing.T) {
	both(t, func(t *testing.T, dir string) {
		ctx := context.Background()
		s := openTest(t, dir)
		defer s.Close()
		cases := []struct{ id, input, output string }{
			{"resp_1", `[{"role":"user","content":"hi"}]`, `[{"type":"message"}]`},
			{"resp_2", `[]`, `[{"type":"function_call","call_id":"c1"}]`},
			{"resp_3", ``, ``},
		}
		for _, c := range cases {
			if err := s.SetResponseHistory(ctx, c.id, []byte(c.input), []byte(c.output)); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range cases {
			in, out, ok, err := s.ResponseHistory(ctx, c.id)
			if err != nil || !ok || string(in) != c.input || string(out) != c.output {
				t.Errorf("%s: got %q %q %v %v, want %q %q", c.id, in, out, ok, err, c.input, c.output)
			}
		}
		if _, _, ok, err := s.ResponseHistory(ctx, "resp_unknown"); ok || err != nil {
			t.Errorf("unknown id: ok=%v err=%v", ok, err)
		}
		if err := s.SetResponseHistory(ctx, "", nil, nil); err == nil {
			t.Error("empty id stored")
		}
		if dir == "" {
			return
		}
		// Durable: a reopened store still resolves the ids.
		s.Close()
		s2 := openTest(t, dir)
		defer s2.Close()
		in, out, ok, err := s2.ResponseHistory(ctx, "resp_1")
		if err != nil || !ok || string(in) != cases[0].input || string(out) != cases[0].output {
			t.Errorf("after reopen: %q %q %v %v", in, out, ok, err)
		}
	})
}

func TestResponseHistoryExpires(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, Options{InMemory: true, Retention: time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.SetResponseHistory(ctx, "resp_x", []byte(`[]`), []byte(`[]`)); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := s.ResponseHistory(ctx, "resp_x"); !ok {
		t.Fatal("not stored")
	}
	time.Sleep(2100 * time.Millisecond) // Badger TTLs have one-second granularity
	if _, _, ok, err := s.ResponseHistory(ctx, "resp_x"); ok || err != nil {
		t.Errorf("past retention: ok=%v err=%v", ok, err)
	}
	s.Close()
	if err := s.SetResponseHistory(ctx, "resp_y", nil, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("closed store: %v", err)
	}
}
