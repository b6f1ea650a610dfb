package exporter

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// recordCalls records n calls under key through a Recorder.
func recordCalls(t testing.TB, rec *Recorder, key rollout.Key, n int) {
	t.Helper()
	for i := range n {
		c := sampleCall()
		c.Key, c.Seq = key, uint64(i+1)
		if err := rec.RecordCall(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

// runPusher pushes st to endpoint until the backlog is empty.
func runPusher(t *testing.T, st *store.Store, endpoint string) *Pusher {
	t.Helper()
	p, err := NewPusher(st, PushConfig{Endpoint: endpoint, MaxBatchSpans: 4, RetryBase: time.Millisecond, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	deadline := time.Now().Add(60 * time.Second)
	for p.State(context.Background()).Backlog > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog stuck: %+v", p.State(context.Background()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	return p
}

// A sidecar pushes to another one's OTLP receiver: every record arrives,
// and the position survives a restart of the pusher.
func TestPushToReceiver(t *testing.T) {
	src := testStore(t)
	recorder := NewRecorder(src, true, "test")
	key := rollout.Key{RolloutID: "r", AttemptID: "0"}
	recordCalls(t, recorder, key, 10)
	dst, dstStore := receiverServer(t)

	p := runPusher(t, src, dst.URL)
	if s := p.State(context.Background()); s.SentSpans != 10 || s.Position != 10 || s.Failures != 0 || s.SentBytes == 0 {
		t.Errorf("state %+v", s)
	}
	got, _ := dstStore.Records(context.Background(), "r", "0")
	if len(got) != 10 {
		t.Fatalf("receiver holds %d records", len(got))
	}
	// A new pusher on the same store starts from the saved position.
	recordCalls(t, recorder, rollout.Key{RolloutID: "r", AttemptID: "1"}, 2)
	p = runPusher(t, src, dst.URL)
	if s := p.State(context.Background()); s.SentSpans != 2 || s.Position != 12 {
		t.Errorf("resumed state %+v", s)
	}
}

// A collector that answers 503 (with Retry-After) and 429 is retried until
// it takes the data; nothing is lost or sent twice.
func TestPushRetriesThrottlingCollector(t *testing.T) {
	src := testStore(t)
	recordCalls(t, NewRecorder(src, true, "test"), rollout.Key{RolloutID: "r", AttemptID: "0"}, 6)
	dst, dstStore := receiverServer(t)
	target, _ := url.Parse(dst.URL)
	forward := httputil.NewSingleHostReverseProxy(target)
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch calls.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		case 2:
			io.Copy(io.Discard, r.Body)
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			forward.ServeHTTP(w, r)
		}
	}))
	defer flaky.Close()
	p := runPusher(t, src, flaky.URL)
	got, _ := dstStore.Records(context.Background(), "r", "0")
	if len(got) != 6 || p.State(context.Background()).SentSpans != 6 {
		t.Errorf("delivered %d, state %+v", len(got), p.State(context.Background()))
	}
}

// A collector that accepts an export but refuses some of its spans (a
// partial success; here: records without a rollout key, which a tokentap
// receiver refuses) has acknowledged it: the rest is not sent twice, and
// the refused spans are counted. An export refused whole is narrowed down by
// halving the batch, and a span refused alone, repeatedly, is skipped.
func TestPushRefusedSpans(t *testing.T) {
	for _, tc := range []struct {
		name           string
		keylessFirst   bool
		sent, rejected uint64
	}{
		{"partial success", false, 6, 1},
		{"refused whole", true, 6, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := testStore(t)
			recorder := NewRecorder(src, true, "test")
			if tc.keylessFirst {
				recordCalls(t, recorder, rollout.Key{}, 4) // a whole batch the receiver refuses
			}
			recordCalls(t, recorder, rollout.Key{RolloutID: "good", AttemptID: "0"}, 2)
			if !tc.keylessFirst {
				recordCalls(t, recorder, rollout.Key{}, 1)
			}
			recordCalls(t, recorder, rollout.Key{RolloutID: "good", AttemptID: "1"}, 4)
			dst, dstStore := receiverServer(t)
			p := runPusher(t, src, dst.URL)
			s := p.State(context.Background())
			if s.RejectedSpans != tc.rejected || s.SentSpans != tc.sent || s.Position != tc.sent+tc.rejected {
				t.Errorf("state %+v", s)
			}
			got, _ := dstStore.Records(context.Background(), "good", "")
			if len(got) != 6 {
				t.Errorf("delivered %d of 6 good records", len(got))
			}
		})
	}
}

// A collector that refuses everything (503) for longer than the retention
// window costs no span: retention waits for the outbox's position, so every
// record arrives once the collector takes data again, and only then do the
// records past retention go.
func TestOutageLongerThanRetention(t *testing.T) {
	dst, dstStore := receiverServer(t)
	target, _ := url.Parse(dst.URL)
	forward := httputil.NewSingleHostReverseProxy(target)
	var refusing atomic.Bool
	refusing.Store(true)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refusing.Load() {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		forward.ServeHTTP(w, r)
	}))
	defer collector.Close()
	src, err := store.Open(context.Background(), store.Options{
		InMemory: true, Retention: 2 * time.Second, HoldFor: []string{PositionName(collector.URL)}, Logger: zerolog.Nop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	recordCalls(t, NewRecorder(src, true, "test"), rollout.Key{RolloutID: "r", AttemptID: "0"}, 10)

	p, err := NewPusher(src, PushConfig{Endpoint: collector.URL, MaxBatchSpans: 4, RetryBase: 100 * time.Millisecond, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx) }()
	defer func() { cancel(); <-done }()
	// Down for twice the retention; the store sweeps every second meanwhile.
	time.Sleep(4500 * time.Millisecond)
	if st := src.Stats(); st.HeldRecords != 10 || st.HeldOldestAge < 2 {
		t.Errorf("while the collector is down: held %d, oldest %.1fs", st.HeldRecords, st.HeldOldestAge)
	}
	refusing.Store(false)
	deadline := time.Now().Add(30 * time.Second)
	for p.State(context.Background()).Position < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	got, _ := dstStore.Records(context.Background(), "r", "0")
	if len(got) != 10 {
		t.Fatalf("the collector got %d of 10 records (state %+v)", len(got), p.State(context.Background()))
	}
	// Shipped, past retention: the next sweeps delete them.
	for src.Stats().HeldRecords > 0 || len(mustScan(t, src)) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("shipped records past retention never deleted: %d left, held %d", len(mustScan(t, src)), src.Stats().HeldRecords)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustScan(t *testing.T, st *store.Store) []store.Record {
	t.Helper()
	recs, _, err := st.Scan(context.Background(), 0, 1000, 1<<30, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestParseHeaders(t *testing.T) {
	h, err := ParseHeaders([]string{"Authorization=Bearer a=b", "x-team=rl"})
	if err != nil || h["Authorization"] != "Bearer a=b" || h["x-team"] != "rl" {
		t.Errorf("%v %v", h, err)
	}
	if _, err := ParseHeaders([]string{"novalue"}); err == nil {
		t.Error("accepted a header without =")
	}
	for _, bad := range []string{"ftp://x", "localhost:4318", "http://"} {
		if _, err := NewPusher(nil, PushConfig{Endpoint: bad}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
}
