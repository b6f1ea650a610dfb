package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/store"
)

// A collector outage longer than --retention loses no span: the sidecar
// holds the unshipped records past their retention (and says so in
// /admin/state and /metrics), ships every one when the collector takes data
// again, and only then lets them go.
func TestOutageLongerThanRetention(t *testing.T) {
	received, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer received.Close()
	sink := httptest.NewServer(exporter.NewReceiver(received, 64<<20, zerolog.Nop()))
	defer sink.Close()
	target, _ := url.Parse(sink.URL)
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

	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--data", t.TempDir(), "--retention", "2s", "--otlp-endpoint", collector.URL)
	rollouts := []string{"h1", "h2"}
	const calls = 5
	for _, rid := range rollouts {
		for i := range calls {
			body := fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"call %d"}],"stream":%v}`, simModel, i, i%2 == 0)
			resp, err := http.Post(sc.url+"/rollout/"+rid+"/attempt/0/v1/chat/completions", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("call: %d", resp.StatusCode)
			}
		}
	}

	// Down for well over the retention: the records are held, and shown.
	var st struct {
		Store struct {
			HeldRecords   uint64  `json:"held_records"`
			HeldOldestAge float64 `json:"held_oldest_age_seconds"`
		} `json:"store"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for getJSON(t, sc.url+"/admin/state", &st); st.Store.HeldRecords < calls*2 || st.Store.HeldOldestAge < 3; getJSON(t, sc.url+"/admin/state", &st) {
		if time.Now().After(deadline) {
			t.Fatalf("records not shown held: %+v", st.Store)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if m := metricsText(t, sc); !strings.Contains(m, fmt.Sprintf("tokentap_store_held_records %d", calls*2)) || !strings.Contains(m, "tokentap_store_commit_duration_seconds_bucket") {
		t.Errorf("/metrics does not show the held records or the commit histogram:\n%s", grepLines(m, "tokentap_store"))
	}

	refusing.Store(false)
	waitDrained(t, sc)
	for _, rid := range rollouts {
		recs, err := received.Records(context.Background(), rid, "0")
		if err != nil {
			t.Fatal(err)
		}
		seqs := map[uint64]bool{}
		for _, r := range recs {
			seqs[r.Seq] = true
		}
		for seq := uint64(1); seq <= calls; seq++ {
			if !seqs[seq] {
				t.Errorf("rollout %s: call %d never reached the collector (got %d records)", rid, seq, len(recs))
			}
		}
	}
	// Shipped and past retention: now they go.
	for getJSON(t, sc.url+"/admin/state", &st); st.Store.HeldRecords > 0; getJSON(t, sc.url+"/admin/state", &st) {
		if time.Now().After(deadline) {
			t.Fatalf("shipped records never deleted: %+v", st.Store)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func metricsText(t *testing.T, sc *sidecar) string {
	t.Helper()
	resp, err := http.Get(sc.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
