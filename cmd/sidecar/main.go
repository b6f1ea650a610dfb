// Command sidecar is tokentap: run it beside vLLM, point agents at
// http://SIDECAR/rollout/<rollout-id>/attempt/<n>/v1, and every chat and
// completions call is recorded with vLLM's exact token IDs as an
// OpenTelemetry span in a durable store that trainers read back.
//
// Usage:
//
//	sidecar --upstream http://vllm:8000 [flags]
//	sidecar --demo                       # no GPU: an embedded simulated vLLM
//
// Every flag also reads SIDECAR_<FLAG>. See README.md for the flags, routes
// and span schema.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/intercept"
	"github.com/tokentap/tokentap/internal/api"
	"github.com/tokentap/tokentap/internal/detok"
	"github.com/tokentap/tokentap/internal/metrics"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/trajectory"
	"github.com/tokentap/tokentap/upstream"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Getenv, os.Stderr, nil))
}

// run is the whole program; it returns the exit code. ready, when not nil,
// receives the address the sidecar listens on once it serves.
func run(ctx context.Context, args []string, env func(string) string, stderr io.Writer, ready chan<- string) int {
	cfg, err := parseConfig(args, env, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "sidecar:", err)
		return 2
	}
	log := cfg.logger(stderr)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, cfg, log, ready); err != nil {
		log.Error().Err(err).Msg("sidecar stopped")
		return 1
	}
	return 0
}

// serve runs the sidecar until ctx ends, then shuts down gracefully: calls
// in flight finish (up to --shutdown-timeout) and are recorded, and the
// store is closed cleanly.
func serve(ctx context.Context, cfg *config, log zerolog.Logger, ready chan<- string) error {
	specs := cfg.upstreams
	if cfg.Demo {
		sim, err := startDemo(cfg.DemoTemplate, cfg.DemoMaxModelLen, log)
		if err != nil {
			return err
		}
		defer sim.Close()
		specs = []upstream.Spec{{URL: sim.url.String()}}
	}
	upstreams, err := upstream.New(specs, cfg.routing, upstream.Options{Logger: log})
	if err != nil {
		return err
	}

	var holders []string // retention waits for the outbox: a collector outage loses nothing
	if cfg.OTLPEndpoint != "" {
		holders = []string{exporter.PositionName(cfg.OTLPEndpoint)}
	}
	st, err := store.Open(ctx, store.Options{
		Dir: cfg.Data, InMemory: cfg.InMemory, Sync: cfg.Sync, Retention: cfg.Retention, HoldFor: holders, MaxDisk: int64(cfg.MaxDisk), Rebase: exporter.Rebase, Logger: log,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error().Err(err).Msg("close store")
		}
	}()

	var pusher *exporter.Pusher
	if cfg.OTLPEndpoint != "" {
		headers, err := exporter.ParseHeaders(cfg.OTLPHeaders)
		if err != nil {
			return err
		}
		if pusher, err = exporter.NewPusher(st, exporter.PushConfig{Endpoint: cfg.OTLPEndpoint, Headers: headers, Logger: log}); err != nil {
			return err
		}
	}
	var proxy *intercept.Proxy
	m := metrics.New(metrics.Sources{
		InFlight: func() float64 { return float64(proxy.InFlight()) },
		Paused:   func() bool { return proxy.Paused() != nil },
		Store:    st, Pusher: pusher, Upstreams: upstreams,
	})
	recorder := exporter.NewRecorder(st, cfg.CaptureContent, version)
	proxy, err = intercept.New(intercept.Config{
		Upstreams: upstreams, Force: cfg.force, ModelMap: cfg.modelMap, Recorder: recorder, Logprobs: cfg.Logprobs,
		RequireRollout: cfg.RequireRollout, MaxBody: int64(cfg.MaxBody),
		UpstreamTimeout: cfg.UpstreamTimeout, UpstreamAPIKey: cfg.UpstreamAPIKey, BodyTimeout: cfg.BodyTimeout,
		Observer: m, Logger: log, RetryAfterWrite: cfg.RetryAfterWrite, AccessLog: cfg.AccessLog,
		// previous_response_id of the Responses dialect resolves against the
		// store, so a conversation continues across sidecar restarts.
		ResponseHistory: st,
		Anthropic:       anthropic.Translator{InlineSystem: anthropic.InlineSystem(cfg.InlineSystem)},
	})
	if err != nil {
		return err
	}
	policy, err := st.Setting(ctx, policySetting)
	if err != nil {
		return err
	}
	proxy.SetPolicyVersion(policy)
	control := &controller{proxy: proxy, set: upstreams, store: st, log: log}
	detokenizer := detok.New(detok.Config{
		APIKey: cfg.UpstreamAPIKey,
		Pick: func(rid, model string) (*url.URL, error) {
			r, err := upstreams.Pick(rid, model)
			if err != nil {
				return nil, err
			}
			return r.URL(), nil
		},
	})
	trainer := api.New(api.Config{
		Store: st, AdminToken: cfg.AdminToken, UpstreamReady: proxy.UpstreamReady, Logger: log,
		State:   func(ctx context.Context) any { return control.state(ctx, pusher) },
		Control: control,
		// The proxy knows of attempts whose first call is still in flight.
		InFlight: proxy,
		// Drift entries are decoded by the replica that serves the rollout.
		Decoder: func(rid, model string) trajectory.Decoder { return detokenizer.Decoder(rid, model) },
		OnDrift: m.ObserveDrift,
	})
	trainer.Handle("/v1/traces", exporter.NewReceiver(st, int64(cfg.MaxBody), log))
	trainer.Handle("GET /metrics", m.Handler())
	if cfg.Pprof {
		// pprof's handlers expect /debug/pprof/...; they live under /admin.
		trainer.Handle("/admin/debug/pprof/", http.StripPrefix("/admin", http.HandlerFunc(pprof.Index)))
		trainer.Handle("/admin/debug/pprof/profile", http.StripPrefix("/admin", http.HandlerFunc(pprof.Profile)))
		trainer.Handle("/admin/debug/pprof/trace", http.StripPrefix("/admin", http.HandlerFunc(pprof.Trace)))
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           &router{proxy: proxy, api: trainer, upstreams: upstreams},
		ReadHeaderTimeout: cfg.HeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          newStdLogger(log),
		// No write timeout: a generation may stream for many minutes.
	}
	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	go upstreams.Watch(watchCtx)
	go control.reloadOnHangup(watchCtx, cfg)
	// The drift counter diagnoses attempts as they complete; it stops
	// before the store closes.
	driftCtx, stopDrift := context.WithCancel(context.Background())
	driftDone := make(chan struct{})
	go func() { defer close(driftDone); trainer.CountDrift(driftCtx) }()
	defer func() { stopDrift(); <-driftDone }()
	pushed := make(chan error, 1)
	pushCtx, stopPush := context.WithCancel(context.Background())
	defer stopPush()
	if pusher != nil {
		go func() { pushed <- pusher.Run(pushCtx) }()
	} else {
		pushed <- nil
	}

	served := make(chan error, 1)
	go func() {
		if cfg.TLSCert != "" {
			served <- srv.ServeTLS(ln, cfg.TLSCert, cfg.TLSKey)
		} else {
			served <- srv.Serve(ln)
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Strs("upstreams", upstreamNames(upstreams)).Str("routing", string(upstreams.Routing())).Str("policy_version", policy).
		Str("data", storeDescription(cfg)).Str("otlp_endpoint", exporter.RedactURL(cfg.OTLPEndpoint)).Str("version", version).Bool("demo", cfg.Demo).
		Bool("tls", cfg.TLSCert != "").Bool("admin_token", cfg.AdminToken != "").Bool("upstream_api_key", cfg.UpstreamAPIKey != "").Msg("tokentap serving")
	if ready != nil {
		ready <- ln.Addr().String()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Int64("in_flight", proxy.InFlight()).Msg("shutting down: finishing calls in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("calls still in flight at the shutdown timeout: cutting them off")
		srv.Close()
	}
	// Cut-off calls are recorded as cancelled before the store closes.
	recordCtx, cancelRecord := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelRecord()
	if err := proxy.Wait(recordCtx); err != nil {
		log.Error().Err(err).Msg("calls not recorded before the store closed")
	}
	// The outbox makes one bounded last attempt, then the store closes.
	stopPush()
	if err := <-pushed; err != nil {
		log.Error().Err(err).Msg("OTLP outbox")
	}
	log.Info().Msg("tokentap stopped")
	return nil
}

// upstreamNames lists the replicas as the start-up log shows them.
func upstreamNames(set *upstream.Set) []string {
	var names []string
	for _, st := range set.State() {
		names = append(names, st.URL)
	}
	return names
}

func storeDescription(cfg *config) string {
	if cfg.InMemory {
		return "(in memory)"
	}
	return cfg.Data
}

// router sends tokentap's own paths to the API and everything else to the
// proxy. Own paths are never forwarded, whatever the request's form.
type router struct {
	proxy     *intercept.Proxy
	api       *api.API
	upstreams *upstream.Set
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect && ownPath(r.URL.Path) && (!r.URL.IsAbs() || rt.upstreams.Owns(r.URL)) {
		rt.api.ServeHTTP(w, r)
		return
	}
	rt.proxy.ServeHTTP(w, r)
}

// ownPath reports whether a path is tokentap's rather than vLLM's.
func ownPath(p string) bool {
	switch p {
	case "/healthz", "/readyz", "/metrics", "/v1/traces":
		return true
	}
	return strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/admin/")
}

// demo is the embedded simulated vLLM of --demo.
type demo struct {
	srv *http.Server
	url *url.URL
}

func startDemo(template string, maxModelLen int, log zerolog.Logger) (*demo, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start demo upstream: %w", err)
	}
	d := &demo{
		// The demo policy plays the model: Search-R1 in examples/search_r1,
		// a thinking tool caller when tools are offered; other conversations
		// get the simulator's word generator.
		// Its context is a long-context model's (Qwen3 with YaRN serves
		// 131072), so that a harness's ~13k-token system prompt and its
		// max_tokens fit as they would on such a deployment.
		srv: &http.Server{
			Handler:           vllmsim.New(vllmsim.Options{Template: template, MaxModelLen: maxModelLen, AgentPolicy: vllmsim.DemoPolicy}),
			ReadHeaderTimeout: 10 * time.Second,
		},
		url: &url.URL{Scheme: "http", Host: ln.Addr().String()},
	}
	go d.srv.Serve(ln)
	log.Info().Str("upstream", d.url.String()).Str("template", template).Int("max_model_len", maxModelLen).Msg("demo: simulated vLLM started (no GPU needed)")
	return d, nil
}

func (d *demo) Close() { d.srv.Close() }
