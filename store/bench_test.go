package store

import (
	"bytes"
	"context"
	"fmt"
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
