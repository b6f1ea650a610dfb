package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/store"
)

// The feed of completed attempts: GET /api/v1/trajectories?after=&limit=&wait=.
// Its cursor is a position in the store's completion log, so a trainer that
// tails it from 0 sees every completed attempt once, in completion order,
// across restarts of the sidecar.

// maxFeedBytes bounds one feed answer: views of long attempts are large.
// An answer holds at least one attempt, whatever its size.
const maxFeedBytes = 32 << 20

func (a *API) feed(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, err := uintParam(q.Get("after"))
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "after must be a cursor (an unsigned integer)")
		return
	}
	limit, err := intParam(r, "limit", 16, 1, 1000)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		if wait, err = parseWait(s); err != nil {
			httperr.Write(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	ndjson := strings.Contains(r.Header.Get("Accept"), "application/x-ndjson")

	entries, next, err := a.cfg.Store.Completions(r.Context(), after, limit)
	if err == nil && len(entries) == 0 && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		if a.cfg.Store.WaitCompletion(ctx, after) == nil {
			entries, next, err = a.cfg.Store.Completions(r.Context(), after, limit)
		}
		cancel()
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	var lines [][]byte
	size := 0
	for _, e := range entries {
		v, err := a.completedView(r.Context(), e)
		if err != nil {
			a.fail(w, err)
			return
		}
		v.Cursor = strconv.FormatUint(e.Position, 10)
		b, err := json.Marshal(v)
		if err != nil {
			a.fail(w, fmt.Errorf("encode the view of %s/%s: %w", e.RolloutID, e.AttemptID, err))
			return
		}
		if len(lines) > 0 && size+len(b) > maxFeedBytes {
			break
		}
		lines = append(lines, b)
		size += len(b)
		next = e.Position
	}
	if len(entries) == 0 {
		next = after
	}
	cursor := strconv.FormatUint(next, 10)
	w.Header().Set("X-Next-Cursor", cursor)
	if ndjson {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		for _, b := range lines {
			w.Write(append(b, '\n'))
		}
		return
	}
	body := make([]byte, 0, size+len(lines)+64)
	body = append(body, `{"attempts":[`...)
	for i, b := range lines {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, b...)
	}
	body = append(body, `],"next":`...)
	body = strconv.AppendQuote(body, cursor)
	body = append(body, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// completedView is the trajectories view of a completed attempt. An
// attempt whose records have expired since is answered with no
// trajectories rather than left out, so the cursor still moves past it.
func (a *API) completedView(ctx context.Context, e store.Completion) (trajectoriesView, error) {
	recs, err := a.cfg.Store.Records(ctx, e.RolloutID, e.AttemptID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return trajectoriesView{}, fmt.Errorf("read %s/%s: %w", e.RolloutID, e.AttemptID, err)
	}
	d, err := decode(recs)
	if err != nil {
		return trajectoriesView{}, fmt.Errorf("read %s/%s: %w", e.RolloutID, e.AttemptID, err)
	}
	t := target{at: store.AttemptSummary{AttemptID: e.AttemptID, Complete: true, CompletedAt: e.CompletedAt}, stored: len(recs) > 0, recs: recs}
	return a.trajectoriesOf(ctx, e.RolloutID, t, d), nil
}

// parseWait reads a wait parameter: a duration up to 60s ("30s"), or
// seconds ("30").
func parseWait(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseFloat(s, 64)
		if nerr != nil {
			return 0, errors.New("wait must be a duration up to 60s, like 30s")
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < 0 || d > time.Minute {
		return 0, errors.New("wait must be a duration up to 60s, like 30s")
	}
	return d, nil
}
