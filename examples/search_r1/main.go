// Command search_r1 runs the Search-R1 recipe through tokentap, end to end:
// agents that alternate <search> and <information> turns and end with an
// <answer>, a BM25 retriever over a small corpus, an exact-match reward, and
// a trainer that tails tokentap's feed of completed attempts for their
// trajectories and reads the training triplets back.
//
// With no --base-url it builds tokentap and starts it with --demo (a
// simulated vLLM whose scripted policy plays the model): no GPU needed.
// With --base-url it talks to your tokentap in front of your vLLM instead,
// and changes nothing else:
//
//	go run ./examples/search_r1
//	go run ./examples/search_r1 --base-url http://sidecar:8100 --model Qwen/Qwen2.5-7B-Instruct
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

//go:embed data/corpus.jsonl
var corpusData []byte

//go:embed data/questions.jsonl
var questionsData []byte

type options struct {
	baseURL      string
	model        string
	apiKey       string
	adminToken   string
	rollouts     int
	concurrency  int
	maxTurns     int
	maxTokens    int
	temperature  float64
	stream       bool
	retriever    string
	seed         uint64
	samplingSeed int64
	triplets     string
	trajectories string
	feedCursor   string
	sidecarBin   string
	demoTemplate string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o options
	fs := flag.NewFlagSet("search_r1", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.baseURL, "base-url", "", "tokentap sidecar URL (e.g. http://sidecar:8100); empty: start one with --demo")
	fs.StringVar(&o.model, "model", "Qwen/Qwen2.5-1.5B-Instruct", "model name vLLM serves")
	fs.StringVar(&o.apiKey, "api-key", "token-abc123", "API key the agents send (vLLM's --api-key, if any)")
	fs.StringVar(&o.adminToken, "admin-token", "", "tokentap's --admin-token, for reading the trajectories and triplets")
	fs.IntVar(&o.rollouts, "rollouts", 16, "number of rollouts (questions)")
	fs.IntVar(&o.concurrency, "concurrency", 8, "rollouts run at once")
	fs.IntVar(&o.maxTurns, "max-turns", 4, "LLM turns per rollout")
	fs.IntVar(&o.maxTokens, "max-tokens", 500, "max_tokens per turn")
	fs.Float64Var(&o.temperature, "temperature", 1.0, "sampling temperature (1.0 for on-policy RL)")
	fs.BoolVar(&o.stream, "stream", false, "stream the answers")
	fs.StringVar(&o.retriever, "retriever", "", "a Search-R1 retrieval server (POST /retrieve); empty: the built-in BM25 over data/corpus.jsonl")
	fs.Uint64Var(&o.seed, "seed", 1, "picks the questions")
	fs.Int64Var(&o.samplingSeed, "sampling-seed", 0, "sent as every call's seed (0: none); runs with different sampling seeds are different draws, as a GRPO group needs")
	fs.StringVar(&o.triplets, "triplets", "search_r1_triplets.jsonl", "where to write the training triplets")
	fs.StringVar(&o.trajectories, "trajectories", "search_r1_trajectories.jsonl", "where to write the trajectories tokentap merged (one line per trajectory)")
	fs.StringVar(&o.feedCursor, "feed-cursor", "0", "where to start reading tokentap's trajectories feed (the cursor a previous run printed)")
	fs.StringVar(&o.sidecarBin, "sidecar-bin", "", "tokentap binary for the demo (default: go build ./cmd/sidecar)")
	fs.StringVar(&o.demoTemplate, "demo-template", "qwen2.5", "the demo's chat template: qwen2.5 keeps history, qwen3 drops earlier <think> blocks (and serves Qwen/Qwen3-8B)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	modelSet := false
	fs.Visit(func(f *flag.Flag) { modelSet = modelSet || f.Name == "model" })
	if o.demoTemplate == "qwen3" && !modelSet {
		o.model = "Qwen/Qwen3-8B" // what the qwen3 demo serves
	}
	if o.rollouts < 1 || o.concurrency < 1 || o.maxTurns < 1 {
		fmt.Fprintln(stderr, "search_r1: --rollouts, --concurrency and --max-turns must be positive")
		return 2
	}
	if err := runRecipe(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "search_r1:", err)
		return 1
	}
	return 0
}

func runRecipe(ctx context.Context, o options, stdout, stderr io.Writer) error {
	start := time.Now()
	questions, err := readJSONL[question](questionsData)
	if err != nil {
		return fmt.Errorf("questions: %w", err)
	}
	if o.retriever == "" {
		docs, err := readJSONL[passage](corpusData)
		if err != nil {
			return fmt.Errorf("corpus: %w", err)
		}
		url, stop, err := serveRetriever(newBM25(docs))
		if err != nil {
			return err
		}
		defer stop()
		o.retriever = url
	}
	demo := o.baseURL == ""
	if demo {
		url, stop, err := startDemoSidecar(ctx, o.sidecarBin, o.demoTemplate, stderr)
		if err != nil {
			return err
		}
		defer stop()
		o.baseURL = url
	}
	o.baseURL = strings.TrimSuffix(o.baseURL, "/")

	// Each run gets its own rollout ids: a completed attempt takes no more calls.
	run := fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffff)
	rng := rand.New(rand.NewPCG(o.seed, 0))
	rng.Shuffle(len(questions), func(i, j int) { questions[i], questions[j] = questions[j], questions[i] })
	client := &http.Client{Timeout: 10 * time.Minute}
	a := &agent{sidecar: o.baseURL, apiKey: o.apiKey, model: o.model, retriever: o.retriever, maxTurns: o.maxTurns,
		maxTokens: o.maxTokens, temperature: o.temperature, samplingSeed: o.samplingSeed, stream: o.stream, http: client}

	ids := make([]string, o.rollouts)
	want := map[string]bool{}
	for i := range ids {
		ids[i] = fmt.Sprintf("sr1-%s-%03d", run, i)
		want[ids[i]+"/0"] = true
	}

	// The trainer tails tokentap's feed of completed attempts while the
	// agents run, as a trainer in its own process would; whichever side
	// fails first stops the other.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type tailed struct {
		st  feedStats
		err error
	}
	feed := make(chan tailed, 1)
	go func() {
		st, err := tailTrajectories(ctx, client, o.baseURL, o.adminToken, o.feedCursor, want, o.trajectories)
		if err != nil {
			cancel(fmt.Errorf("read trajectories: %w", err))
		}
		feed <- tailed{st, err}
	}()

	bar := newProgress(stderr, o.rollouts)
	outcomes := make([]outcome, o.rollouts)
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.concurrency)
	for i, rid := range ids {
		q := questions[i%len(questions)]
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var err error
			if outcomes[i], err = a.rollout(ctx, rid, q); err != nil {
				cancel(err)
			}
			bar.done(outcomes[i].reward)
		})
	}
	wg.Wait()
	bar.finish()
	if err := context.Cause(ctx); err != nil {
		<-feed
		return err
	}
	// Every attempt is complete, so the feed has them all by now.
	var tr tailed
	select {
	case tr = <-feed:
	case <-time.After(time.Minute):
		cancel(errors.New("the trajectories feed did not serve every completed attempt within a minute"))
		tr = <-feed
	}
	if tr.err != nil {
		return context.Cause(ctx)
	}

	st, err := readTriplets(ctx, client, o.baseURL, o.adminToken, ids, o.triplets)
	if err != nil {
		return fmt.Errorf("read triplets: %w", err)
	}
	printSummary(stdout, o, demo, outcomes, st, tr.st, time.Since(start))
	if st.invalidCalls > 0 {
		return fmt.Errorf("%d calls have invalid token IDs (see their token_ids_problem in the calls view)", st.invalidCalls)
	}
	return nil
}

func printSummary(w io.Writer, o options, demo bool, outcomes []outcome, st trainerStats, fs feedStats, wall time.Duration) {
	where := o.baseURL
	if demo {
		where = "tokentap --demo (simulated vLLM, scripted policy)"
	}
	right := 0
	turns := 0
	for _, out := range outcomes {
		if out.reward == 1 {
			right++
		}
		turns += out.turns
	}
	fmt.Fprintf(w, "\nSearch-R1 through %s\n", where)
	fmt.Fprintf(w, "  %-24s %d\n", "rollouts", len(outcomes))
	fmt.Fprintf(w, "  %-24s %d (%.1f per rollout)\n", "calls", st.calls, float64(st.calls)/float64(len(outcomes)))
	fmt.Fprintf(w, "  %-24s %d / %d\n", "tokens in / out", st.tokensIn, st.tokensOut)
	fmt.Fprintf(w, "  %-24s %.2f (%d of %d exact matches)\n", "mean reward", float64(right)/float64(len(outcomes)), right, len(outcomes))
	fmt.Fprintf(w, "  %-24s %d\n", "calls with invalid IDs", st.invalidCalls)
	fmt.Fprintf(w, "  %-24s %s\n", "wall time", wall.Round(time.Millisecond))
	fmt.Fprintf(w, "  %-24s %d -> %s\n", "triplets", st.triplets, o.triplets)
	fmt.Fprintf(w, "  %-24s %d (%d multi-turn) -> %s\n", "trajectories", fs.trajectories, fs.multiTurn, o.trajectories)
	fmt.Fprintf(w, "  %-24s %s\n", "drifted calls", driftSummary(fs.drifted))
	for _, d := range fs.drift {
		fmt.Fprintf(w, "    %s\n", d)
	}
	fmt.Fprintf(w, "  %-24s %s (--feed-cursor %s resumes after this run)\n", "feed cursor", fs.cursor, fs.cursor)
	if len(outcomes) > 0 {
		out := outcomes[0]
		fmt.Fprintf(w, "\nrollout %s: %q -> %q (gold %q), reward %.0f after %d turns\n", out.rolloutID, out.question.Question, out.answer, out.question.Golden, out.reward, out.turns)
		for _, r := range st.first {
			reward := "null"
			if r.Reward != nil {
				reward = fmt.Sprint(*r.Reward)
			}
			fmt.Fprintf(w, "  triplet seq %d: prompt %d IDs %s, response %d IDs %s, logprobs %s, reward %s\n",
				r.SequenceID, len(r.PromptTokenIDs), head(r.PromptTokenIDs), len(r.ResponseTokenIDs), head(r.ResponseTokenIDs), head(r.Logprobs), reward)
		}
	}
}

// head prints the first few values of a list.
func head[T any](xs []T) string {
	if xs == nil {
		return "null"
	}
	s := strings.Trim(fmt.Sprint(xs[:min(4, len(xs))]), "[]")
	if len(xs) > 4 {
		s += " …"
	}
	return "[" + s + "]"
}

// startDemoSidecar builds tokentap (unless given a binary) and runs it with
// --demo on a free local port, recording logprobs the agents do not see.
func startDemoSidecar(ctx context.Context, bin, template string, stderr io.Writer) (string, func(), error) {
	dir, err := os.MkdirTemp("", "search_r1")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	if bin == "" {
		gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
		root := filepath.Dir(strings.TrimSpace(string(gomod)))
		if err != nil || strings.TrimSpace(string(gomod)) == "" || strings.TrimSpace(string(gomod)) == os.DevNull {
			cleanup()
			return "", nil, errors.New("run this from the tokentap repository, or pass --sidecar-bin")
		}
		bin = filepath.Join(dir, "sidecar")
		fmt.Fprintln(stderr, "building tokentap…")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/sidecar")
		build.Dir, build.Stderr = root, stderr
		if err := build.Run(); err != nil {
			cleanup()
			return "", nil, fmt.Errorf("build tokentap: %w", err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cleanup()
		return "", nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	var logs strings.Builder
	cmd := exec.Command(bin, "--demo", "--demo-template", template, "--in-memory", "--logprobs", "--listen", addr, "--log-level", "warn")
	cmd.Stderr = &lockedWriter{w: &logs}
	if err := cmd.Start(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("start tokentap: %w", err)
	}
	stop := func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		cleanup()
	}
	url := "http://" + addr
	for deadline := time.Now().Add(30 * time.Second); ; {
		if resp, err := http.Get(url + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, stop, nil
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("tokentap did not become ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// progress draws a one-line progress bar when stderr is a terminal.
type progress struct {
	w            io.Writer
	tty          bool
	total        int
	n            atomic.Int32
	rewards      atomic.Int64 // in thousandths
	mu           sync.Mutex
	lastDrawn    time.Time
	finishedDraw bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	p.draw(true)
	return p
}

func (p *progress) done(reward float64) {
	p.n.Add(1)
	p.rewards.Add(int64(reward * 1000))
	p.draw(false)
}

func (p *progress) draw(force bool) {
	if !p.tty {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !force && time.Since(p.lastDrawn) < 50*time.Millisecond && int(p.n.Load()) < p.total {
		return
	}
	p.lastDrawn = time.Now()
	n := int(p.n.Load())
	const width = 30
	filled := width * n / max(p.total, 1)
	mean := 0.0
	if n > 0 {
		mean = float64(p.rewards.Load()) / 1000 / float64(n)
	}
	fmt.Fprintf(p.w, "\r[%s%s] %d/%d rollouts  mean reward %.2f", strings.Repeat("#", filled), strings.Repeat(" ", width-filled), n, p.total, mean)
}

func (p *progress) finish() {
	if p.tty {
		p.draw(true)
		fmt.Fprintln(p.w)
	}
}
