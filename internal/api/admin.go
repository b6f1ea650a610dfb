package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/upstream"
)

// Control is what the admin routes act on: the trainer's levers around a
// weight sync (pause, drain, policy version) and the replica set.
type Control interface {
	Pause(retryAfter time.Duration, reason string)
	Resume()
	// Drain waits until no traced call is in flight, or ctx ends.
	Drain(ctx context.Context) error
	SetPolicyVersion(ctx context.Context, version string) error
	ReplaceUpstreams(specs []upstream.Spec, routing upstream.Routing) error
}

// maxAdminBody bounds the JSON bodies of the admin routes.
const maxAdminBody = 1 << 20

func (a *API) adminRoutes() {
	a.mux.Handle("POST /admin/pause", a.guard(a.pause))
	a.mux.Handle("POST /admin/resume", a.guard(func(w http.ResponseWriter, r *http.Request) {
		a.cfg.Control.Resume()
		writeJSON(w, http.StatusOK, a.cfg.State(r.Context()))
	}))
	a.mux.Handle("PUT /admin/policy-version", a.guard(a.policyVersion))
	a.mux.Handle("PUT /admin/upstreams", a.guard(a.upstreams))
}

// pause: POST /admin/pause {"retry_after_seconds": 5, "reason": "weight
// sync", "drain_seconds": 60}. With drain_seconds the answer waits until
// the calls in flight have finished (or that long), so one request both
// stops traffic and tells the trainer it may sync.
func (a *API) pause(w http.ResponseWriter, r *http.Request) {
	var body struct {
		RetryAfter float64 `json:"retry_after_seconds"`
		Reason     string  `json:"reason"`
		Drain      float64 `json:"drain_seconds"`
	}
	if !readJSON(w, r, &body, true) {
		return
	}
	if body.RetryAfter < 0 || body.RetryAfter > 3600 || body.Drain < 0 || body.Drain > 3600 {
		httperr.Write(w, http.StatusBadRequest, "retry_after_seconds and drain_seconds must be between 0 and 3600")
		return
	}
	// 0 leaves the default to the proxy.
	a.cfg.Control.Pause(time.Duration(body.RetryAfter*float64(time.Second)), body.Reason)
	if body.Drain > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), time.Duration(body.Drain*float64(time.Second)))
		err := a.cfg.Control.Drain(ctx)
		cancel()
		if err != nil && r.Context().Err() != nil {
			return // the trainer gave up waiting
		}
	}
	writeJSON(w, http.StatusOK, a.cfg.State(r.Context()))
}

// policyVersion: PUT /admin/policy-version {"version": "step-12"}; "" clears.
func (a *API) policyVersion(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Version *string `json:"version"`
	}
	if !readJSON(w, r, &body, false) {
		return
	}
	if body.Version == nil || len(*body.Version) > 256 {
		httperr.Write(w, http.StatusBadRequest, `want {"version": "<at most 256 characters>"}`)
		return
	}
	if err := a.cfg.Control.SetPolicyVersion(r.Context(), *body.Version); err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"policy_version": *body.Version})
}

// upstreams: PUT /admin/upstreams {"upstreams": [{"url", "models"}],
// "routing": "sticky"}: replaces the replica set until the next reload.
func (a *API) upstreams(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Upstreams []upstream.Spec `json:"upstreams"`
		Routing   string          `json:"routing"`
	}
	if !readJSON(w, r, &body, false) {
		return
	}
	routing, err := upstream.ParseRouting(body.Routing)
	if err == nil {
		err = a.cfg.Control.ReplaceUpstreams(body.Upstreams, routing)
	}
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a.cfg.State(r.Context()))
}

// readJSON decodes a small JSON body into v, answering 400 itself when it
// cannot; an empty body is fine when optional.
func readJSON(w http.ResponseWriter, r *http.Request, v any, optional bool) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAdminBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) && optional {
		return true
	}
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, fmt.Sprintf("request body: %v", err))
		return false
	}
	return true
}
