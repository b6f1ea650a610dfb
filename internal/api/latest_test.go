package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// fixedInFlight is what a proxy would report: a fixed list of attempts with
// calls in flight, so that the test decides when each one began.
type fixedInFlight []rollout.AttemptInFlight

func (f fixedInFlight) InFlightAttempts(rid string) []rollout.AttemptInFlight {
	var out []rollout.AttemptInFlight
	for _, a := range f {
		if a.RolloutID == rid {
			out = append(out, a)
		}
	}
	return out
}

// latest names the attempt begun last, counting the attempts the store has
// nothing of yet but whose calls are in flight.
func TestLatestCountsInFlight(t *testing.T) {
	// call() starts call n at base+n ns.
	base := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	flight := func(rid, aid string, n int, since time.Time) rollout.AttemptInFlight {
		return rollout.AttemptInFlight{RolloutID: rid, AttemptID: aid, Count: n, Since: since}
	}
	key := func(rid, aid string) rollout.Key { return rollout.Key{RolloutID: rid, AttemptID: aid} }
	type view struct {
		AttemptID string            `json:"attempt_id"`
		Complete  bool              `json:"complete"`
		InFlight  int               `json:"in_flight"`
		Calls     []json.RawMessage `json:"calls"`
		Triplets  []json.RawMessage `json:"triplets"`
	}
	tests := []struct {
		name     string
		rid      string
		recorded []rollout.Key // one call each, sequence ids 1, 2, ...
		flights  fixedInFlight
		aid      string // the attempt asked for
		status   int
		want     view
	}{
		{"recorded only", "a", []rollout.Key{key("a", "0"), key("a", "1")}, nil, "latest", 200,
			view{AttemptID: "1", Calls: []json.RawMessage{nil}}},
		{"an attempt in flight after the recorded ones", "b", []rollout.Key{key("b", "0")},
			fixedInFlight{flight("b", "1", 2, base.Add(time.Hour))}, "latest", 200,
			view{AttemptID: "1", InFlight: 2, Calls: []json.RawMessage{}}},
		{"an older attempt's call still in flight", "c", []rollout.Key{key("c", "1")},
			fixedInFlight{flight("c", "0", 1, base.Add(-time.Hour))}, "latest", 200,
			view{AttemptID: "1", Calls: []json.RawMessage{nil}}},
		{"the recorded latest also has calls in flight", "d", []rollout.Key{key("d", "0"), key("d", "1")},
			fixedInFlight{flight("d", "1", 3, base.Add(time.Hour))}, "latest", 200,
			view{AttemptID: "1", InFlight: 3, Calls: []json.RawMessage{nil}}},
		{"two attempts only in flight", "e", nil,
			fixedInFlight{flight("e", "x", 1, base), flight("e", "y", 1, base.Add(time.Second)), flight("other", "z", 1, base.Add(time.Hour))}, "latest", 200,
			view{AttemptID: "y", InFlight: 1, Calls: []json.RawMessage{}}},
		{"an attempt named that is only in flight", "f", []rollout.Key{key("f", "0")},
			fixedInFlight{flight("f", "1", 1, base.Add(-time.Hour))}, "1", 200,
			view{AttemptID: "1", InFlight: 1, Calls: []json.RawMessage{}}},
		{"an attempt neither recorded nor in flight", "g", []rollout.Key{key("g", "0")}, nil, "1", 404, view{}},
		{"a rollout neither recorded nor in flight", "h", nil, fixedInFlight{flight("other", "0", 1, base)}, "latest", 404, view{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rec := exporter.NewRecorder(st, true, "test")
			for i, key := range tt.recorded {
				if err := rec.RecordCall(context.Background(), call(key, uint64(i+1), true, exporter.StatusOK, []int64{1}, tokenids.Choice{TokenIDs: []int64{2}})); err != nil {
					t.Fatal(err)
				}
			}
			srv := httptest.NewServer(New(Config{Store: st, InFlight: tt.flights, Logger: zerolog.Nop()}))
			defer srv.Close()
			for _, v := range []string{"calls", "triplets"} {
				status, body := get(t, srv.URL+"/api/v1/rollouts/"+tt.rid+"/attempts/"+tt.aid+"/"+v)
				if status != tt.status {
					t.Fatalf("%s: %d %s", v, status, body)
				}
				if status != 200 {
					continue
				}
				var got view
				if err := json.Unmarshal(body, &got); err != nil {
					t.Fatal(err)
				}
				want := tt.want
				if v == "calls" {
					for i := range got.Calls {
						got.Calls[i] = nil // the test compares how many
					}
				} else {
					want.Triplets, want.Calls = want.Calls, nil
					for i := range got.Triplets {
						got.Triplets[i] = nil
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s: got %+v, want %+v\n%s", v, got, want, body)
				}
			}
			if tt.aid != "latest" {
				return
			}
			// Pulling the spans of "latest" follows the same attempt.
			status, body := get(t, srv.URL+"/api/v1/traces?rollout_id="+tt.rid+"&attempt_id=latest", "Accept", "application/json")
			if status != tt.status {
				t.Fatalf("traces: %d %s", status, body)
			}
			if n := strings.Count(string(body), `"spanId"`); status == 200 && n != len(tt.want.Calls) {
				t.Errorf("traces of latest: %d spans, want %d\n%s", n, len(tt.want.Calls), body)
			}
		})
	}
}
