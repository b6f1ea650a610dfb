package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// specs returns n replicas on addresses nothing listens on: routing tests
// never connect.
func specs(n int) []Spec {
	out := make([]Spec, n)
	for i := range out {
		out[i] = Spec{URL: fmt.Sprintf("http://10.0.0.%d:8000", i+1)}
	}
	return out
}

func mustNew(t testing.TB, sp []Spec, routing Routing, opts Options) *Set {
	t.Helper()
	s, err := New(sp, routing, opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustPick(t testing.TB, s *Set, rolloutID, model string, exclude ...*Replica) *Replica {
	t.Helper()
	r, err := s.Pick(rolloutID, model, exclude...)
	if err != nil {
		t.Fatalf("Pick(%q, %q): %v", rolloutID, model, err)
	}
	return r
}

func rolloutIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("ro-%d", i)
	}
	return ids
}

// assign maps each rollout to the name of the replica it is picked for.
func assign(t testing.TB, s *Set, ids []string) map[string]string {
	t.Helper()
	m := make(map[string]string, len(ids))
	for _, id := range ids {
		m[id] = mustPick(t, s, id, "").Name()
	}
	return m
}

func byName(s *Set, name string) *Replica {
	for _, r := range s.Replicas() {
		if r.Name() == name {
			return r
		}
	}
	return nil
}

func TestStickyIsStableAndBalanced(t *testing.T) {
	s := mustNew(t, specs(3), Sticky, Options{})
	ids := rolloutIDs(10000)
	first := assign(t, s, ids)
	for range 3 {
		for id, name := range assign(t, s, ids) {
			if first[id] != name {
				t.Fatalf("rollout %s went to %s, then to %s", id, first[id], name)
			}
		}
	}
	count := map[string]int{}
	for _, name := range first {
		count[name]++
	}
	if len(count) != 3 {
		t.Fatalf("rollouts spread over %d replicas, want 3: %v", len(count), count)
	}
	for name, n := range count {
		if share := float64(n) / float64(len(ids)); share < 0.25 || share > 0.42 {
			t.Errorf("replica %s got %.1f%% of rollouts, want 25%%-42%% (%v)", name, 100*share, count)
		}
	}
}

func TestStickyMovesOnlyWhatItMust(t *testing.T) {
	ids := rolloutIDs(10000)

	// Removing a replica, by ejection or by configuration, must move only
	// the rollouts that were on it.
	removals := []struct {
		name   string
		remove func(t *testing.T, s *Set, victim *Replica)
	}{
		{"ReportFailure", func(t *testing.T, s *Set, victim *Replica) {
			victim.ReportFailure(errors.New("connection refused"))
		}},
		{"Replace", func(t *testing.T, s *Set, victim *Replica) {
			var kept []Spec
			for _, sp := range specs(3) {
				if !strings.Contains(sp.URL, victim.Name()) {
					kept = append(kept, sp)
				}
			}
			if err := s.Replace(kept, Sticky); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range removals {
		t.Run(tc.name, func(t *testing.T) {
			s := mustNew(t, specs(3), Sticky, Options{})
			victim := s.Replicas()[1]
			before := assign(t, s, ids)
			tc.remove(t, s, victim)
			after := assign(t, s, ids)
			moved := 0
			for _, id := range ids {
				if after[id] == victim.Name() {
					t.Fatalf("rollout %s still goes to the removed replica", id)
				}
				if before[id] != after[id] {
					moved++
					if before[id] != victim.Name() {
						t.Fatalf("rollout %s moved from %s, which is still there, to %s", id, before[id], after[id])
					}
				} else if before[id] == victim.Name() {
					t.Fatalf("rollout %s stayed on the removed replica", id)
				}
			}
			if moved == 0 {
				t.Fatal("no rollout moved")
			}
		})
	}

	t.Run("add", func(t *testing.T) {
		s := mustNew(t, specs(3), Sticky, Options{})
		before := assign(t, s, ids)
		if err := s.Replace(specs(4), Sticky); err != nil {
			t.Fatal(err)
		}
		added := s.Replicas()[3].Name()
		after := assign(t, s, ids)
		moved := 0
		for _, id := range ids {
			if before[id] != after[id] {
				moved++
				if after[id] != added {
					t.Fatalf("rollout %s moved from %s to %s, not to the new replica %s", id, before[id], after[id], added)
				}
			}
		}
		if share := float64(moved) / float64(len(ids)); share < 0.15 || share > 0.35 {
			t.Errorf("%.1f%% of rollouts moved to the fourth replica, want about 25%%", 100*share)
		}
	})
}

func TestStickyIsDeterministic(t *testing.T) {
	sp := specs(5)
	a := mustNew(t, sp, Sticky, Options{})
	b := mustNew(t, sp, LeastLoaded, Options{}) // routing changes below
	if err := b.Replace(sp, Sticky); err != nil {
		t.Fatal(err)
	}
	// Same servers written differently, in another order: the choice
	// depends on which servers, not on spelling or order.
	var respelled []Spec
	for i := len(sp) - 1; i >= 0; i-- {
		respelled = append(respelled, Spec{URL: strings.Replace(sp[i].URL, "http://", "HTTP://", 1) + "/"})
	}
	c := mustNew(t, respelled, Sticky, Options{})
	index := func(s *Set, r *Replica) int {
		for i, x := range sp {
			if strings.EqualFold(x.URL, r.u.String()) {
				return i
			}
		}
		t.Fatalf("replica %s not in specs", r.Name())
		return -1
	}
	for _, id := range rolloutIDs(1000) {
		want := index(a, mustPick(t, a, id, ""))
		if got := index(b, mustPick(t, b, id, "")); got != want {
			t.Fatalf("rollout %s: replica %d in one set, %d in another", id, want, got)
		}
		if got := index(c, mustPick(t, c, id, "")); got != want {
			t.Fatalf("rollout %s: replica %d, but %d with URLs respelled and reordered", id, want, got)
		}
	}
}

func TestFNVMatchesHashFNV(t *testing.T) {
	for _, s := range []string{"", "a", "http://10.0.0.1:8000\x00ro-42", "ünïcode"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := fnvString(fnvOffset, s), h.Sum64(); got != want {
			t.Errorf("fnvString(%q) = %x, hash/fnv says %x", s, got, want)
		}
	}
}

func TestPickModels(t *testing.T) {
	s := mustNew(t, []Spec{
		{URL: "http://a:8000", Models: []string{"qwen-7b"}},
		{URL: "http://b:8000", Models: []string{"qwen-7b", "llama-8b"}},
		{URL: "http://c:8000", Models: []string{"qwen-1.5b"}},
	}, Sticky, Options{})
	tests := []struct {
		model string
		want  []string // names Pick may return; nil: ErrUnknownModel
	}{
		{"llama-8b", []string{"b:8000"}},
		{"qwen-1.5b", []string{"c:8000"}},
		{"qwen-7b", []string{"a:8000", "b:8000"}},
		{"", []string{"a:8000", "b:8000", "c:8000"}},
		{"gpt-5", nil},
		{"QWEN-7B", nil}, // served model names are exact
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q", tc.model), func(t *testing.T) {
			got := map[string]bool{}
			for _, id := range append(rolloutIDs(300), "") {
				r, err := s.Pick(id, tc.model)
				if tc.want == nil {
					if !errors.Is(err, ErrUnknownModel) || !strings.Contains(err.Error(), tc.model) {
						t.Fatalf("Pick(%q) = %v, %v; want ErrUnknownModel naming the model", tc.model, r, err)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got[r.Name()] = true
			}
			if len(got) != len(tc.want) {
				t.Errorf("model %q went to %v, want all of %v", tc.model, got, tc.want)
			}
			for _, name := range tc.want {
				if !got[name] {
					t.Errorf("model %q never went to %s (got %v)", tc.model, name, got)
				}
			}
		})
	}

	// Unknown means unknown to every replica, healthy or not.
	for _, r := range s.Replicas() {
		r.ReportFailure(errors.New("down"))
	}
	if r, err := s.Pick("ro-1", "llama-8b"); err != nil || r.Name() != "b:8000" {
		t.Errorf("with every replica ejected, Pick(llama-8b) = %v, %v; want b:8000", r, err)
	}
}

func TestPickExclude(t *testing.T) {
	for _, routing := range []Routing{Sticky, LeastLoaded} {
		t.Run(string(routing), func(t *testing.T) {
			s := mustNew(t, specs(3), routing, Options{})
			var tried []*Replica
			for range 3 {
				r := mustPick(t, s, "ro-7", "", tried...)
				for _, x := range tried {
					if x == r {
						t.Fatalf("Pick returned excluded replica %s", r.Name())
					}
				}
				tried = append(tried, r)
			}
			if _, err := s.Pick("ro-7", "", tried...); !errors.Is(err, ErrNoReplica) {
				t.Fatalf("Pick with every replica excluded: %v, want ErrNoReplica", err)
			}
		})
	}

	// Excluding the sticky choice gives the rollout's second choice: the
	// replica it would move to if the first one went away.
	s := mustNew(t, specs(3), Sticky, Options{})
	for _, id := range rolloutIDs(200) {
		first := mustPick(t, s, id, "")
		second := mustPick(t, s, id, "", first)
		first.ReportFailure(errors.New("down"))
		if got := mustPick(t, s, id, ""); got != second {
			t.Fatalf("rollout %s: excluding %s gives %s, ejecting it gives %s", id, first.Name(), second.Name(), got.Name())
		}
		first.observe(nil)
	}

	// ErrUnknownModel wins over ErrNoReplica: no retry can help.
	m := mustNew(t, []Spec{{URL: "http://a", Models: []string{"m"}}}, Sticky, Options{})
	if _, err := m.Pick("ro", "other", m.Replicas()...); !errors.Is(err, ErrUnknownModel) {
		t.Errorf("Pick of an unknown model with all excluded: %v, want ErrUnknownModel", err)
	}
}

func TestPickFailsOpen(t *testing.T) {
	for _, routing := range []Routing{Sticky, LeastLoaded} {
		t.Run(string(routing), func(t *testing.T) {
			s := mustNew(t, specs(3), routing, Options{})
			want := mustPick(t, s, "ro-1", "")
			for _, r := range s.Replicas() {
				r.ReportFailure(errors.New("down"))
			}
			r := mustPick(t, s, "ro-1", "")
			if routing == Sticky && r != want {
				t.Errorf("with every replica ejected, rollout went to %s, want its usual %s", r.Name(), want.Name())
			}
			// One healthy replica among ejected ones takes everything.
			healthy := s.Replicas()[2]
			healthy.observe(nil)
			for _, id := range rolloutIDs(100) {
				if r := mustPick(t, s, id, ""); r != healthy {
					t.Fatalf("rollout %s went to ejected %s while %s is healthy", id, r.Name(), healthy.Name())
				}
			}
		})
	}
}

func TestLeastLoaded(t *testing.T) {
	tests := []struct {
		routing   Routing
		rolloutID string
	}{
		{LeastLoaded, "ro-1"},
		{LeastLoaded, ""},
		{Sticky, ""}, // calls outside any rollout
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/%q", tc.routing, tc.rolloutID), func(t *testing.T) {
			s := mustNew(t, specs(3), tc.routing, Options{})
			rs := s.Replicas()

			// Equal counts: every replica in turn.
			seen := map[*Replica]int{}
			for range 30 {
				seen[mustPick(t, s, tc.rolloutID, "")]++
			}
			for _, r := range rs {
				if seen[r] != 10 {
					t.Errorf("idle replicas were picked %v times each, want 10 each", seen)
					break
				}
			}

			for i, n := range []int{3, 1, 2} {
				for range n {
					rs[i].Acquire()
				}
			}
			for range 10 {
				if r := mustPick(t, s, tc.rolloutID, ""); r != rs[1] {
					t.Fatalf("with 3,1,2 calls in flight, picked %s (%d)", r.Name(), r.InFlight())
				}
			}

			// Ties among the least loaded only: those two in turn.
			rs[1].Acquire() // 3,2,2
			seen = map[*Replica]int{}
			for range 20 {
				seen[mustPick(t, s, tc.rolloutID, "")]++
			}
			if seen[rs[0]] != 0 || seen[rs[1]] != 10 || seen[rs[2]] != 10 {
				t.Errorf("with 3,2,2 in flight, picks were %d,%d,%d; want 0,10,10", seen[rs[0]], seen[rs[1]], seen[rs[2]])
			}
		})
	}
}

func TestInFlight(t *testing.T) {
	s := mustNew(t, specs(1), Sticky, Options{})
	r := s.Replicas()[0]
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 100 {
				r.Acquire()
				r.Release()
			}
		})
	}
	wg.Wait()
	if n := r.InFlight(); n != 0 {
		t.Fatalf("InFlight after balanced Acquire/Release = %d", n)
	}
	r.Release()
	if n := r.InFlight(); n != 0 {
		t.Fatalf("InFlight after an unmatched Release = %d, want 0", n)
	}
}

// healthServer is a vLLM stand-in whose /health answers status.
type healthServer struct {
	*httptest.Server
	status atomic.Int32
	hits   atomic.Int32
}

func newHealthServer(t *testing.T, prefix string) *healthServer {
	h := &healthServer{}
	h.status.Store(http.StatusOK)
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != prefix+"/health" {
			http.NotFound(w, r)
			return
		}
		h.hits.Add(1)
		w.WriteHeader(int(h.status.Load()))
	}))
	t.Cleanup(h.Close)
	return h
}

// logBuffer collects log lines from concurrent writers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

func TestHealth(t *testing.T) {
	srv := newHealthServer(t, "/pool-a")
	var logs logBuffer
	s := mustNew(t, []Spec{{URL: srv.URL + "/pool-a/"}}, Sticky, Options{
		ProbeInterval:  time.Hour, // Ready's horizon: no clock in this test
		UnhealthyAfter: 2,
		Logger:         zerolog.New(&logs),
	})
	r := s.Replicas()[0]
	ctx := context.Background()

	if s.Ready() {
		t.Fatal("Ready before any probe")
	}
	if !r.Healthy() {
		t.Fatal("a new replica starts ejected; want presumed healthy")
	}

	steps := []struct {
		status      int
		wantHealthy bool
	}{
		{200, true},
		{503, true}, // one failure is not enough
		{503, false},
		{503, false},
		{200, true}, // one success readmits
		{503, true},
		{200, true}, // and resets the count
		{503, true},
		{503, false},
	}
	for i, st := range steps {
		srv.status.Store(int32(st.status))
		s.Probe(ctx)
		if r.Healthy() != st.wantHealthy {
			t.Fatalf("step %d (/health %d): Healthy() = %v, want %v", i, st.status, r.Healthy(), st.wantHealthy)
		}
		if !s.Ready() {
			t.Fatalf("step %d: not Ready although /health answered 200 within the interval", i)
		}
	}
	if n := srv.hits.Load(); n != int32(len(steps)) {
		t.Errorf("/health was asked %d times, want %d", n, len(steps))
	}
	if n := logs.count("replica unhealthy"); n != 2 {
		t.Errorf("logged %d ejections, want 2 (once per transition):\n%s", n, logs.buf.String())
	}
	if n := logs.count("replica healthy again"); n != 1 {
		t.Errorf("logged %d readmissions, want 1:\n%s", n, logs.buf.String())
	}

	// A failed call ejects at once; the next good probe readmits.
	srv.status.Store(200)
	s.Probe(ctx)
	r.ReportFailure(errors.New("dial tcp: connection refused"))
	r.ReportFailure(errors.New("dial tcp: connection refused"))
	if r.Healthy() {
		t.Fatal("healthy after ReportFailure")
	}
	if n := logs.count("replica ejected"); n != 1 {
		t.Errorf("logged %d passive ejections for two failures, want 1", n)
	}
	s.Probe(ctx)
	if !r.Healthy() {
		t.Fatal("not readmitted after a successful probe")
	}

	// A probe cut short by shutdown says nothing about the replica.
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for range 3 {
		s.Probe(cancelled)
	}
	if !r.Healthy() {
		t.Fatal("ejected by probes that were cancelled")
	}
}

func TestReadyNeedsARecentAnswer(t *testing.T) {
	srv := newHealthServer(t, "")
	srv.status.Store(http.StatusServiceUnavailable)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	s := mustNew(t, []Spec{{URL: srv.URL}, {URL: dead.URL}}, Sticky, Options{ProbeInterval: time.Hour})
	for range 3 {
		s.Probe(context.Background())
	}
	if s.Ready() {
		t.Fatal("Ready although no replica ever answered 200")
	}
	for _, r := range s.Replicas() {
		if r.Healthy() {
			t.Errorf("%s healthy after 3 failed probes", r.Name())
		}
	}
	srv.status.Store(http.StatusOK)
	s.Probe(context.Background())
	if !s.Ready() {
		t.Fatal("not Ready after one replica answered 200")
	}

	// Freshness: with a tiny interval, the answer goes stale.
	stale := mustNew(t, []Spec{{URL: srv.URL}}, Sticky, Options{ProbeInterval: time.Millisecond})
	stale.Probe(context.Background())
	deadline := time.Now().Add(10 * time.Second)
	for stale.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("still Ready long after 3 probe intervals without a probe")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestWatch(t *testing.T) {
	srv := newHealthServer(t, "")
	s := mustNew(t, []Spec{{URL: srv.URL}}, Sticky, Options{ProbeInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Watch(ctx)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not probe at once")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Watch did not return when its context ended")
	}
}

func TestReplace(t *testing.T) {
	a, b, c := newHealthServer(t, ""), newHealthServer(t, ""), newHealthServer(t, "")
	s := mustNew(t, []Spec{{URL: a.URL}, {URL: b.URL}}, Sticky, Options{ProbeInterval: time.Hour})
	ra, rb := s.Replicas()[0], s.Replicas()[1]
	ra.Acquire()
	ra.Acquire()
	rb.Acquire()
	ra.ReportFailure(errors.New("down"))

	// A failed Replace changes nothing.
	if err := s.Replace([]Spec{{URL: a.URL}, {URL: "ftp://x"}}, LeastLoaded); err == nil {
		t.Fatal("Replace accepted an ftp URL")
	}
	if err := s.Replace([]Spec{{URL: a.URL}}, "round-robin"); err == nil {
		t.Fatal("Replace accepted an unknown routing")
	}
	if got := s.Replicas(); len(got) != 2 || got[0] != ra || got[1] != rb || s.Routing() != Sticky {
		t.Fatal("a failed Replace changed the set")
	}

	// Keep a (respelled), drop b, add c; switch routing; a now serves one model.
	if err := s.Replace([]Spec{{URL: c.URL}, {URL: a.URL + "/", Models: []string{"m"}}}, LeastLoaded); err != nil {
		t.Fatal(err)
	}
	got := s.Replicas()
	if len(got) != 2 || got[1] != ra {
		t.Fatalf("Replace did not keep replica a: %v", got)
	}
	rc := got[0]
	if ra.InFlight() != 2 || ra.Healthy() {
		t.Errorf("kept replica: in flight %d, healthy %v; want 2, false as before", ra.InFlight(), ra.Healthy())
	}
	if !ra.Serves("m") || ra.Serves("other") || !rc.Serves("other") {
		t.Error("kept replica did not take its new models")
	}
	if s.Routing() != LeastLoaded {
		t.Errorf("routing %q after Replace, want least-loaded", s.Routing())
	}
	for _, id := range rolloutIDs(50) {
		if r := mustPick(t, s, id, ""); r == rb {
			t.Fatal("Pick returned a removed replica")
		}
	}
	bURL, _ := url.Parse(b.URL)
	if s.Owns(bURL) {
		t.Error("Owns the removed replica's host")
	}
	st := s.State()
	if len(st) != 2 || st[0].URL != c.URL || st[1].URL != a.URL || st[1].InFlight != 2 || st[1].Healthy ||
		len(st[1].Models) != 1 || st[1].Models[0] != "m" || st[0].Models != nil {
		t.Errorf("State after Replace = %+v", st)
	}

	// Calls on the removed replica finish normally.
	rb.Release()
	rb.Release()
	if n := rb.InFlight(); n != 0 {
		t.Errorf("removed replica in flight %d after its call ended and a stray Release, want 0", n)
	}

	// The new replica was probed at once: it alone answered, so Ready.
	deadline := time.Now().Add(10 * time.Second)
	for c.hits.Load() == 0 || !s.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the replica Replace added was not probed")
		}
		time.Sleep(time.Millisecond)
	}
	if a.hits.Load() != 0 {
		t.Error("Replace probed a replica it kept")
	}

	// A replica removed and added back starts afresh.
	if err := s.Replace([]Spec{{URL: b.URL}}, Sticky); err != nil {
		t.Fatal(err)
	}
	if r := s.Replicas()[0]; r == rb || r.InFlight() != 0 {
		t.Error("a replica added back reused its old state")
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name    string
		specs   []Spec
		routing Routing
		want    string // in the error
	}{
		{"empty", nil, Sticky, "at least one"},
		{"scheme", []Spec{{URL: "ftp://vllm:8000"}}, Sticky, "http or https"},
		{"no scheme", []Spec{{URL: "vllm:8000"}}, Sticky, "http or https"},
		{"no host", []Spec{{URL: "http:///v"}}, Sticky, "no host"},
		{"opaque", []Spec{{URL: "http:vllm"}}, Sticky, "no host"},
		{"v1", []Spec{{URL: "http://vllm:8000/v1"}}, Sticky, "without /v1"},
		{"v1 slash", []Spec{{URL: "http://vllm:8000/pool/v1/"}}, Sticky, "without /v1"},
		{"query", []Spec{{URL: "http://vllm:8000/?a=b"}}, Sticky, "query"},
		{"fragment", []Spec{{URL: "http://vllm:8000/#x"}}, Sticky, "fragment"},
		{"bad port", []Spec{{URL: "http://vllm:port"}}, Sticky, "port"},
		{"empty model", []Spec{{URL: "http://vllm", Models: []string{""}}}, Sticky, "empty model"},
		{"duplicate", []Spec{{URL: "http://vllm:8000"}, {URL: "http://VLLM:8000/"}}, Sticky, "same replica"},
		{"duplicate default port", []Spec{{URL: "https://vllm"}, {URL: "HTTPS://vllm:443"}}, Sticky, "same replica"},
		{"routing", specs(1), "random", `"sticky", "least-loaded"`},
		{"password", []Spec{{URL: "ftp://user:hunter2@vllm"}}, Sticky, "user:xxxxx@vllm"},
		{"password v1", []Spec{{URL: "http://user:hunter2@vllm/v1"}}, Sticky, "user:xxxxx@vllm"},
		{"password unparsable", []Spec{{URL: "http://user:hunter2@vllm:port"}}, Sticky, "user:xxxxx@vllm"},
		{"password duplicate", []Spec{{URL: "http://u:hunter2@vllm"}, {URL: "http://v:hunter2@vllm"}}, Sticky, "same replica"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.specs, tc.routing, Options{})
			if err == nil {
				t.Fatal("New accepted it")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows the password", err)
			}
			s := mustNew(t, specs(1), Sticky, Options{})
			if err := s.Replace(tc.specs, tc.routing); err == nil {
				t.Error("Replace accepted it")
			}
		})
	}

	// And some that are fine.
	for _, sp := range [][]Spec{
		{{URL: "http://vllm:8000"}},
		{{URL: "https://vllm/"}},
		{{URL: "http://[::1]:8000/pool/v1x"}},
		{{URL: "http://vllm:8000/a"}, {URL: "http://vllm:8000/b"}, {URL: "http://vllm:8001"}},
	} {
		if _, err := New(sp, "", Options{}); err != nil {
			t.Errorf("New(%v): %v", sp, err)
		}
	}
}

func TestParseRouting(t *testing.T) {
	for in, want := range map[string]Routing{"": Sticky, "sticky": Sticky, "least-loaded": LeastLoaded} {
		if got, err := ParseRouting(in); err != nil || got != want {
			t.Errorf("ParseRouting(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Sticky", "least_loaded", "round-robin"} {
		if _, err := ParseRouting(in); err == nil {
			t.Errorf("ParseRouting(%q) accepted it", in)
		}
	}
}

func TestOwns(t *testing.T) {
	s := mustNew(t, []Spec{
		{URL: "http://vllm-a:8000"},
		{URL: "http://VLLM-B/pool"},
		{URL: "https://u:p@vllm-c"},
		{URL: "http://[fe80::1]:9000"},
	}, Sticky, Options{})
	tests := []struct {
		url  string
		want bool
	}{
		{"http://vllm-a:8000/v1/chat/completions", true},
		{"http://VLLM-A:8000/x", true},
		{"http://vllm-a/x", false},
		{"http://vllm-a:8001/x", false},
		{"http://vllm-b/v1/models", true},
		{"http://vllm-b:80/v1/models", true},
		{"http://vllm-b:8080/v1/models", false},
		{"https://vllm-c/v1", true},
		{"http://vllm-c:443/v1", true}, // host and port only
		{"https://vllm-c:8443/v1", false},
		{"http://[FE80::1]:9000/", true},
		{"http://evil.example/v1", false},
		{"http://evil.example:8000/v1", false},
	}
	for _, tc := range tests {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Owns(u); got != tc.want {
			t.Errorf("Owns(%s) = %v, want %v", tc.url, got, tc.want)
		}
	}
	if s.Owns(nil) {
		t.Error("Owns(nil)")
	}
}

func TestReplicaAccessors(t *testing.T) {
	s := mustNew(t, []Spec{{URL: "HTTP://User:Secret@VLLM:8000/Pool/"}}, Sticky, Options{})
	r := s.Replicas()[0]
	if got, want := r.URL().String(), "http://User:Secret@vllm:8000/Pool"; got != want {
		t.Errorf("URL() = %s, want %s", got, want)
	}
	r.URL().Path = "/mutated"
	if r.URL().Path != "/Pool" {
		t.Error("changing URL()'s result changed the replica")
	}
	if r.Name() != "vllm:8000/Pool" { // the path keeps names unique in a set
		t.Errorf("Name() = %q", r.Name())
	}
	if st := s.State(); st[0].URL != "http://User:xxxxx@vllm:8000/Pool" {
		t.Errorf("State URL = %q, want the password redacted", st[0].URL)
	}
	s.Replicas()[0] = nil
	if s.Replicas()[0] == nil {
		t.Error("Replicas returned the set's own slice")
	}
}

// TestConcurrentUse gives the race detector every method at once.
func TestConcurrentUse(t *testing.T) {
	srvs := []*healthServer{newHealthServer(t, ""), newHealthServer(t, ""), newHealthServer(t, "")}
	all := []Spec{{URL: srvs[0].URL}, {URL: srvs[1].URL}, {URL: srvs[2].URL, Models: []string{"m"}}}
	s := mustNew(t, all, Sticky, Options{ProbeInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil && i < 2000; i++ {
				r, err := s.Pick(fmt.Sprintf("ro-%d", i%37), []string{"", "m"}[i%2])
				if err != nil {
					t.Error(err)
					return
				}
				r.Acquire()
				if i%50 == g {
					r.ReportFailure(errors.New("refused"))
				}
				_ = r.Serves("m")
				r.Release()
			}
		})
	}
	wg.Go(func() {
		for i := range 50 {
			sp := all
			if i%2 == 1 {
				sp = all[1:]
			}
			if err := s.Replace(sp, []Routing{Sticky, LeastLoaded}[i%2]); err != nil {
				t.Error(err)
			}
			s.Probe(ctx)
			_ = s.State()
			_ = s.Ready()
			_ = s.Owns(&url.URL{Host: "127.0.0.1"})
		}
	})
	wg.Wait()
	for _, r := range s.Replicas() {
		if n := r.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight after every call ended", r.Name(), n)
		}
	}
}

func BenchmarkPick(b *testing.B) {
	s := mustNew(b, specs(4), Sticky, Options{})
	ids := rolloutIDs(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r, err := s.Pick(ids[i&1023], "")
		if err != nil || r == nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkPickLeastLoaded(b *testing.B) {
	s := mustNew(b, specs(4), LeastLoaded, Options{})
	b.ReportAllocs()
	for b.Loop() {
		r, err := s.Pick("", "")
		if err != nil {
			b.Fatal(err)
		}
		r.Acquire()
		r.Release()
	}
}
