package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// fakeCollector is an OTLP/HTTP collector that decodes every export it
// acknowledges and keeps its decompressed size and spans. It answers 503 to
// the first failFirst exports.
type fakeCollector struct {
	mu        sync.Mutex
	failFirst int
	seen      int
	exports   []collected
}

type collected struct {
	size  int
	calls []*Call // the spans, read back as calls
}

func (fc *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := &coltracepb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.seen++; fc.seen <= fc.failFirst {
		http.Error(w, "warming up", http.StatusServiceUnavailable)
		return
	}
	ex := collected{size: len(raw)}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				ex.calls = append(ex.calls, CallFromSpan(sp))
			}
		}
	}
	fc.exports = append(fc.exports, ex)
	resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(resp)
}

func (fc *fakeCollector) collected() []collected {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return slices.Clone(fc.exports)
}

// interleaved records two multi-turn attempts turn by turn, as concurrent
// agents do, each call stored as a delta on the one before, and returns the
// calls by key and sequence id.
func interleaved(t *testing.T, st *store.Store, turns int) map[callKey]*Call {
	t.Helper()
	rec := NewRecorder(st, true, "test")
	a := conversation(rollout.Key{RolloutID: "push-a", AttemptID: "0"}, turns, 300, 40)
	b := conversation(rollout.Key{RolloutID: "push-bb", AttemptID: "1"}, turns, 300, 40)
	want := map[callKey]*Call{}
	for i := range turns {
		for _, c := range []*Call{a[i], b[i]} {
			if err := rec.RecordCall(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			want[callKey{c.Key, c.Seq}] = c
		}
	}
	return want
}

type callKey struct {
	key rollout.Key
	seq uint64
}

// Calls stored as deltas export whole, many times their stored size: the
// pusher halves a batch whose export is over MaxBatchBytes until it fits,
// so no export is over it unless it holds a single span, and every call
// still arrives exactly once, whole, with the position only moving past
// what the collector acknowledged (its first answer is a 503).
func TestPushBatchBytesBoundExport(t *testing.T) {
	src := testStore(t)
	want := interleaved(t, src, 16)
	recs := mustScan(t, src)
	// What each record exports alone, and all of them together.
	single := make([]int, len(recs))
	stored := 0
	for i := range recs {
		one, err := AppendTracesFrom(context.Background(), nil, recs[i:i+1], src)
		if err != nil {
			t.Fatal(err)
		}
		single[i] = len(one)
		stored += len(recs[i].Data)
	}
	all, err := AppendTracesFrom(context.Background(), nil, recs, src)
	if err != nil {
		t.Fatal(err)
	}
	smallest, largest := slices.Min(single), slices.Max(single)
	t.Logf("%d records: %d bytes stored, %d exported (one: %d to %d)", len(recs), stored, len(all), smallest, largest)
	if len(all) < 3*stored {
		t.Fatalf("the export (%d bytes) is not much larger than the store (%d): no deltas?", len(all), stored)
	}

	for _, tc := range []struct {
		name     string
		maxBytes int
		oneBatch bool // everything fits in one export
		batched  bool // some export holds several spans
		alone    bool // some record is over the bound alone
	}{
		{"every record over the bound", smallest - 1, false, false, true},
		{"the later records over the bound", (smallest + largest) / 2, false, true, true},
		{"batches of several", 3 * largest, false, true, false},
		{"one export", 2 * len(all), true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeCollector{failFirst: 1}
			srv := httptest.NewServer(fc)
			defer srv.Close()
			p, err := NewPusher(src, PushConfig{
				Endpoint: srv.URL, MaxBatchBytes: tc.maxBytes, RetryBase: time.Millisecond, Logger: zerolog.Nop(),
			})
			if err != nil {
				t.Fatal(err)
			}
			// Each subtest ships the store from the start: its own position.
			p.name = fmt.Sprintf("%s-%d", p.name, tc.maxBytes)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error)
			go func() { done <- p.Run(ctx) }()
			deadline := time.Now().Add(60 * time.Second)
			for p.State(context.Background()).Backlog > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			<-done

			got := map[callKey]int{}
			sent, batched, alone := 0, false, false
			for i, ex := range fc.collected() {
				sent += ex.size
				if ex.size > tc.maxBytes && len(ex.calls) > 1 {
					t.Errorf("export %d: %d bytes of %d spans, over the bound of %d", i, ex.size, len(ex.calls), tc.maxBytes)
				}
				batched = batched || len(ex.calls) > 1
				alone = alone || (ex.size > tc.maxBytes && len(ex.calls) == 1)
				for _, c := range ex.calls {
					k := callKey{c.Key, c.Seq}
					got[k]++
					w, ok := want[k]
					if !ok {
						t.Fatalf("export %d: a call nobody made: %+v", i, k)
					}
					if !slices.Equal(c.Response.PromptTokenIDs, w.Response.PromptTokenIDs) || !bytes.Equal(c.InputMessages, w.Request.Input) {
						t.Errorf("call %+v: %d prompt tokens and %d bytes of messages, want %d and %d",
							k, len(c.Response.PromptTokenIDs), len(c.InputMessages), len(w.Response.PromptTokenIDs), len(w.Request.Input))
					}
				}
			}
			for k := range want {
				if got[k] != 1 {
					t.Errorf("call %+v arrived %d times", k, got[k])
				}
			}
			if n := len(fc.collected()); tc.oneBatch && n != 1 {
				t.Errorf("%d exports, want 1", n)
			}
			if batched != tc.batched || alone != tc.alone {
				t.Errorf("some export batched: %v, want %v; some alone over the bound: %v, want %v", batched, tc.batched, alone, tc.alone)
			}
			s := p.State(context.Background())
			if s.Position != src.Cursor() || s.SentSpans != uint64(len(want)) || s.SentBytes != uint64(sent) || s.RejectedSpans != 0 {
				t.Errorf("state %+v, want position %d, %d spans, %d bytes sent", s, src.Cursor(), len(want), sent)
			}
		})
	}
}

// BenchmarkPushDeltaBacklog ships a backlog of 30-turn rollouts stored as
// deltas (each about 330 KB stored, 3.2 MB exported) to a collector that
// acknowledges at once, with the default 3 MiB bound: the bytes of
// protobuf shipped per second, halving included.
func BenchmarkPushDeltaBacklog(b *testing.B) {
	st := testStore(b)
	rec := NewRecorder(st, false, "bench")
	const rollouts = 8
	for i := range rollouts {
		recordAll(b, rec, conversation(rollout.Key{RolloutID: fmt.Sprintf("bench-%0*d", i+1, i), AttemptID: "0"}, 30, 1000, 100))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	var shipped uint64
	b.ResetTimer()
	for i := range b.N {
		p, err := NewPusher(st, PushConfig{Endpoint: srv.URL, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		p.name = fmt.Sprintf("bench-%d", i)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		for p.State(context.Background()).Backlog > 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		<-done
		shipped += p.State(context.Background()).SentBytes
	}
	b.ReportMetric(float64(shipped)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// The next batch starts from the records that fitted after a halving, and
// doubles back towards MaxBatchSpans once an export takes half the bound.
func TestPushLearnFit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		fit, n, size int
		halved       bool
		want         int
	}{
		{"halved: what fitted", 0, 17, 2900, true, 17},
		{"halved again", 17, 8, 2000, true, 8},
		{"full batch, over half the bound: stays", 17, 17, 1800, false, 17},
		{"full batch, half the bound: doubles", 17, 17, 1500, false, 34},
		{"short batch: nothing learnt", 17, 5, 100, false, 17},
		{"doubles back to no limit", 300, 300, 100, false, 0},
		{"no limit: stays", 0, 512, 100, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Pusher{cfg: PushConfig{MaxBatchBytes: 3000, MaxBatchSpans: 512}, fit: tc.fit}
			if p.learnFit(tc.n, tc.size, tc.halved); p.fit != tc.want {
				t.Errorf("fit %d, want %d", p.fit, tc.want)
			}
		})
	}
}
