// Package upstream owns the vLLM replicas tokentap forwards to: which replica
// serves a call (sticky by rollout, or least loaded), which models each
// serves, whether each is healthy, and how many calls each has in flight.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
)

// Spec describes one replica as the operator configures it.
type Spec struct {
	// URL is vLLM's base URL, without /v1: tokentap appends the path the
	// agent asked for, and probes {URL}/health.
	URL string `yaml:"url" json:"url"`
	// Models lists the served model names the replica answers for. Empty
	// means any model, which is what a fleet serving one policy wants.
	Models []string `yaml:"models,omitempty" json:"models,omitempty"`
}

// Routing chooses which replica serves a call.
type Routing string

const (
	// Sticky sends every call of a rollout to the same replica, so that the
	// turns of one trajectory hit the prefix cache that the previous turns
	// warmed. Calls without a rollout go to the least loaded replica. It is
	// the default.
	Sticky Routing = "sticky"
	// LeastLoaded sends each call to the replica with the fewest calls in
	// flight, for workloads whose calls share no prefix worth caching.
	LeastLoaded Routing = "least-loaded"
)

// ParseRouting parses a routing name as written in flags and configuration
// files. The empty string means Sticky, so that a configuration that does
// not mention routing gets the default.
func ParseRouting(s string) (Routing, error) {
	switch Routing(s) {
	case "", Sticky:
		return Sticky, nil
	case LeastLoaded:
		return LeastLoaded, nil
	}
	return "", fmt.Errorf("upstream: unknown routing %q (valid: %q, %q)", s, Sticky, LeastLoaded)
}

// Options tunes health checking. The zero value is usable.
type Options struct {
	// Transport sends the health probes. Nil means a private transport that
	// ignores HTTP_PROXY, since replicas are reached directly, and gives up
	// dialing after a second, so that a dead host cannot stretch a probe
	// round to the whole ProbeTimeout.
	Transport http.RoundTripper
	// ProbeInterval is how often Watch probes every replica; default 5s.
	// Ready also measures freshness in multiples of it.
	ProbeInterval time.Duration
	// ProbeTimeout bounds one probe; default 2s.
	ProbeTimeout time.Duration
	// UnhealthyAfter is how many consecutive probes must fail before a
	// replica is ejected; default 2. More than one, because a replica busy
	// with a long prefill may miss a single probe yet serve calls fine.
	UnhealthyAfter int
	// Logger receives health transitions, one line per transition.
	Logger zerolog.Logger
}

// ErrUnknownModel reports that no replica of the set serves the model asked
// for, healthy or not: retrying will not help until the configuration
// changes. Pick wraps it with the model name.
var ErrUnknownModel = errors.New("upstream: no replica serves the model")

// ErrNoReplica reports that every replica that could serve the call was
// excluded, that is, already tried for it.
var ErrNoReplica = errors.New("upstream: every replica that could serve the call was already tried")

// config is what every replica of a Set shares; it never changes after New.
type config struct {
	transport      http.RoundTripper
	probeInterval  time.Duration
	probeTimeout   time.Duration
	unhealthyAfter int
	log            zerolog.Logger
}

// snapshot is the replica list and routing in force. It is immutable, so
// Pick reads it with one atomic load and no lock.
type snapshot struct {
	replicas []*Replica
	routing  Routing
}

// Set is the group of replicas tokentap forwards to. Its methods are safe
// for concurrent use. A Set must be created with New.
type Set struct {
	cfg  *config
	mu   sync.Mutex // serialises Replace
	snap atomic.Pointer[snapshot]
	// rr breaks ties between equally loaded replicas in turn, so that an
	// idle fleet does not send every call to the first replica.
	rr atomic.Uint64
}

// New returns a Set of the replicas specs describe, all presumed healthy
// until probes say otherwise: a replica that is down shows up on the first
// call (ReportFailure) or probe, whereas presuming the opposite would refuse
// every call until the first probe round. It does not probe; call Watch.
func New(specs []Spec, routing Routing, opts Options) (*Set, error) {
	cfg := &config{
		transport:      opts.Transport,
		probeInterval:  opts.ProbeInterval,
		probeTimeout:   opts.ProbeTimeout,
		unhealthyAfter: opts.UnhealthyAfter,
		log:            opts.Logger,
	}
	if cfg.probeInterval <= 0 {
		cfg.probeInterval = 5 * time.Second
	}
	if cfg.probeTimeout <= 0 {
		cfg.probeTimeout = 2 * time.Second
	}
	if cfg.unhealthyAfter <= 0 {
		cfg.unhealthyAfter = 2
	}
	if cfg.transport == nil {
		cfg.transport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: cfg.probeTimeout,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     3 * cfg.probeInterval,
		}
	}
	s := &Set{cfg: cfg}
	snap, _, err := s.build(specs, routing, nil)
	if err != nil {
		return nil, err
	}
	s.snap.Store(snap)
	return s, nil
}

// Replace switches the set to new replicas and routing without dropping
// calls. A replica whose URL stays keeps its health, failure count and
// in-flight count, so that a reload neither readmits a dead replica nor
// forgets the load on a live one; it takes the new Models. New replicas are
// presumed healthy, like those of New, and probed at once in the background
// rather than at Watch's next tick. Removed replicas stop being picked,
// but calls already on them finish, and callers holding them may still
// Release them. On error the set is unchanged.
func (s *Set) Replace(specs []Spec, routing Routing) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap, added, err := s.build(specs, routing, s.snap.Load())
	if err != nil {
		return err
	}
	s.snap.Store(snap)
	if len(added) > 0 {
		go s.probe(context.Background(), added)
	}
	return nil
}

// build validates specs and routing and returns the snapshot they describe,
// reusing old's replicas where the URL stays, and the replicas that are new.
// It changes nothing in old unless it succeeds.
func (s *Set) build(specs []Spec, routing Routing, old *snapshot) (*snapshot, []*Replica, error) {
	routing, err := ParseRouting(string(routing))
	if err != nil {
		return nil, nil, err
	}
	if len(specs) == 0 {
		return nil, nil, errors.New("upstream: no replica given; at least one vLLM base URL is required")
	}
	parsed := make([]parsedSpec, len(specs))
	seen := make(map[string]int, len(specs))
	for i, spec := range specs {
		p, err := parseSpec(spec)
		if err != nil {
			return nil, nil, err
		}
		if j, dup := seen[p.key]; dup {
			return nil, nil, fmt.Errorf("upstream %q: same replica as %q", p.u.Redacted(), parsed[j].u.Redacted())
		}
		seen[p.key] = i
		parsed[i] = p
	}
	byKey := map[string]*Replica{}
	if old != nil {
		for _, r := range old.replicas {
			byKey[r.key] = r
		}
	}
	snap := &snapshot{replicas: make([]*Replica, len(parsed)), routing: routing}
	var added []*Replica
	for i, p := range parsed {
		r := byKey[p.key]
		if r == nil {
			r = newReplica(p, s.cfg)
			added = append(added, r)
		} else {
			r.setModels(p.models)
		}
		snap.replicas[i] = r
	}
	return snap, added, nil
}

// Pick chooses the replica to serve a call of the given rollout for model,
// skipping those in exclude: the replicas a retry of the same call already
// tried. rolloutID "" marks a call outside any rollout, which has no cache
// to reuse and goes to the least loaded replica; model "" matches every
// replica.
//
// Healthy replicas are preferred. When none of those that could serve the
// call is healthy, Pick chooses among them all anyway: probes can be stale
// or wrong, and refusing the call would turn that into an outage, whereas
// connecting tells the truth at the cost of one attempt.
//
// Under Sticky routing, a rollout's replica is chosen by rendezvous hashing
// of the rollout ID with each replica's URL. The choice is the same in every
// process and after restarts, and when a replica leaves (or is ejected)
// only the rollouts that were on it move; when one joins, only the rollouts
// that now belong to it move.
//
// Pick does not count the call in flight; the caller calls Acquire on the
// replica it actually uses, and Release when done.
func (s *Set) Pick(rolloutID, model string, exclude ...*Replica) (*Replica, error) {
	snap := s.snap.Load()
	// The candidates go to stack arrays; sets larger than these spill to
	// the heap, which costs an allocation and nothing else.
	var healthyBuf, anyBuf [16]*Replica
	healthy, all := healthyBuf[:0], anyBuf[:0]
	eligible := false
	for _, r := range snap.replicas {
		if !r.Serves(model) {
			continue
		}
		eligible = true
		if excluded(r, exclude) {
			continue
		}
		all = append(all, r)
		if r.Healthy() {
			healthy = append(healthy, r)
		}
	}
	switch {
	case !eligible:
		return nil, fmt.Errorf("%w: %q", ErrUnknownModel, model)
	case len(all) == 0:
		return nil, ErrNoReplica
	}
	pool := healthy
	if len(pool) == 0 {
		pool = all
	}
	if snap.routing == Sticky && rolloutID != "" {
		return highestScore(pool, rolloutID), nil
	}
	return s.leastLoaded(pool), nil
}

func excluded(r *Replica, exclude []*Replica) bool {
	for _, x := range exclude {
		if x == r {
			return true
		}
	}
	return false
}

// highestScore returns the replica of pool that rendezvous hashing assigns
// to rolloutID.
func highestScore(pool []*Replica, rolloutID string) *Replica {
	var best *Replica
	var bestScore uint64
	for _, r := range pool {
		sc := r.score(rolloutID)
		// Equal scores are all but impossible; ordering them by key keeps
		// the choice independent of the order replicas are configured in.
		if best == nil || sc > bestScore || (sc == bestScore && r.key < best.key) {
			best, bestScore = r, sc
		}
	}
	return best
}

// leastLoaded returns the replica of pool with the fewest calls in flight,
// taking equally loaded ones in turn.
func (s *Set) leastLoaded(pool []*Replica) *Replica {
	if len(pool) == 1 {
		return pool[0]
	}
	// Read each count once: they move under our feet, and the tie count
	// and the tie chosen must agree.
	var loadBuf [16]int64
	loads := loadBuf[:0]
	minLoad, ties := int64(0), 0
	for i, r := range pool {
		n := r.InFlight()
		loads = append(loads, n)
		switch {
		case i == 0 || n < minLoad:
			minLoad, ties = n, 1
		case n == minLoad:
			ties++
		}
	}
	k := int(s.rr.Add(1) % uint64(ties))
	for i, n := range loads {
		if n == minLoad {
			if k == 0 {
				return pool[i]
			}
			k--
		}
	}
	return pool[0] // not reached: loads holds ties entries equal to minLoad
}

// Owns reports whether u names the host and port of one of the current
// replicas. Proxy requests carry an absolute URI; tokentap forwards only
// those aimed at its own replicas, and Owns is how it tells. Default ports
// count as written: http://vllm and http://vllm:80 are the same.
func (s *Set) Owns(u *url.URL) bool {
	if u == nil {
		return false
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	for _, r := range s.snap.Load().replicas {
		if r.port == port && strings.EqualFold(r.hostname, host) {
			return true
		}
	}
	return false
}

// Replicas returns the current replicas, in configuration order. The slice
// is the caller's.
func (s *Set) Replicas() []*Replica {
	return append([]*Replica(nil), s.snap.Load().replicas...)
}

// Routing returns the routing in force.
func (s *Set) Routing() Routing {
	return s.snap.Load().routing
}

// Ready reports whether any current replica answered its health probe
// within the last three probe intervals: the sidecar is worth sending calls
// to. It is false until a first probe succeeds, since presumed health is
// good enough to route by but not to claim readiness on.
func (s *Set) Ready() bool {
	horizon := time.Now().Add(-3 * s.cfg.probeInterval).UnixNano()
	for _, r := range s.snap.Load().replicas {
		if r.lastOK.Load() > horizon {
			return true
		}
	}
	return false
}

// Watch probes every replica immediately, then every ProbeInterval, until
// ctx is done. Run it in its own goroutine, once per Set.
func (s *Set) Watch(ctx context.Context) {
	t := time.NewTicker(s.cfg.probeInterval)
	defer t.Stop()
	for {
		s.Probe(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Probe asks every current replica's /health once, concurrently, and
// returns when all have answered or timed out. Probes cut short because ctx
// ended count neither way.
func (s *Set) Probe(ctx context.Context) {
	s.probe(ctx, s.snap.Load().replicas)
}

func (s *Set) probe(ctx context.Context, replicas []*Replica) {
	var wg sync.WaitGroup
	for _, r := range replicas {
		wg.Go(func() { r.probe(ctx) })
	}
	wg.Wait()
}

// ReplicaState is a replica as the admin state endpoint shows it.
type ReplicaState struct {
	URL      string   `json:"url"` // password redacted
	Healthy  bool     `json:"healthy"`
	InFlight int64    `json:"in_flight"`
	Models   []string `json:"models,omitempty"`
}

// State returns the current replicas' state, in configuration order.
func (s *Set) State() []ReplicaState {
	replicas := s.snap.Load().replicas
	st := make([]ReplicaState, len(replicas))
	for i, r := range replicas {
		st[i] = ReplicaState{
			URL:      r.redacted,
			Healthy:  r.Healthy(),
			InFlight: r.InFlight(),
			Models:   append([]string(nil), r.models()...),
		}
	}
	return st
}
