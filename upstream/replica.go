package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Replica is one vLLM server of a Set. Its methods are safe for concurrent
// use. A Replica stays valid after Replace removes it from its Set, so that
// calls already on it can finish and be released.
type Replica struct {
	cfg *config

	u        *url.URL // normalised base URL; never modified
	key      string   // identity across Replace, and the rendezvous hash input
	seed     uint64   // FNV-1a state after hashing key and a NUL separator
	name     string
	redacted string
	hostname string // lower case, for Owns
	port     string // explicit or the scheme's default, for Owns

	healthURL      string
	healthRedacted string

	modelList atomic.Pointer[[]string] // swapped by Replace
	inFlight  atomic.Int64
	healthy   atomic.Bool
	lastOK    atomic.Int64 // unix nanoseconds of the last successful probe; 0: never

	// mu serialises health transitions, so that each is logged once even
	// when probes and failed calls race.
	mu    sync.Mutex
	fails int // consecutive failed probes
	log   zerolog.Logger
}

func newReplica(p parsedSpec, cfg *config) *Replica {
	health := *p.u
	health.Path += "/health"
	if health.RawPath != "" {
		health.RawPath += "/health"
	}
	r := &Replica{
		cfg:            cfg,
		u:              p.u,
		key:            p.key,
		seed:           fnvString(fnvOffset, p.key+"\x00"),
		name:           p.u.Host + strings.TrimSuffix(p.u.Path, "/"),
		redacted:       p.u.Redacted(),
		hostname:       strings.ToLower(p.u.Hostname()),
		port:           p.u.Port(),
		healthURL:      health.String(),
		healthRedacted: health.Redacted(),
		log:            cfg.log.With().Str("upstream", p.u.Host).Logger(),
	}
	if r.port == "" {
		r.port = defaultPort(p.u.Scheme)
	}
	r.setModels(p.models)
	r.healthy.Store(true)
	return r
}

// URL returns a copy of the replica's base URL as configured, with scheme
// and host in lower case and no trailing slash: the forwarder appends the
// agent's /v1/... path to it. It may carry a password; log Redacted.
func (r *Replica) URL() *url.URL {
	u := *r.u
	return &u
}

// Name returns the replica's host (host:port when the URL has a port), and
// its base path if it has one, so that names are unique within a set. It is
// what spans (rollout.upstream) and metric labels show: short, stable and
// free of credentials.
func (r *Replica) Name() string { return r.name }

// Healthy reports whether the replica is admitted: since its last
// successful probe (or since it joined), no call has failed to connect to
// it and fewer than UnhealthyAfter probes in a row have failed.
func (r *Replica) Healthy() bool { return r.healthy.Load() }

// InFlight returns the number of calls on the replica: Acquires not yet
// Released.
func (r *Replica) InFlight() int64 { return r.inFlight.Load() }

// Acquire counts a call as started on the replica, for least-loaded routing
// and the admin state.
func (r *Replica) Acquire() { r.inFlight.Add(1) }

// Release counts a call as ended. A Release without its Acquire is ignored
// rather than taking the count below zero, where the replica would look
// less loaded than idle for good.
func (r *Replica) Release() {
	for {
		n := r.inFlight.Load()
		if n <= 0 || r.inFlight.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// ReportFailure tells the replica a real call could not connect to it. It
// is ejected at once, without waiting for probes to agree, so that the next
// calls go elsewhere; the next successful probe readmits it. err says why,
// in the log line written when the replica goes from healthy to ejected.
func (r *Replica) ReportFailure(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.healthy.Load() {
		r.healthy.Store(false)
		r.log.Warn().Err(err).Msg("replica ejected: a call could not connect; readmitted when a probe succeeds")
	}
}

// Serves reports whether the replica answers for model. Model "" (a call
// whose model is unknown, or that names none) is served by every replica,
// as is every model by a replica configured without Models.
func (r *Replica) Serves(model string) bool {
	if model == "" {
		return true
	}
	ms := r.models()
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if m == model {
			return true
		}
	}
	return false
}

func (r *Replica) models() []string {
	if p := r.modelList.Load(); p != nil {
		return *p
	}
	return nil
}

// setModels takes ownership of ms.
func (r *Replica) setModels(ms []string) { r.modelList.Store(&ms) }

// score is the replica's rendezvous weight for rolloutID: the highest wins.
func (r *Replica) score(rolloutID string) uint64 {
	return mix64(fnvString(r.seed, rolloutID))
}

// probe asks the replica's /health once and records the outcome, unless ctx
// ended first: shutting down says nothing about the replica.
func (r *Replica) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, r.cfg.probeTimeout)
	defer cancel()
	err := r.check(pctx)
	if ctx.Err() != nil {
		return
	}
	r.observe(err)
}

func (r *Replica) check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.healthURL, nil)
	if err != nil {
		// The URL was validated; do not print it, it may hold a password.
		return errors.New("probe: cannot build the request")
	}
	resp, err := r.cfg.transport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", r.healthRedacted, err)
	}
	// Drain a little so the connection can be reused; a /health page that
	// is larger than this is not vLLM's, and the connection can go.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: %s", r.healthRedacted, resp.Status)
	}
	return nil
}

// observe records one probe outcome.
func (r *Replica) observe(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.fails = 0
		r.lastOK.Store(time.Now().UnixNano())
		if !r.healthy.Load() {
			r.healthy.Store(true)
			r.log.Info().Msg("replica healthy again")
		}
		return
	}
	r.fails++
	if r.fails >= r.cfg.unhealthyAfter && r.healthy.Load() {
		r.healthy.Store(false)
		r.log.Warn().Err(err).Int("failed_probes", r.fails).Msg("replica unhealthy: ejected until a probe succeeds")
	}
}

// FNV-1a, 64 bits, as hash/fnv computes it, written out so that hashing a
// string neither allocates nor goes through an interface.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	return h
}

// mix64 is splitmix64's finaliser. FNV's last bytes barely reach its high
// bits, so rollout IDs that differ only at the end (ro-1, ro-2, ...) would
// otherwise compare alike on every replica and pile onto one.
func mix64(z uint64) uint64 {
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}
