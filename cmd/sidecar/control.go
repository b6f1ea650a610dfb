package main

import (
	"context"
	"math"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/intercept"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/upstream"
)

// policySetting is the store setting that keeps the policy version across
// restarts, so calls after a restart are stamped like those before it.
const policySetting = "policy_version"

// controller carries out the admin routes' levers on the running parts.
type controller struct {
	proxy *intercept.Proxy
	set   *upstream.Set
	store *store.Store
	log   zerolog.Logger
}

func (c *controller) Pause(retryAfter time.Duration, reason string) {
	c.proxy.Pause(retryAfter, reason)
}
func (c *controller) Resume()                         { c.proxy.Resume() }
func (c *controller) Drain(ctx context.Context) error { return c.proxy.Wait(ctx) }

func (c *controller) SetPolicyVersion(ctx context.Context, version string) error {
	if err := c.store.SetSetting(ctx, policySetting, version); err != nil {
		return err
	}
	c.proxy.SetPolicyVersion(version)
	c.log.Info().Str("policy_version", version).Msg("policy version set")
	return nil
}

func (c *controller) ReplaceUpstreams(specs []upstream.Spec, routing upstream.Routing) error {
	if err := c.set.Replace(specs, routing); err != nil {
		return err
	}
	c.log.Info().Int("upstreams", len(specs)).Str("routing", string(routing)).Msg("replica set replaced")
	return nil
}

// state is the body of GET /admin/state.
func (c *controller) state(ctx context.Context, pusher *exporter.Pusher) any {
	var pause any
	if p := c.proxy.Paused(); p != nil {
		pause = map[string]any{"reason": p.Reason, "since": p.Since, "retry_after_seconds": int(math.Ceil(p.RetryAfter.Seconds()))}
	}
	state := map[string]any{
		"paused":         pause != nil,
		"pause":          pause,
		"in_flight":      c.proxy.InFlight(),
		"policy_version": c.proxy.PolicyVersion(),
		"routing":        c.set.Routing(),
		"upstreams":      c.set.State(),
		"store":          c.store.Stats(),
		"otlp":           nil,
	}
	if pusher != nil {
		state["otlp"] = pusher.State(ctx)
	}
	return state
}

// reloadOnHangup re-reads --config on SIGHUP and replaces the replica set
// (and routing) it names; calls in flight finish where they are.
func (c *controller) reloadOnHangup(ctx context.Context, cfg *config) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		if cfg.ConfigFile == "" {
			c.log.Warn().Msg("SIGHUP: no --config file to reload")
			continue
		}
		file, err := readConfigFile(cfg.ConfigFile)
		if err != nil {
			c.log.Error().Err(err).Msg("SIGHUP: replica set not reloaded")
			continue
		}
		specs, routing := cfg.upstreams, cfg.routing
		if cfg.upstreamsFromFile {
			specs = file.upstreams
		}
		if cfg.routingFromFile {
			if routing, err = upstream.ParseRouting(file.routing); err != nil {
				c.log.Error().Err(err).Msg("SIGHUP: replica set not reloaded")
				continue
			}
		}
		if err := c.ReplaceUpstreams(specs, routing); err != nil {
			c.log.Error().Err(err).Msg("SIGHUP: replica set not reloaded")
		}
	}
}
