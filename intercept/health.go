package intercept

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// health remembers when the upstream last answered its /health probe.
type health struct {
	lastOK   atomic.Int64 // unix nanoseconds
	interval atomic.Int64 // probe interval, nanoseconds
}

// ProbeUpstream asks the upstream's /health once.
func (p *Proxy) ProbeUpstream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	u := *p.cfg.Upstream
	u.Path = strings.TrimSuffix(u.Path, "/") + "/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := p.tr.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", u.Redacted(), err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: status %d", u.Redacted(), resp.StatusCode)
	}
	p.health.lastOK.Store(time.Now().UnixNano())
	return nil
}

// WatchUpstream probes the upstream every interval until ctx ends.
func (p *Proxy) WatchUpstream(ctx context.Context, interval time.Duration) {
	p.health.interval.Store(int64(interval))
	t := time.NewTicker(interval)
	defer t.Stop()
	wasUp := true
	for {
		err := p.ProbeUpstream(ctx)
		switch {
		case err != nil && wasUp && ctx.Err() == nil:
			p.log.Warn().Err(err).Msg("upstream is not healthy")
		case err == nil && !wasUp:
			p.log.Info().Str("upstream", p.cfg.Upstream.Host).Msg("upstream is healthy again")
		}
		wasUp = err == nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// UpstreamReady reports whether the upstream answered /health within the
// last three probe intervals.
func (p *Proxy) UpstreamReady() bool {
	last := p.health.lastOK.Load()
	interval := time.Duration(p.health.interval.Load())
	if interval == 0 {
		interval = 5 * time.Second
	}
	return last != 0 && time.Since(time.Unix(0, last)) < 3*interval
}
