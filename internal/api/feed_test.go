package api

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

func TestFeedParameters(t *testing.T) {
	srv, _, _ := setup(t, "")
	for _, tc := range []struct{ query, want string }{
		{"after=x", "after must be a cursor"},
		{"after=-1", "after must be a cursor"},
		{"limit=0", "limit must be an integer from 1 to 1000"},
		{"limit=1001", "limit must be an integer from 1 to 1000"},
		{"wait=2m", "wait must be a duration up to 60s"},
		{"wait=soon", "wait must be a duration up to 60s"},
		{"wait=-1s", "wait must be a duration up to 60s"},
	} {
		status, body := get(t, srv.URL+"/api/v1/trajectories?"+tc.query)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Code    int    `json:"code"`
			} `json:"error"`
		}
		if status != 400 || json.Unmarshal(body, &e) != nil || !strings.Contains(e.Error.Message, tc.want) || e.Error.Code != 400 {
			t.Errorf("%s: %d %s", tc.query, status, body)
		}
	}
}

// The feed pages through completed attempts in completion order, never an
// attempt that is not complete; an empty page keeps the cursor.
func TestFeedPages(t *testing.T) {
	srv, rec, st := setup(t, "")
	ctx := context.Background()
	for _, rid := range []string{"b", "a", "c", "open"} {
		key := rollout.Key{RolloutID: rid, AttemptID: "0"}
		if err := rec.RecordCall(ctx, call(key, 1, true, exporter.StatusOK, []int64{1, 2}, tokenids.Choice{TokenIDs: []int64{3}, FinishReason: "stop"})); err != nil {
			t.Fatal(err)
		}
		if rid != "open" {
			if _, err := st.Complete(ctx, rid, "0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	type page struct {
		Attempts []trajectoriesView `json:"attempts"`
		Next     string             `json:"next"`
	}
	var got, cursors []string
	after := "0"
	for range 4 {
		status, body := get(t, srv.URL+"/api/v1/trajectories?limit=2&after="+after)
		var p page
		if status != 200 || json.Unmarshal(body, &p) != nil {
			t.Fatalf("after %s: %d %s", after, status, body)
		}
		for _, v := range p.Attempts {
			if !v.Complete || len(v.Trajectories) != 1 || v.Trajectories[0].FinishReason != "stop" {
				t.Errorf("%s: %+v", v.RolloutID, v)
			}
			got = append(got, v.RolloutID)
			cursors = append(cursors, v.Cursor)
		}
		if len(p.Attempts) == 0 && p.Next != after {
			t.Errorf("an empty page moved the cursor from %s to %s", after, p.Next)
		}
		after = p.Next
	}
	if strings.Join(got, ",") != "b,a,c" || after != "3" {
		t.Errorf("feed gave %v, cursor %s; want b,a,c and 3", got, after)
	}
	// Each attempt says the cursor to resume after it with.
	if strings.Join(cursors, ",") != "1,2,3" {
		t.Errorf("attempts' cursors %v, want 1,2,3", cursors)
	}
	status, body := get(t, srv.URL+"/api/v1/trajectories?after="+cursors[0])
	var p page
	if status != 200 || json.Unmarshal(body, &p) != nil || len(p.Attempts) != 2 || p.Attempts[0].RolloutID != "a" {
		t.Errorf("after the first attempt's cursor: %d %s", status, body)
	}
}

// The drift counter diagnoses each attempt once it completes: the summary
// (and so the rollouts list) holds the counts by cause, and OnDrift hears
// them. Without a decoder the cause is the structural one.
func TestCountDrift(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var mu sync.Mutex
	heard := map[string]int{}
	a := New(Config{Store: st, Logger: zerolog.Nop(), OnDrift: func(cause string, n int) {
		mu.Lock()
		heard[cause] += n
		mu.Unlock()
	}})
	srv := httptest.NewServer(a)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.CountDrift(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	rec := exporter.NewRecorder(st, true, "test")
	key := rollout.Key{RolloutID: "d", AttemptID: "0"}
	first := []int64{10, 11, 12, 13}
	// The model's end-of-turn token 99 comes back as 98: the second prompt
	// parts from the first context at its last token.
	calls := []*exporter.Call{
		call(key, 1, true, exporter.StatusOK, first, tokenids.Choice{TokenIDs: []int64{20, 99}}),
		call(key, 2, true, exporter.StatusOK, []int64{10, 11, 12, 13, 20, 98, 30, 31}, tokenids.Choice{TokenIDs: []int64{40}}),
	}
	for _, c := range calls {
		if err := rec.RecordCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Complete(ctx, "d", "0"); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Rollouts []struct {
			Drifted  int `json:"drifted"`
			Attempts []struct {
				Drift map[string]int `json:"drift"`
			} `json:"attempts"`
		} `json:"rollouts"`
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body := get(t, srv.URL+"/api/v1/rollouts")
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Rollouts) == 1 && list.Rollouts[0].Attempts[0].Drift != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no drift counted: %s", body)
		}
	}
	if r := list.Rollouts[0]; r.Drifted != 1 || r.Attempts[0].Drift["eos_rerendered"] != 1 {
		t.Errorf("rollouts list: %+v", r)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(heard) != 1 || heard["eos_rerendered"] != 1 {
		t.Errorf("OnDrift heard %v", heard)
	}
}
