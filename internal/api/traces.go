package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// maxPullBytes bounds the span data of one pull answer.
const maxPullBytes = 16 << 20

// traces serves OTLP TracesData for trainers that pull spans:
// GET /api/v1/traces?rollout_id=&attempt_id=&after=&limit=&wait=.
// Protobuf by default, OTLP/JSON for Accept: application/json. The
// X-Next-Cursor header is the after of the next pull, so a trainer tails the
// store by pulling again with it; wait (up to 60s) holds an empty answer
// until something new is committed.
func (a *API) traces(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rid, aid := q.Get("rollout_id"), q.Get("attempt_id")
	after, err := uintParam(q.Get("after"))
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, "after must be a cursor (an unsigned integer)")
		return
	}
	limit, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	var wait time.Duration
	if s := q.Get("wait"); s != "" {
		if wait, err = time.ParseDuration(s); err != nil || wait < 0 || wait > time.Minute {
			httperr.Write(w, http.StatusBadRequest, "wait must be a duration up to 60s, like 30s")
			return
		}
	}
	if aid != "" && rid == "" {
		httperr.Write(w, http.StatusBadRequest, "attempt_id needs rollout_id")
		return
	}
	if rid != "" {
		if err := rollout.ValidateID("rollout_id", rid); err != nil {
			httperr.Write(w, http.StatusBadRequest, err.Error())
			return
		}
		if aid == "latest" {
			t, status, err := a.resolve(r.Context(), rid, aid, false)
			if err != nil {
				a.failStatus(w, status, err)
				return
			}
			aid = t.at.AttemptID
		}
	}

	recs, next, err := a.cfg.Store.Scan(r.Context(), after, limit, maxPullBytes, rid, aid)
	if len(recs) == 0 && err == nil && wait > 0 {
		recs, next, err = a.waitForRecords(r.Context(), wait, after, limit, rid, aid)
	}
	if err != nil {
		a.fail(w, err)
		return
	}
	f := exporter.Protobuf
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		f = exporter.JSON
	}
	body, err := exporter.EncodeTracesFrom(r.Context(), recs, a.cfg.Store, f)
	if err != nil {
		a.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("X-Next-Cursor", strconv.FormatUint(next, 10))
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

// waitForRecords holds a pull until records after the cursor are committed
// or wait passes.
func (a *API) waitForRecords(ctx context.Context, wait time.Duration, after uint64, limit int, rid, aid string) ([]store.Record, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	seen := a.cfg.Store.Cursor()
	for {
		if err := a.cfg.Store.WaitCommit(ctx, seen); err != nil {
			return nil, after, nil // nothing new in time: an empty answer
		}
		seen = a.cfg.Store.Cursor()
		recs, next, err := a.cfg.Store.Scan(ctx, after, limit, maxPullBytes, rid, aid)
		if err != nil || len(recs) > 0 {
			return recs, next, err
		}
	}
}

func uintParam(s string) (uint64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}
