package exporter

import (
	"context"
	"testing"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// BenchmarkRolloutStorage records a 30-turn rollout whose context grows to
// about 33k tokens (each turn adds 1,000 prompt and 100 response tokens,
// content capture on), stored whole and as deltas, and reports the bytes
// stored per rollout; then it reads the 30 calls back whole, as the
// trainer views do, per op.
func BenchmarkRolloutStorage(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []RecorderOption
	}{{"whole", []RecorderOption{WithWholePrompts()}}, {"delta", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			key := rollout.Key{RolloutID: "bench", AttemptID: "0"}
			calls := conversation(key, 30, 1000, 100)
			st := testStore(b)
			recordAll(b, NewRecorder(st, true, "bench", mode.opts...), calls)
			size, recs := storedBytes(b, st, key)
			b.Run("whole-spans", func(b *testing.B) {
				// What putting the prompts back costs by itself.
				b.ReportAllocs()
				for b.Loop() {
					res := NewResolver(nil)
					res.Add(recs...)
					for _, rec := range recs {
						if _, err := res.Full(context.Background(), rec); err != nil {
							b.Fatal(err)
						}
					}
				}
				b.ReportMetric(float64(size), "stored-bytes/rollout")
			})
			b.Run("calls", func(b *testing.B) {
				// The views' read: whole spans decoded into calls.
				b.ReportAllocs()
				for b.Loop() {
					res := NewResolver(nil)
					res.Add(recs...)
					for _, rec := range recs {
						data, err := res.Full(context.Background(), rec)
						if err != nil {
							b.Fatal(err)
						}
						_, sp, err := DecodeRecord(data)
						if err != nil {
							b.Fatal(err)
						}
						if c := CallFromSpan(sp); len(c.Response.PromptTokenIDs) == 0 {
							b.Fatal("no prompt")
						}
					}
				}
			})
		})
	}
}

// BenchmarkRolloutExport is the OTLP export of the same rollout's 30 calls
// (the pull route and the outbox), whole and as deltas.
func BenchmarkRolloutExport(b *testing.B) {
	for _, mode := range []struct {
		name string
		opts []RecorderOption
	}{{"whole", []RecorderOption{WithWholePrompts()}}, {"delta", nil}} {
		b.Run(mode.name, func(b *testing.B) {
			key := rollout.Key{RolloutID: "bench", AttemptID: "0"}
			st := testStore(b)
			recordAll(b, NewRecorder(st, true, "bench", mode.opts...), conversation(key, 30, 1000, 100))
			_, recs := storedBytes(b, st, key)
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if buf, err = AppendTracesFrom(context.Background(), buf[:0], recs, st); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "otlp-bytes")
		})
	}
}

var _ RecordSource = (*store.Store)(nil)
