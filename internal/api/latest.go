package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// InFlight tells the API which attempts have calls or rewards begun and not
// yet recorded, which the store cannot know. The proxy implements it.
type InFlight interface {
	InFlightAttempts(rolloutID string) []rollout.AttemptInFlight
}

// target is the attempt a request names.
type target struct {
	at       store.AttemptSummary // only AttemptID set when nothing is stored
	stored   bool                 // the store holds records of the attempt
	recs     []store.Record       // read when asked for
	inFlight int                  // its calls and rewards in flight
}

// resolve finds the attempt aid of rollout rid, "latest" included, and
// reads its records when withRecords is set. On failure it gives the HTTP
// status to answer.
func (a *API) resolve(ctx context.Context, rid, aid string, withRecords bool) (target, int, error) {
	if err := rollout.ValidateID("rollout id", rid); err != nil {
		return target{}, http.StatusBadRequest, err
	}
	// In flight first, the store second: a call recorded in between is
	// then seen in the store, where the other order could miss it in both.
	var flights []rollout.AttemptInFlight
	if a.cfg.InFlight != nil {
		flights = a.cfg.InFlight.InFlightAttempts(rid)
	}
	sum, err := a.cfg.Store.Rollout(ctx, rid)
	known := err == nil
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return target{}, http.StatusInternalServerError, err
	}
	var t target
	found := false
	if aid == "latest" {
		t, found, err = a.latest(ctx, rid, sum, flights)
		if err != nil {
			return t, http.StatusInternalServerError, err
		}
	} else {
		for _, x := range sum.Attempts {
			if x.AttemptID == aid {
				t, found = target{at: x, stored: true}, true
			}
		}
		for _, f := range flights {
			if !found && f.AttemptID == aid {
				t, found = target{at: store.AttemptSummary{AttemptID: aid}}, true
			}
		}
	}
	if !found {
		if !known && len(flights) == 0 {
			return t, http.StatusNotFound, fmt.Errorf("unknown rollout %q", rid)
		}
		return t, http.StatusNotFound, fmt.Errorf("rollout %q has no attempt %q", rid, aid)
	}
	for _, f := range flights {
		if f.AttemptID == t.at.AttemptID {
			t.inFlight = f.Count
		}
	}
	if withRecords && t.stored && t.recs == nil {
		if t.recs, err = a.cfg.Store.Records(ctx, rid, t.at.AttemptID); err != nil {
			return t, http.StatusInternalServerError, err
		}
	}
	return t, 0, nil
}

// latest picks the attempt that started last, an attempt starting when its
// first call or reward began. Among attempts with records that is the one
// whose lowest sequence id is highest (ids are allocated as calls and
// rewards begin). An attempt with nothing recorded but calls in flight
// started when the first of those began; it is latest if that is after the
// start of the recorded latest (the start time of its lowest-sequence
// record). found is false when the rollout has no attempt at all.
func (a *API) latest(ctx context.Context, rid string, sum store.RolloutSummary, flights []rollout.AttemptInFlight) (t target, found bool, err error) {
	l, recorded := sum.Latest()
	x, pending := onlyInFlight(sum, flights)
	switch {
	case !recorded && !pending:
		return t, false, nil
	case !pending:
		return target{at: l, stored: true}, true, nil
	case !recorded:
		return target{at: store.AttemptSummary{AttemptID: x.AttemptID}}, true, nil
	}
	// The recorded latest's records are what its view shows anyway.
	recs, err := a.cfg.Store.Records(ctx, rid, l.AttemptID)
	if err != nil {
		return t, false, err
	}
	start, err := startOf(recs)
	if err != nil {
		return t, false, fmt.Errorf("attempt %q of rollout %q: %w", l.AttemptID, rid, err)
	}
	if x.Since.After(start) {
		return target{at: store.AttemptSummary{AttemptID: x.AttemptID}}, true, nil
	}
	return target{at: l, stored: true, recs: recs}, true, nil
}

// onlyInFlight returns, of the attempts in flight that the store holds
// nothing of, the one whose calls began last.
func onlyInFlight(sum store.RolloutSummary, flights []rollout.AttemptInFlight) (rollout.AttemptInFlight, bool) {
	var best rollout.AttemptInFlight
	ok := false
	for _, f := range flights {
		if slices.ContainsFunc(sum.Attempts, func(x store.AttemptSummary) bool { return x.AttemptID == f.AttemptID }) {
			continue
		}
		// Ties (the same clock reading) go to the greater id, so the
		// answer does not depend on the order flights come in.
		if !ok || cmp.Or(f.Since.Compare(best.Since), cmp.Compare(f.AttemptID, best.AttemptID)) > 0 {
			best, ok = f, true
		}
	}
	return best, ok
}

// startOf returns when the attempt's record with the lowest sequence id
// began; the zero time when there is none left (retention took them: the
// attempt is old).
func startOf(recs []store.Record) (time.Time, error) {
	if len(recs) == 0 {
		return time.Time{}, nil
	}
	first := slices.MinFunc(recs, func(a, b store.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	_, sp, err := exporter.DecodeRecord(first.Data)
	if err != nil {
		return time.Time{}, fmt.Errorf("record %d: %w", first.Cursor, err)
	}
	return time.Unix(0, int64(sp.StartTimeUnixNano)), nil
}
