package main

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

// holdingSim is a simulator that, while hold is set, holds each stream
// before event at: it tells held, then waits for release or the client.
type holdingSim struct {
	url     string
	hold    atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func newHoldingSim(t *testing.T, at int) *holdingSim {
	h := &holdingSim{held: make(chan struct{}, 1), release: make(chan struct{})}
	h.url = newSim(t, vllmsim.Options{BeforeEvent: func(ctx context.Context, i int) {
		if i != at || !h.hold.Load() {
			return
		}
		h.held <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
		}
	}}).URL
	return h
}

// sendChat sends one chat call of a rollout attempt and returns the answer.
func sendChat(ctx context.Context, t *testing.T, base, rid, aid string, stream bool) (*http.Response, error) {
	t.Helper()
	body := `{"model":"` + simModel + `","messages":[{"role":"user","content":"hi"}],"stream":` + map[bool]string{true: "true", false: "false"}[stream] + `}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/rollout/"+rid+"/attempt/"+aid+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

func chatOK(t *testing.T, base, rid, aid string) {
	t.Helper()
	resp, err := sendChat(context.Background(), t, base, rid, aid, false)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("call: %d %s", resp.StatusCode, b)
	}
}

// latestView is the part of the calls and triplets views of "latest" that
// the tests read.
type latestView struct {
	AttemptID string `json:"attempt_id"`
	Complete  bool   `json:"complete"`
	InFlight  int    `json:"in_flight"`
	Calls     []struct {
		SequenceID uint64 `json:"sequence_id"`
	} `json:"calls"`
	Triplets []struct {
		SequenceID  uint64   `json:"sequence_id"`
		Reward      *float64 `json:"reward"`
		MatchedPast []uint64 `json:"matched_past"`
	} `json:"triplets"`
}

// An attempt whose first call is still streaming is the latest one: its
// views say so (nothing recorded, one call in flight), then show the call
// once it is recorded.
func TestLatestSeesInFlightAttempt(t *testing.T) {
	sim := newHoldingSim(t, 1)
	sc := start(t, "--upstream", sim.url, "--data", t.TempDir())
	chatOK(t, sc.url, "ro", "0")

	sim.hold.Store(true)
	done := make(chan error, 1)
	go func() {
		resp, err := sendChat(context.Background(), t, sc.url, "ro", "1", true)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		done <- err
	}()
	<-sim.held

	var v latestView
	if status := getJSON(t, sc.url+"/api/v1/rollouts/ro/attempts/latest/calls", &v); status != 200 ||
		v.AttemptID != "1" || v.Complete || v.InFlight != 1 || v.Calls == nil || len(v.Calls) != 0 {
		t.Errorf("latest calls while attempt 1 streams: %d %+v", status, v)
	}
	v = latestView{}
	if status := getJSON(t, sc.url+"/api/v1/rollouts/ro/attempts/latest/triplets", &v); status != 200 ||
		v.AttemptID != "1" || v.InFlight != 1 || v.Triplets == nil || len(v.Triplets) != 0 {
		t.Errorf("latest triplets while attempt 1 streams: %d %+v", status, v)
	}
	v = latestView{}
	if status := getJSON(t, sc.url+"/api/v1/rollouts/ro/attempts/0/calls", &v); status != 200 || v.InFlight != 0 || len(v.Calls) != 1 {
		t.Errorf("attempt 0 while attempt 1 streams: %d %+v", status, v)
	}

	close(sim.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	v = latestView{}
	if status := getJSON(t, sc.url+"/api/v1/rollouts/ro/attempts/latest/calls", &v); status != 200 ||
		v.AttemptID != "1" || v.InFlight != 0 || len(v.Calls) != 1 {
		t.Errorf("latest calls once recorded: %d %+v", status, v)
	}
}

// A reward posted after a turn the agent cancelled goes, by the matching
// rule, to the turn before; its triplet names the cancelled call.
func TestRewardMatchedPastCancelledTurn(t *testing.T) {
	sim := newHoldingSim(t, 1)
	sc := start(t, "--upstream", sim.url, "--data", t.TempDir())
	chatOK(t, sc.url, "rw", "0") // sequence id 1

	sim.hold.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if resp, err := sendChat(ctx, t, sc.url, "rw", "0", true); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	<-sim.held
	cancel() // the agent gives up on turn 2
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var v callsView
		getJSON(t, sc.url+"/api/v1/rollouts/rw/attempts/0/calls", &v)
		if len(v.Calls) == 2 {
			if v.Calls[1].Status != "cancelled" {
				t.Fatalf("turn 2 recorded as %q", v.Calls[1].Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cancelled call was not recorded: %+v", v)
		}
		time.Sleep(20 * time.Millisecond)
	}

	resp, err := http.Post(sc.url+"/rollout/rw/attempt/0/reward", "application/json", strings.NewReader(`{"value":1}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("reward: %d", resp.StatusCode)
	}
	var v latestView
	getJSON(t, sc.url+"/api/v1/rollouts/rw/attempts/0/triplets", &v)
	if len(v.Triplets) != 1 || v.Triplets[0].SequenceID != 1 || v.Triplets[0].Reward == nil || *v.Triplets[0].Reward != 1 ||
		!reflect.DeepEqual(v.Triplets[0].MatchedPast, []uint64{2}) {
		t.Errorf("triplets: %+v", v.Triplets)
	}
}
