package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// soak runs tokentap under steady mixed load for a long time with a short
// retention and reports its memory and disk over time: both must level off
// once the retention window is full, however long the run.
//
//	go run ./bench -role soak -duration 30m -retention 5m -interval 1m
func soak(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	duration := fs.Duration("duration", 30*time.Minute, "how long to drive load")
	retention := fs.Duration("retention", 5*time.Minute, "tokentap's --retention")
	interval := fs.Duration("interval", time.Minute, "sampling interval")
	concurrency := fs.Int("c", 8, "concurrent agents (half stream)")
	rate := fs.Float64("rate", 0, "calls per second across all agents (0: as fast as they go)")
	sidecarBin := fs.String("sidecar-bin", "", "tokentap binary (default: go build ./cmd/sidecar)")
	fs.Parse(args)
	if err := runSoak(*duration, *retention, *interval, *concurrency, *rate, *sidecarBin); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 1
	}
	return 0
}

type soakSample struct {
	elapsed           time.Duration
	calls, errs       int64
	anon, rss, onDisk int64
}

func runSoak(duration, retention, interval time.Duration, concurrency int, rate float64, sidecarBin string) error {
	tmp, err := os.MkdirTemp("", "tokentap-soak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if sidecarBin, err = buildSidecar(sidecarBin, tmp); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	upstream, err := startProcess("upstream", "/health", "-listen", self, "-role", "upstream")
	if err != nil {
		return err
	}
	defer upstream.stop()
	data := filepath.Join(tmp, "data")
	tokentap, err := startProcess("tokentap", "/healthz", "--listen", sidecarBin, "--upstream", upstream.url,
		"--data", data, "--retention", retention.String(), "--log-level", "warn")
	if err != nil {
		return err
	}
	defer tokentap.stop()

	m := machine()
	fmt.Printf("soak: %s of %d agents (half streaming, rate %v/s), retention %s; %d cores (%s), %s\n", duration, concurrency, rate, retention, m["cores"], m["cpu"], m["go"])
	// Ctrl-C ends the run early, with its figures.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, duration)
	defer cancel()
	var pace <-chan time.Time // nil: unpaced
	if rate > 0 {
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		pace = tick.C
	}
	var calls, errs atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: concurrency}}
	for w := range concurrency {
		body := requestBody(w%2 == 1)
		wg.Go(func() {
			buf := make([]byte, 32<<10)
			for i := 0; ctx.Err() == nil; i++ {
				if pace != nil {
					select {
					case <-pace:
					case <-ctx.Done():
						return
					}
				}
				// A new rollout every 20 calls, as agents finish episodes.
				url := fmt.Sprintf("%s/rollout/soak-%d-%d/attempt/0/v1/chat/completions", tokentap.url, w, i/20)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				calls.Add(1)
			}
		})
	}

	pid := tokentap.cmd.Process.Pid
	sample := func(start time.Time) soakSample {
		return soakSample{
			elapsed: time.Since(start).Round(time.Second), calls: calls.Load(), errs: errs.Load(),
			anon: statusKB(pid, "RssAnon:"), rss: statusKB(pid, "VmRSS:"), onDisk: diskBytes(data),
		}
	}
	start := time.Now()
	var samples []soakSample
	fmt.Printf("\n%9s %10s %7s %10s %10s %10s\n", "elapsed", "calls", "errors", "anon MiB", "RSS MiB", "disk MiB")
	t := time.NewTicker(interval)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-t.C:
		}
		s := sample(start)
		samples = append(samples, s)
		fmt.Printf("%9s %10d %7d %10.1f %10.1f %10.1f\n", s.elapsed, s.calls, s.errs, mib(s.anon), mib(s.rss), mib(s.onDisk))
	}
	t.Stop()
	wg.Wait()
	return soakVerdict(samples, retention)
}

// soakVerdict compares the second half of the run with the moment the
// retention window first filled (plus a compaction period): disk and
// anonymous memory may wobble but must not keep growing.
func soakVerdict(samples []soakSample, retention time.Duration) error {
	var settled []soakSample
	for _, s := range samples {
		if s.elapsed >= 2*retention+time.Minute {
			settled = append(settled, s)
		}
	}
	if len(settled) < 2 {
		fmt.Printf("\nrun longer than 2×retention+1m (%s) for a verdict on growth\n", 2*retention+time.Minute)
		return nil
	}
	first, last := settled[0], settled[len(settled)-1]
	var peakDisk, peakAnon int64
	for _, s := range settled {
		peakDisk, peakAnon = max(peakDisk, s.onDisk), max(peakAnon, s.anon)
	}
	rate := float64(last.calls-first.calls) / (last.elapsed - first.elapsed).Seconds()
	fmt.Printf("\nafter the retention window filled: %.0f calls/s, disk %.1f→%.1f MiB (peak %.1f), anon %.1f→%.1f MiB (peak %.1f)\n",
		rate, mib(first.onDisk), mib(last.onDisk), mib(peakDisk), mib(first.anon), mib(last.anon), mib(peakAnon))
	if last.errs > 0 {
		return fmt.Errorf("%d failed calls", last.errs)
	}
	// Badger reclaims in steps (whole value-log files, periodic
	// compactions), so allow one step of slack over the settled level.
	if last.onDisk > 2*first.onDisk+256<<20 {
		return fmt.Errorf("disk kept growing past the retention window: %.1f → %.1f MiB", mib(first.onDisk), mib(last.onDisk))
	}
	if last.anon > 2*first.anon+64<<20 {
		return fmt.Errorf("memory kept growing: %.1f → %.1f MiB", mib(first.anon), mib(last.anon))
	}
	fmt.Println("no growth beyond retention")
	return nil
}

// diskBytes is the space a directory tree occupies, measured from outside
// rather than read from tokentap's own metric (allocated blocks, so
// sparse preallocated files count as what they really use).
func diskBytes(dir string) int64 {
	var total int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			}
		}
		return nil
	})
	return total
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
