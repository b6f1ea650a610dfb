package detok

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

func TestDecode(t *testing.T) {
	sim := vllmsim.New(vllmsim.Options{})
	var asked atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		sim.ServeHTTP(w, r)
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	c := New(Config{Pick: func(string, string) (*url.URL, error) { return base, nil }})
	ctx := context.Background()

	text := "<|im_start|>user\nHello there<|im_end|>\n"
	ids := sim.Tokenize(text)
	dec := c.Decoder("r1", "Qwen/Qwen2.5-1.5B-Instruct")
	for range 3 {
		got, ok := dec(ctx, ids)
		if !ok || got != text {
			t.Fatalf("decode: %q %v, want %q", got, ok, text)
		}
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("upstream asked %d times, want 1 (cached)", n)
	}
	// An unknown model is vLLM's 404: not ok, and the upstream rests.
	if _, ok := c.Decoder("r1", "no-such-model")(ctx, []int64{5}); ok {
		t.Error("decode for an unknown model succeeded")
	}
	if _, ok := dec(ctx, []int64{9, 9}); ok {
		t.Error("asked again right after a failure")
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("upstream asked %d times, want 2", n)
	}
}

func TestUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base, _ := url.Parse(srv.URL)
	srv.Close()
	c := New(Config{Pick: func(string, string) (*url.URL, error) { return base, nil }})
	if text, err := c.Decode(context.Background(), "r", "m", []int64{1, 2}); err == nil {
		t.Fatalf("decoded %q from a closed server", text)
	}
}
