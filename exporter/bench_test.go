package exporter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// realisticCall is a call of 2,048 prompt and 256 response tokens with
// logprobs, content capture on.
func realisticCall(key rollout.Key, seq uint64) *Call {
	c := sampleCall()
	c.Key, c.Seq = key, seq
	c.Request = tokenids.Request{Endpoint: tokenids.Chat, Model: "Qwen/Qwen3-8B", N: 1, Prompts: 1, Input: []byte(`[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 680) + `"}]`)}
	prompt := make([]int64, 2048)
	for i := range prompt {
		prompt[i] = int64(1000 + i*7919%150000)
	}
	ids, lps := make([]int64, 256), make([]float64, 256)
	for i := range ids {
		ids[i], lps[i] = int64(2000+i), -0.001*float64(i+1)
	}
	c.Response = tokenids.Result{ResponseID: "chatcmpl-x", Model: "Qwen/Qwen3-8B", PromptTokenIDs: prompt, Prompts: [][]int64{prompt},
		Choices: []tokenids.Choice{{TokenIDs: ids, Logprobs: lps, FinishReason: "stop", Text: strings.Repeat("lorem ipsum ", 100)}},
		Usage:   &tokenids.Usage{PromptTokens: 2048, CompletionTokens: 256}}
	return c
}

// BenchmarkRecordCall is the cost the proxy pays per call to turn it into a
// durable span: SDK span, OTLP transform, protobuf, store commit.
// Stored packed (as tokentap does) and as OTLP arrays (as it did), side by
// side; bytes/call is what the store's value holds.
func BenchmarkRecordCall(b *testing.B) {
	for _, form := range []struct {
		name string
		opts []RecorderOption
	}{{"packed", nil}, {"unpacked", []RecorderOption{WithUnpackedArrays()}}} {
		b.Run(form.name, func(b *testing.B) {
			st, err := store.Open(context.Background(), store.Options{Dir: b.TempDir(), Retention: time.Hour, Logger: zerolog.Nop()})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			rec := NewRecorder(st, true, "bench", form.opts...)
			key := rollout.Key{RolloutID: "r", AttemptID: "0"}
			seq := uint64(0)
			b.ReportAllocs()
			for b.Loop() {
				seq++
				if err := rec.RecordCall(context.Background(), realisticCall(key, seq)); err != nil {
					b.Fatal(err)
				}
			}
			r, err := st.Record(context.Background(), key.RolloutID, key.AttemptID, seq)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(r.Data)), "bytes/call")
		})
	}
}

func filledStore(b *testing.B, n int) *store.Store {
	b.Helper()
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	rec := NewRecorder(st, true, "bench")
	for i := range n {
		if err := rec.RecordCall(context.Background(), realisticCall(rollout.Key{RolloutID: "r" + string(rune('a'+i%8)), AttemptID: "0"}, uint64(i+1))); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

// BenchmarkPush ships 512 realistic spans per operation through the whole
// push path (scan, group, protobuf, gzip, HTTP) to a collector that
// acknowledges at once, so the figure is tokentap's side of the wire.
func BenchmarkPush(b *testing.B) {
	const n = 512
	st := filledStore(b, n)
	var received int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, _ := io.Copy(io.Discard, r.Body)
		received += m
		w.WriteHeader(http.StatusOK)
	}))
	defer sink.Close()
	var sentBytes uint64
	b.ReportAllocs()
	for b.Loop() {
		p, err := NewPusher(st, PushConfig{Endpoint: sink.URL, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		p.name = "bench-" + time.Now().String() // start from the first record every time
		pos := uint64(0)
		for pos < n {
			next, _, _, err := p.shipOnce(context.Background(), pos, p.cfg.MaxBatchSpans)
			if err != nil {
				b.Fatal(err)
			}
			pos = next
		}
		sentBytes += p.State(context.Background()).SentBytes
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(sentBytes)/b.Elapsed().Seconds()/1e6, "MB/s(protobuf)")
	b.ReportMetric(float64(received)/b.Elapsed().Seconds()/1e6, "MB/s(gzip)")
}

// BenchmarkPullEncode is the trainer pull's encoder for 100 realistic spans.
func BenchmarkPullEncode(b *testing.B) {
	st := filledStore(b, 100)
	recs, _, err := st.Scan(context.Background(), 0, 100, 1<<30, "", "")
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []struct {
		name string
		f    Format
	}{{"protobuf", Protobuf}, {"json", JSON}} {
		b.Run(f.name, func(b *testing.B) {
			var bytes int
			b.ReportAllocs()
			for b.Loop() {
				out, err := EncodeTraces(recs, f.f)
				if err != nil {
					b.Fatal(err)
				}
				bytes += len(out)
			}
			b.ReportMetric(float64(len(recs)*b.N)/b.Elapsed().Seconds(), "spans/s")
			b.ReportMetric(float64(bytes)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}
