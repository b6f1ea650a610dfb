package store

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// BenchmarkAppend commits one call-sized record per operation: 20 KB, the
// encoded span of a call with 2k prompt and 256 response tokens. parallel
// shows what group commit does for concurrent calls.
func BenchmarkAppend(b *testing.B) {
	data := bytes.Repeat([]byte("s"), 20<<10)
	for _, mode := range []struct {
		name     string
		memory   bool
		sync     bool
		parallel bool
	}{
		{"disk/serial", false, false, false},
		{"disk/parallel", false, false, true},
		{"disk-sync/serial", false, true, false},
		{"disk-sync/parallel", false, true, true},
		{"memory/parallel", true, false, true},
	} {
		b.Run(mode.name, func(b *testing.B) {
			opts := Options{InMemory: mode.memory, Sync: mode.sync, Retention: time.Hour, Logger: zerolog.Nop()}
			if !mode.memory {
				opts.Dir = b.TempDir()
			}
			s, err := Open(context.Background(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var n atomic.Uint64
			appendOne := func() {
				i := n.Add(1)
				rid := fmt.Sprintf("r%d", i%64)
				if err := s.Append(context.Background(), &Record{RolloutID: rid, AttemptID: "0", Seq: i, Kind: KindCall, Time: time.Now(), Data: data}); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			if mode.parallel {
				b.SetParallelism(16) // 32 writers on 2 cores: the proxy's concurrency
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						appendOne()
					}
				})
			} else {
				for b.Loop() {
					appendOne()
				}
			}
			st := s.Stats()
			b.ReportMetric(float64(st.CommittedRecords)/float64(max(st.Commits, 1)), "records/commit")
		})
	}
}

// BenchmarkNextSequenceFreshRollouts is the start of an RL step: 10,000
// rollouts nobody has seen make their first call at once, 64 at a time,
// on a disk store that already holds other rollouts' records. Every first
// use reads the store for a summary; those reads must run side by side,
// not queue behind one another. One operation is the whole step.
func BenchmarkNextSequenceFreshRollouts(b *testing.B) {
	const rollouts, workers = 10_000, 64
	dir := b.TempDir()
	ctx := context.Background()
	opts := Options{Dir: dir, Retention: time.Hour, Logger: zerolog.Nop()}
	s, err := Open(ctx, opts)
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("s"), 2<<10)
	for i := range 20_000 {
		r := &Record{RolloutID: fmt.Sprintf("old-%d", i/4), AttemptID: "0", Seq: uint64(i%4 + 1), Kind: KindCall, Time: time.Now(), Data: data}
		if err := s.Append(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	// Reopen: the old rollouts are in tables on disk, not in memory.
	s.Close()
	if s, err = Open(ctx, opts); err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	step := 0
	for b.Loop() {
		step++
		ids := make(chan string, rollouts)
		for i := range rollouts {
			ids <- fmt.Sprintf("step%d-rollout%d", step, i)
		}
		close(ids)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for rid := range ids {
					if seq, err := s.NextSequence(ctx, rid, "0"); err != nil || seq != 1 {
						b.Errorf("first sequence of %s: %d, %v", rid, seq, err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rollouts), "ns/rollout")
}
