package exporter

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/store"
)

// PushConfig configures the OTLP push outbox.
type PushConfig struct {
	// Endpoint is http(s)://host:4318 (OTLP/HTTP protobuf, /v1/traces
	// appended) or grpc(s)://host:4317 (OTLP/gRPC).
	Endpoint string
	Headers  map[string]string
	// MaxBatchBytes bounds the encoded size of one export. Token arrays make
	// spans large (512 spans of 4k IDs ≈ 12 MB) and a collector's gRPC
	// receiver takes 4 MiB messages by default. Default 3 MiB.
	MaxBatchBytes int
	// MaxBatchSpans bounds the spans of one export. Default 512.
	MaxBatchSpans int
	// ExportTimeout bounds one export. Default 10 s.
	ExportTimeout time.Duration
	// ShutdownTimeout bounds the last attempt made when Run is stopped.
	// Default 5 s.
	ShutdownTimeout time.Duration
	// RetryBase is the first retry delay, doubled up to 30 s. Default 500 ms.
	RetryBase time.Duration
	Logger    zerolog.Logger
}

// Pusher ships the store's records to an OTLP collector. The store is the
// outbox: the pusher follows its cursor and persists its position only once
// the collector acknowledged a batch, so a collector that is down, slow,
// throttling or refusing never costs a span, only delay. A crash between a
// send and its acknowledgement resends that batch (at-least-once).
type Pusher struct {
	cfg    PushConfig
	store  *store.Store
	sender sender
	name   string // of the persisted position
	log    zerolog.Logger
	buf    []byte // the export request being built, reused
	// fit is how many records the next batch holds at most (0: up to
	// MaxBatchSpans), learnt from exports that had to be halved to fit
	// MaxBatchBytes (learnFit).
	fit int

	mu    sync.Mutex
	state PushState
}

// PushState is what the outbox reports.
type PushState struct {
	Endpoint      string    `json:"endpoint"`
	Position      uint64    `json:"position"` // cursor of the last record acknowledged
	Cursor        uint64    `json:"cursor"`   // cursor of the last record committed
	Backlog       uint64    `json:"backlog"`  // records committed but not acknowledged (an upper bound: expired ones count)
	BacklogAge    float64   `json:"backlog_age_seconds"`
	SentSpans     uint64    `json:"sent_spans"`
	SentBytes     uint64    `json:"sent_bytes"`
	RejectedSpans uint64    `json:"rejected_spans"` // refused by the collector (partial success, or alone repeatedly); they stay in the store
	Failures      int       `json:"consecutive_failures"`
	LastError     string    `json:"last_error,omitempty"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
}

// maxSoloRejections is how often the collector may refuse an export of a
// single span (400, InvalidArgument) before the pusher skips it (it stays in
// the store, counted in RejectedSpans): one poisoned span must not stall the
// outbox forever. Refusals of a whole batch are narrowed down by halving it.
const maxSoloRejections = 5

// NewPusher connects the outbox to a collector.
func NewPusher(st *store.Store, cfg PushConfig) (*Pusher, error) {
	if cfg.MaxBatchBytes <= 0 {
		cfg.MaxBatchBytes = 3 << 20
	}
	if cfg.MaxBatchSpans <= 0 {
		cfg.MaxBatchSpans = 512
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = 10 * time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 500 * time.Millisecond
	}
	snd, err := newSender(cfg.Endpoint, cfg.Headers)
	if err != nil {
		return nil, err
	}
	p := &Pusher{
		cfg: cfg, store: st, sender: snd, log: cfg.Logger,
		name:  PositionName(cfg.Endpoint),
		state: PushState{Endpoint: RedactURL(cfg.Endpoint)},
	}
	if st != nil && !st.Holds(p.name) {
		p.log.Warn().Str("endpoint", p.state.Endpoint).Msg("OTLP: the store does not hold retention for this endpoint: a collector outage longer than the retention loses spans")
	}
	return p, nil
}

// PositionName is the store position the pusher of endpoint keeps. One
// position per endpoint: pointing tokentap at a new collector ships it
// everything still retained. Name it in store.Options.HoldFor so that
// retention waits for the collector.
func PositionName(endpoint string) string {
	h := fnv.New64a()
	h.Write([]byte(endpoint))
	return "otlp-" + strconv.FormatUint(h.Sum64(), 16)
}

// RedactURL hides the password of a URL's userinfo (collectors behind basic
// auth are configured as http://user:secret@host:4318) so it can be logged
// and shown on /admin/state.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// Run ships records until ctx ends, then makes one last attempt bounded by
// ShutdownTimeout and leaves the rest for the next start.
func (p *Pusher) Run(ctx context.Context) error {
	defer p.sender.close()
	pos, err := p.store.Position(ctx, p.name)
	if err != nil {
		return err
	}
	p.update(func(s *PushState) { s.Position = pos })
	limit := p.cfg.MaxBatchSpans
	solo := 0
	for ctx.Err() == nil {
		if p.store.Cursor() <= pos {
			if err := p.store.WaitCommit(ctx, pos); err != nil {
				break
			}
		}
		sent, n, res, err := p.shipOnce(ctx, pos, limit)
		switch {
		case err == nil:
			pos, limit, solo = sent, p.cfg.MaxBatchSpans, 0
		case res.tooLarge && n > 1, res.rejected && n > 1:
			// Halve the batch: to fit, or to isolate what the collector refuses.
			limit = max(1, n/2)
		case res.rejected, res.tooLarge:
			solo++
			if solo >= maxSoloRejections {
				p.log.Error().Err(err).Uint64("cursor", sent).Msg("OTLP: the collector keeps refusing this span; skipping it (it stays in the store)")
				p.update(func(s *PushState) { s.RejectedSpans++ })
				pos, solo = sent, 0
				if err := p.store.SetPosition(ctx, p.name, pos); err != nil {
					p.log.Error().Err(err).Msg("OTLP: save position")
				}
				continue
			}
			p.backoff(ctx, res)
		default:
			p.backoff(ctx, res)
		}
	}
	p.drain(pos)
	return nil
}

// drain makes the bounded last attempt after Run was stopped.
func (p *Pusher) drain(pos uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownTimeout)
	defer cancel()
	for p.store.Cursor() > pos && ctx.Err() == nil {
		next, _, _, err := p.shipOnce(ctx, pos, p.cfg.MaxBatchSpans)
		if err != nil {
			break
		}
		pos = next
	}
	if backlog := p.store.Cursor() - pos; backlog > 0 {
		p.log.Warn().Uint64("backlog", backlog).Msg("OTLP: records left for the next start")
	}
}

// shipOnce sends the batch after pos. It returns the new position (the
// last cursor of the batch), the records in the batch, and the outcome.
func (p *Pusher) shipOnce(ctx context.Context, pos uint64, limit int) (uint64, int, sendResult, error) {
	upTo := p.store.Cursor()
	if p.fit > 0 {
		limit = min(limit, p.fit)
	}
	recs, next, err := p.store.Scan(ctx, pos, limit, p.cfg.MaxBatchBytes, "", "")
	if err != nil {
		p.fail(err)
		return pos, 0, sendResult{}, err
	}
	if len(recs) == 0 {
		// Everything up to upTo expired before it was shipped.
		if err := p.store.SetPosition(ctx, p.name, upTo); err != nil {
			return pos, 0, sendResult{}, err
		}
		p.update(func(s *PushState) { s.Position = upTo })
		return upTo, 0, sendResult{}, nil
	}
	req, err := AppendTracesFrom(ctx, p.buf[:0], recs, p.store)
	// The scan bounds the batch by stored bytes, but a call stored as a
	// delta exports whole, many times its stored size: halve the batch
	// until its export fits (a record alone ships however large, as it
	// did before deltas).
	halved := false
	for err == nil && len(req) > p.cfg.MaxBatchBytes && len(recs) > 1 {
		recs, halved = recs[:len(recs)/2], true
		req, err = AppendTracesFrom(ctx, req[:0], recs, p.store)
	}
	next = recs[len(recs)-1].Cursor
	if err != nil {
		// A record that cannot be decoded will never ship: treat it as refused.
		p.fail(err)
		return next, len(recs), sendResult{rejected: true}, err
	}
	p.learnFit(len(recs), len(req), halved)
	if cap(req) <= 2*p.cfg.MaxBatchBytes {
		p.buf = req
	} else {
		p.buf = nil // an oversize export: do not keep its buffer
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ExportTimeout)
	res, err := p.sender.send(sctx, req)
	cancel()
	if err != nil {
		p.fail(err)
		return next, len(recs), res, err
	}
	if err := p.store.SetPosition(ctx, p.name, next); err != nil {
		// Acknowledged but not remembered: it will be sent again.
		p.fail(err)
		return pos, len(recs), sendResult{}, err
	}
	size := len(req)
	if res.partial > 0 {
		p.log.Warn().Int64("rejected_spans", res.partial).Str("reason", res.partialText).
			Msg("OTLP: the collector accepted the export but refused some spans (they stay in the store)")
	}
	p.update(func(s *PushState) {
		s.Position = next
		s.SentSpans += uint64(len(recs)) - uint64(min(res.partial, int64(len(recs))))
		s.RejectedSpans += uint64(min(res.partial, int64(len(recs))))
		s.SentBytes += uint64(size)
		s.Failures = 0
		s.LastError = ""
		s.LastSuccess = time.Now().UTC()
	})
	return next, len(recs), res, nil
}

// learnFit sets how many records the next batch starts from, after an
// export of n records and size bytes. Halving from MaxBatchSpans at every
// batch would encode each export several times over, all the more when
// records export much larger than they are stored (deltas): the next batch
// starts from what fitted, and doubles once an export takes at most half
// the bound.
func (p *Pusher) learnFit(n, size int, halved bool) {
	switch {
	case halved:
		p.fit = n
	case p.fit > 0 && n >= p.fit && size <= p.cfg.MaxBatchBytes/2:
		if p.fit *= 2; p.fit >= p.cfg.MaxBatchSpans {
			p.fit = 0
		}
	}
}

func (p *Pusher) fail(err error) {
	p.update(func(s *PushState) {
		s.Failures++
		s.LastError = err.Error()
		if s.Failures == 1 || s.Failures%20 == 0 {
			p.log.Warn().Err(err).Int("consecutive_failures", s.Failures).Str("endpoint", s.Endpoint).Msg("OTLP export failed; retrying")
		}
	})
}

// backoff waits before a retry: capped exponential with full jitter, or
// what the collector asked for.
func (p *Pusher) backoff(ctx context.Context, res sendResult) {
	p.mu.Lock()
	n := p.state.Failures
	p.mu.Unlock()
	d := min(p.cfg.RetryBase<<min(max(n-1, 0), 6), 30*time.Second)
	d = d/2 + rand.N(d/2+1)
	if res.retryAfter > d {
		d = min(res.retryAfter, 5*time.Minute)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (p *Pusher) update(f func(*PushState)) {
	p.mu.Lock()
	f(&p.state)
	p.mu.Unlock()
}

// State reports the outbox: position, backlog (count and age of the oldest
// record not yet acknowledged), totals and the last error.
func (p *Pusher) State(ctx context.Context) PushState {
	p.mu.Lock()
	s := p.state
	p.mu.Unlock()
	s.Cursor = p.store.Cursor()
	if s.Cursor > s.Position {
		s.Backlog = s.Cursor - s.Position
		if recs, _, err := p.store.Scan(ctx, s.Position, 1, 1, "", ""); err == nil && len(recs) == 1 {
			s.BacklogAge = time.Since(recs[0].Time).Seconds()
		}
	}
	return s
}

// ParseHeaders reads "key=value" pairs (the --otlp-header flag).
func ParseHeaders(pairs []string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range pairs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("OTLP header %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}
