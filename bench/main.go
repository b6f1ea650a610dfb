// Command bench is tokentap's load benchmark. In one run it measures, round
// by round and path by path (so that the machine's drift hits every path
// alike), the same load sent
//
//   - directly to a fast vLLM-shaped upstream,
//   - through a bare net/http/httputil.ReverseProxy with a tuned transport,
//   - through tokentap (the built binary, default flags, durable store),
//
// and prints requests per second, p50/p99 latency, latency added over the
// direct path, CPU seconds per 1,000 calls and allocations per call of the
// proxy process, its peak RSS, and tokentap's ratios to the reverse proxy.
// The upstream answers chat completions of 2,048 prompt and 256 response
// token IDs, as JSON or as SSE with one event per token; or, for the
// growing rollouts of rollouts.go, of as many prompt tokens as the load
// generator says its prompt has. Every scenario runs on a fresh tokentap
// store, whose size after a clean stop is reported per call.
//
//	go run ./bench                      # the full run, table + bench-results.json
//	go run ./bench -rounds 3 -duration 2s
//	go run ./bench -scenarios fresh,growing -fresh 10000 -growing 32 -turns 30
//	go run ./bench -role soak -duration 30m -retention 5m   # memory and disk over a long run
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

type config struct {
	rounds     int
	duration   time.Duration
	warmup     time.Duration
	out        string
	sidecarBin string
	scenarios  string
	streams    int
	fresh      int // rollouts of the fresh scenario, per path and round
	growing    int // rollouts of the growing scenario, per path and round
	turns      int // turns of each growing rollout
}

func main() {
	role := ""
	for i, a := range os.Args {
		if a == "-role" && i+1 < len(os.Args) {
			role = os.Args[i+1]
		}
	}
	switch role {
	case "upstream":
		os.Exit(serveUpstream(os.Args[3:]))
	case "rproxy":
		os.Exit(serveReverseProxy(os.Args[3:]))
	case "load":
		os.Exit(loadOnly(os.Args[3:]))
	case "soak":
		os.Exit(soak(os.Args[3:]))
	}
	var c config
	flag.IntVar(&c.rounds, "rounds", 5, "interleaved rounds per scenario")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "measured time per path per round")
	flag.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unmeasured load before each measurement")
	flag.StringVar(&c.out, "out", "bench-results.json", "where to write the results as JSON")
	flag.StringVar(&c.sidecarBin, "sidecar-bin", "", "tokentap binary (default: go build ./cmd/sidecar)")
	flag.StringVar(&c.scenarios, "scenarios", "json-c1,json-c32,sse-c32,streams,fresh,growing", "scenarios to run")
	flag.IntVar(&c.streams, "streams", 256, "concurrent long streams of the memory scenario")
	rolloutFlags(&c)
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// process is a child the benchmark started: the upstream, a proxy.
type process struct {
	name string
	cmd  *exec.Cmd
	url  string
}

func (p *process) stop() {
	if p == nil || p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProcess runs a child listening on a free port (given with
// listenFlag) and waits until healthPath answers.
func startProcess(name, healthPath, listenFlag, bin string, args ...string) (*process, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, append(args, listenFlag, addr)...)
	cmd.Stderr = os.Stderr
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, url: "http://" + addr}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if resp, err := http.Get(p.url + healthPath); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s did not start", name)
		}
	}
}

// buildSidecar returns bin, or when it is empty builds tokentap into dir.
func buildSidecar(bin, dir string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	bin = filepath.Join(dir, "sidecar")
	fmt.Fprintln(os.Stderr, "building tokentap…")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sidecar")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return "", fmt.Errorf("build tokentap (run from the repository root, or pass -sidecar-bin): %w", err)
	}
	return bin, nil
}

func run(c config) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "tokentap-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.sidecarBin, err = buildSidecar(c.sidecarBin, tmp); err != nil {
		return err
	}
	upstream, err := startProcess("upstream", "/health", "-listen", self, "-role", "upstream")
	if err != nil {
		return err
	}
	defer upstream.stop()
	rproxy, err := startProcess("rproxy", "/health", "-listen", self, "-role", "rproxy", "-upstream", upstream.url)
	if err != nil {
		return err
	}
	defer rproxy.stop()
	// Every scenario gets a tokentap of its own on an empty store, so that
	// what the store holds after a clean stop is that scenario's.
	empty, err := emptyStoreBytes(c.sidecarBin, upstream.url, filepath.Join(tmp, "empty"))
	if err != nil {
		return err
	}
	tokentap := &path{name: "tokentap", upstreamProc: upstream, rollout: true}
	paths := []*path{
		{name: "direct", base: upstream.url, upstreamProc: upstream},
		{name: "reverse-proxy", base: rproxy.url, proc: rproxy, upstreamProc: upstream, mallocsURL: rproxy.url + "/debug/mallocs"},
		tokentap,
	}
	rep := report{Machine: machine(), Config: map[string]any{"rounds": c.rounds, "duration": c.duration.String(), "streams": c.streams,
		"fresh_rollouts": c.fresh, "growing_rollouts": c.growing, "turns": c.turns}}
	for i, name := range strings.Split(c.scenarios, ",") {
		sc, ok := scenarios(c)[name]
		if !ok {
			return fmt.Errorf("unknown scenario %q", name)
		}
		fmt.Fprintf(os.Stderr, "scenario %s\n", sc.Name)
		res, err := runOnFreshStore(sc, paths, tokentap, c, upstream.url, filepath.Join(tmp, fmt.Sprintf("data-%d", i)), empty)
		if err != nil {
			return err
		}
		rep.Scenarios = append(rep.Scenarios, res)
	}
	rep.print(os.Stdout)
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(c.out, b, 0o644); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s\n", c.out)
	return nil
}

// scenario is one load shape.
type scenario struct {
	Name        string `json:"name"`
	Stream      bool   `json:"stream"`
	Concurrency int    `json:"concurrency"`
	TokenDelay  time.Duration
	rounds      int
	oneWave     bool // each worker sends one request; the scenario ends when all are done
	// Rollouts, when set, makes a measurement that many rollouts of Turns
	// calls each, shared out among the workers (rollouts.go).
	Rollouts int `json:"rollouts,omitempty"`
	Turns    int `json:"turns,omitempty"`
}

func scenarios(c config) map[string]scenario {
	m := map[string]scenario{
		"json-c1":  {Name: "JSON, concurrency 1", Concurrency: 1, rounds: c.rounds},
		"json-c32": {Name: "JSON, concurrency 32", Concurrency: 32, rounds: c.rounds},
		"sse-c32":  {Name: "SSE, concurrency 32", Stream: true, Concurrency: 32, rounds: c.rounds},
		"streams":  {Name: fmt.Sprintf("%d concurrent long streams (10 ms per token)", c.streams), Stream: true, Concurrency: c.streams, TokenDelay: 10 * time.Millisecond, rounds: 1, oneWave: true},
	}
	for name, sc := range rolloutScenarios(c) {
		m[name] = sc
	}
	return m
}

// path is one way to the upstream.
type path struct {
	name         string
	base         string
	proc         *process // the proxy process (nil for direct)
	upstreamProc *process
	mallocsURL   string
	rollout      bool // key calls by rollout (tokentap)
	sent         int  // calls sent in the scenario so far, warm-ups included
}

func (p *path) url(rollout string) string {
	if p.rollout {
		return fmt.Sprintf("%s/rollout/%s/attempt/0/v1/chat/completions", p.base, rollout)
	}
	return p.base + "/v1/chat/completions"
}

// measurement is one path in one round.
type measurement struct {
	Path         string  `json:"path"`
	Round        int     `json:"round"`
	Calls        int     `json:"calls"`
	Errors       int     `json:"errors"`
	RPS          float64 `json:"rps"`
	P50ms        float64 `json:"p50_ms"`
	P99ms        float64 `json:"p99_ms"`
	CPUPer1k     float64 `json:"proxy_cpu_seconds_per_1k_calls"`
	UpCPUPer1k   float64 `json:"upstream_cpu_seconds_per_1k_calls"`
	AllocsPer    float64 `json:"proxy_allocs_per_call"`
	PeakRSSBytes int64   `json:"proxy_peak_rss_bytes"`
	// PeakAnonBytes is the peak of anonymous memory (heap, stacks), sampled
	// every 20 ms; the total RSS also counts file pages the process maps
	// (Badger's memory-mapped files), which the kernel reclaims at will.
	PeakAnonBytes int64 `json:"proxy_peak_anon_rss_bytes"`
}

func runScenario(sc scenario, paths []*path, c config) (scenarioResult, error) {
	res := scenarioResult{Scenario: sc}
	for round := 1; round <= sc.rounds; round++ {
		for _, p := range paths {
			if !sc.fixed() && c.warmup > 0 {
				lat, errs := load(p, sc, c.warmup, 0)
				p.sent += len(lat) + errs
			}
			m, err := measure(p, sc, c.duration, round)
			p.sent += m.Calls + m.Errors
			if err != nil {
				return res, err
			}
			res.Rounds = append(res.Rounds, m)
			fmt.Fprintf(os.Stderr, "  round %d %-14s %8.0f rps  p50 %6.2f ms  p99 %6.2f ms  errors %d\n", round, p.name, m.RPS, m.P50ms, m.P99ms, m.Errors)
		}
	}
	res.summarize(paths)
	return res, nil
}

func measure(p *path, sc scenario, d time.Duration, round int) (measurement, error) {
	m := measurement{Path: p.name, Round: round}
	if p.proc != nil {
		resetPeakRSS(p.proc.cmd.Process.Pid)
	}
	cpu0, up0 := cpuSeconds(p.proc), cpuSeconds(p.upstreamProc)
	mallocs0 := mallocs(p.mallocsURL)
	stopSampling := make(chan struct{})
	anon := make(chan int64)
	go func() {
		var peak int64
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			if p.proc != nil {
				peak = max(peak, statusKB(p.proc.cmd.Process.Pid, "RssAnon:"))
			}
			select {
			case <-stopSampling:
				anon <- peak
				return
			case <-t.C:
			}
		}
	}()
	start := time.Now()
	lat, errs := load(p, sc, d, round)
	elapsed := time.Since(start)
	close(stopSampling)
	m.PeakAnonBytes = <-anon
	cpu1, up1 := cpuSeconds(p.proc), cpuSeconds(p.upstreamProc)
	mallocs1 := mallocs(p.mallocsURL)
	m.Calls, m.Errors = len(lat), errs
	if len(lat) == 0 {
		return m, fmt.Errorf("%s: no call succeeded (%d errors)", p.name, errs)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	m.RPS = float64(len(lat)) / elapsed.Seconds()
	m.P50ms = float64(lat[len(lat)/2]) / 1e6
	m.P99ms = float64(lat[len(lat)*99/100]) / 1e6
	m.CPUPer1k = (cpu1 - cpu0) / float64(len(lat)) * 1000
	m.UpCPUPer1k = (up1 - up0) / float64(len(lat)) * 1000
	if p.mallocsURL != "" {
		m.AllocsPer = (mallocs1 - mallocs0) / float64(len(lat))
	}
	if p.proc != nil {
		m.PeakRSSBytes = peakRSS(p.proc.cmd.Process.Pid)
	}
	return m, nil
}

// load runs sc against p for d (or one wave, or its rollouts) and returns
// the latencies of the calls that succeeded.
func load(p *path, sc scenario, d time.Duration, round int) ([]time.Duration, int) {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConns: 2 * sc.Concurrency, MaxIdleConnsPerHost: 2 * sc.Concurrency, DisableCompression: true,
		Proxy: nil,
	}}
	defer client.CloseIdleConnections()
	turns := scenarioTurns(sc)
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	type out struct {
		lat      []time.Duration
		errs     int
		firstErr string
	}
	results := make(chan out, sc.Concurrency)
	for w := range sc.Concurrency {
		go func() {
			var o out
			buf := make([]byte, 32<<10)
			for i := 0; ; i++ {
				rollout, ok := sc.rollout(ctx.Err() != nil, &next, round, w, i)
				if !ok {
					break
				}
				for _, t := range turns {
					lat, err := call(client, p.url(rollout), sc, t, buf)
					if err != nil {
						o.errs++
						if o.firstErr == "" {
							o.firstErr = err.Error()
						}
						continue
					}
					o.lat = append(o.lat, lat)
				}
			}
			results <- o
		}()
	}
	var lat []time.Duration
	errs := 0
	for range sc.Concurrency {
		o := <-results
		lat = append(lat, o.lat...)
		errs += o.errs
		if o.firstErr != "" && os.Getenv("BENCH_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "    %s: %s\n", p.name, o.firstErr)
		}
	}
	return lat, errs
}

// call sends one turn and reads the whole answer.
func call(client *http.Client, url string, sc scenario, t turn, buf []byte) (time.Duration, error) {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(t.body))
	req.Header.Set("Content-Type", "application/json")
	if sc.TokenDelay > 0 {
		req.Header.Set("X-Bench-Token-Delay", sc.TokenDelay.String())
	}
	if t.prompt > 0 {
		req.Header.Set(promptTokensHeader, strconv.Itoa(t.prompt))
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s %v", resp.Status, err)
	}
	return time.Since(t0), nil
}

// loadOnly drives one target with one scenario's load, for profiling:
//
//	go run ./bench -role load -url http://127.0.0.1:8100 -c 32 -duration 30s [-stream]
func loadOnly(args []string) int {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	base := fs.String("url", "http://127.0.0.1:8100", "tokentap's base URL")
	c := fs.Int("c", 32, "concurrency")
	d := fs.Duration("duration", 30*time.Second, "how long")
	stream := fs.Bool("stream", false, "SSE")
	fs.Parse(args)
	p := &path{name: "target", base: *base, rollout: true}
	lat, errs := load(p, scenario{Stream: *stream, Concurrency: *c}, *d, 0)
	fmt.Printf("%d calls, %.0f rps, %d errors\n", len(lat), float64(len(lat))/d.Seconds(), errs)
	return 0
}
