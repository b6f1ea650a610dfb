package intercept

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/rollout"
)

// attempts tracks the calls in flight per attempt, so that completing an
// attempt can wait for them and refuse newcomers meanwhile.
type attempts struct {
	mu sync.Mutex
	m  map[rollout.Key]*attemptState
}

type attemptState struct {
	inflight   int
	since      time.Time // when inflight last rose from 0, for "latest"
	completing bool
	drained    chan struct{} // closed when inflight drops to 0 while completing
}

var errCompleting = errors.New("attempt is being completed")

func (a *attempts) init() { a.m = map[rollout.Key]*attemptState{} }

// begin counts a call or reward of key in, unless the attempt is being
// completed. (A completed attempt is refused by the sequence allocator.)
func (a *attempts) begin(ctx context.Context, rec *exporter.Recorder, key rollout.Key) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.m[key]
	if st != nil && st.completing {
		return fmt.Errorf("%w: attempt %s of rollout %s is being completed", errCompleting, key.AttemptID, key.RolloutID)
	}
	if st == nil {
		st = &attemptState{}
		a.m[key] = st
	}
	if st.inflight == 0 {
		st.since = time.Now()
	}
	st.inflight++
	return nil
}

// inFlight lists the attempts of rollout rid with calls or rewards in
// flight. It walks every attempt in flight: a few thousand at most.
func (a *attempts) inFlight(rid string) []rollout.AttemptInFlight {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []rollout.AttemptInFlight
	for key, st := range a.m {
		if key.RolloutID == rid && st.inflight > 0 {
			out = append(out, rollout.AttemptInFlight{RolloutID: rid, AttemptID: key.AttemptID, Count: st.inflight, Since: st.since})
		}
	}
	return out
}

func (a *attempts) end(key rollout.Key) {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := a.m[key]
	if st == nil {
		return
	}
	st.inflight--
	if st.inflight > 0 {
		return
	}
	if st.completing {
		if st.drained != nil {
			close(st.drained)
			st.drained = nil
		}
		return
	}
	delete(a.m, key)
}

// complete refuses new calls of key, waits for those in flight to be
// recorded, then runs mark. Concurrent completes of one attempt: the
// first wins, the others get errCompleting.
func (a *attempts) complete(ctx context.Context, key rollout.Key, mark func() error) error {
	a.mu.Lock()
	st := a.m[key]
	if st != nil && st.completing {
		a.mu.Unlock()
		return fmt.Errorf("%w: attempt %s of rollout %s is being completed", errCompleting, key.AttemptID, key.RolloutID)
	}
	if st == nil {
		st = &attemptState{}
		a.m[key] = st
	}
	st.completing = true
	var drained chan struct{}
	if st.inflight > 0 {
		drained = make(chan struct{})
		st.drained = drained
	}
	a.mu.Unlock()

	defer func() {
		a.mu.Lock()
		st.completing = false
		if st.inflight == 0 {
			delete(a.m, key)
		}
		a.mu.Unlock()
	}()
	if drained != nil {
		select {
		case <-drained:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return mark()
}

// maxRewardBody bounds a reward request's body.
const maxRewardBody = 64 << 10

// serveReward records a reward: POST .../reward {"value": 1.0, "name": "primary"}.
func (p *Proxy) serveReward(w http.ResponseWriter, r *http.Request, key rollout.Key) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httperr.Write(w, http.StatusMethodNotAllowed, "reward takes POST")
		return
	}
	var body struct {
		Value       *float64 `json:"value"`
		Name        string   `json:"name"`
		SequenceID  *int64   `json:"sequence_id"`
		ChoiceIndex *int64   `json:"choice_index"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRewardBody))
	if err := dec.Decode(&body); err != nil {
		httperr.Write(w, http.StatusBadRequest, "reward body must be JSON like {\"value\": 1.0, \"name\": \"primary\"}: "+err.Error())
		return
	}
	if body.Value == nil || math.IsNaN(*body.Value) || math.IsInf(*body.Value, 0) {
		httperr.Write(w, http.StatusBadRequest, "reward needs a finite number \"value\"")
		return
	}
	if body.Name == "" {
		body.Name = "primary"
	}
	targetSeq, targetChoice := uint64(0), -1
	if body.SequenceID != nil {
		if *body.SequenceID < 1 {
			httperr.Write(w, http.StatusBadRequest, "reward \"sequence_id\" must name a call: an integer >= 1")
			return
		}
		targetSeq = uint64(*body.SequenceID)
	}
	if body.ChoiceIndex != nil {
		if targetSeq == 0 {
			httperr.Write(w, http.StatusBadRequest, "reward \"choice_index\" needs \"sequence_id\": the call whose choice it scores")
			return
		}
		if *body.ChoiceIndex < 0 || *body.ChoiceIndex > math.MaxInt32 {
			httperr.Write(w, http.StatusBadRequest, "reward \"choice_index\" must be an integer >= 0")
			return
		}
		targetChoice = int(*body.ChoiceIndex)
	}
	if err := p.cfg.Recorder.Writable(); err != nil {
		p.refused("disk_full")
		httperr.Write(w, http.StatusInsufficientStorage, "tokentap cannot record the reward now: "+err.Error())
		return
	}
	if err := p.attempts.begin(r.Context(), p.cfg.Recorder, key); err != nil {
		httperr.Write(w, statusOf(err), err.Error())
		return
	}
	defer p.attempts.end(key)
	seq, err := p.cfg.Recorder.NextSequence(r.Context(), key)
	if err == nil && targetSeq >= seq {
		httperr.Write(w, http.StatusBadRequest, fmt.Sprintf("reward \"sequence_id\" %d names no call yet: rollout %s is at %d", targetSeq, key.RolloutID, seq-1))
		return
	}
	if err == nil {
		err = p.cfg.Recorder.RecordReward(context.WithoutCancel(r.Context()), &exporter.Reward{
			Key: key, Seq: seq, Name: body.Name, Value: *body.Value, Time: time.Now(),
			TargetSeq: targetSeq, TargetChoice: targetChoice,
		})
	}
	if err != nil {
		status := statusOf(err)
		if status == http.StatusConflict {
			httperr.Write(w, status, fmt.Sprintf("attempt %s of rollout %s is complete", key.AttemptID, key.RolloutID))
			return
		}
		p.log.Error().Err(err).Str("rollout_id", key.RolloutID).Msg("record reward")
		httperr.Write(w, status, "tokentap could not record the reward: "+err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"sequence_id": seq})
}

// serveComplete marks an attempt complete once its calls in flight are
// recorded: POST .../complete → {"calls": N, "last_sequence_id": M}.
func (p *Proxy) serveComplete(w http.ResponseWriter, r *http.Request, key rollout.Key) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		httperr.Write(w, http.StatusMethodNotAllowed, "complete takes POST")
		return
	}
	var done exporter.Completion
	err := p.attempts.complete(r.Context(), key, func() error {
		var err error
		done, err = p.cfg.Recorder.Complete(context.WithoutCancel(r.Context()), key)
		return err
	})
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, map[string]any{"calls": done.Calls, "last_sequence_id": done.LastSeq})
	case errors.Is(err, exporter.ErrAttemptComplete):
		httperr.Write(w, http.StatusConflict, fmt.Sprintf("attempt %s of rollout %s is already complete", key.AttemptID, key.RolloutID))
	case errors.Is(err, errCompleting):
		httperr.Write(w, http.StatusConflict, err.Error())
	case r.Context().Err() != nil:
		// The client went away while calls were still in flight.
	default:
		p.log.Error().Err(err).Str("rollout_id", key.RolloutID).Msg("complete attempt")
		httperr.Write(w, http.StatusServiceUnavailable, "tokentap could not complete the attempt: "+err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httperr.Write(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
