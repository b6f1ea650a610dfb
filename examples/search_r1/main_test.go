package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/tokenids"
)

var sidecarBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "search_r1_test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sidecarBin = filepath.Join(dir, "sidecar")
	build := exec.Command("go", "build", "-o", sidecarBin, "../../cmd/sidecar")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sidecar:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func readRows(t *testing.T, path string) []trainingRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readJSONL[trainingRow](b)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// checkRows checks what a trainer would: every rollout's turns in sequence
// order with a reward on its last turn, IDs and logprobs of equal length.
func checkRows(t *testing.T, rows []trainingRow, rollouts int, logprobs bool) {
	t.Helper()
	byRollout := map[string][]trainingRow{}
	for _, r := range rows {
		byRollout[r.RolloutID] = append(byRollout[r.RolloutID], r)
		if len(r.PromptTokenIDs) == 0 || len(r.ResponseTokenIDs) == 0 {
			t.Errorf("%s/%d: empty IDs", r.RolloutID, r.SequenceID)
		}
		if logprobs && len(r.Logprobs) != len(r.ResponseTokenIDs) {
			t.Errorf("%s/%d: %d logprobs for %d IDs", r.RolloutID, r.SequenceID, len(r.Logprobs), len(r.ResponseTokenIDs))
		}
	}
	if len(byRollout) != rollouts {
		t.Fatalf("%d rollouts in the JSONL, want %d", len(byRollout), rollouts)
	}
	for rid, turns := range byRollout {
		for i := range turns {
			if i > 0 && turns[i].SequenceID <= turns[i-1].SequenceID {
				t.Errorf("%s: sequence ids out of order: %d after %d", rid, turns[i].SequenceID, turns[i-1].SequenceID)
			}
			last := i == len(turns)-1
			if (turns[i].Reward != nil) != last {
				t.Errorf("%s: turn %d of %d has reward %v", rid, i+1, len(turns), turns[i].Reward)
			}
		}
	}
}

// The first five minutes: the demo runs end to end with no GPU.
func TestDemo(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--rollouts", "6", "--concurrency", "3", "--sidecar-bin", sidecarBin,
		"--triplets", filepath.Join(dir, "t.jsonl"), "--trajectories", filepath.Join(dir, "tr.jsonl")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"rollouts                 6", "calls with invalid IDs   0", "mean reward"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout.String())
		}
	}
	checkRows(t, readRows(t, filepath.Join(dir, "t.jsonl")), 6, true)
	checkTrajectories(t, readTrajectories(t, filepath.Join(dir, "tr.jsonl")), stdout.String(), 6)
}

// recorder keeps every answer the simulated vLLM sent (asked for IDs by
// tokentap), to hold the example's triplets against.
type recorder struct {
	mu      sync.Mutex
	answers []string // "prompt|response" of each generation
	h       http.Handler
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rw := httptest.NewRecorder()
	rc.h.ServeHTTP(rw, r)
	for k, v := range rw.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rw.Code)
	w.Write(rw.Body.Bytes())
	if r.URL.Path != "/v1/chat/completions" || rw.Code != 200 {
		return
	}
	_, req, _ := tokenids.PrepareRequest(tokenids.Chat, body, tokenids.Options{})
	var res tokenids.Result
	if bytes.HasPrefix(rw.Body.Bytes(), []byte("data:")) {
		st := tokenids.NewStream(&req, tokenids.Strip{})
		er := tokenids.NewEventReader(bytes.NewReader(rw.Body.Bytes()), 1<<20)
		for ev, err := er.Next(); err == nil; ev, err = er.Next() {
			st.Event(ev.Data)
		}
		res = st.Result()
	} else {
		res, _, _ = tokenids.ParseResponse(&req, rw.Body.Bytes(), tokenids.Strip{})
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ch := range res.Choices {
		rc.answers = append(rc.answers, fmt.Sprint(res.PromptTokenIDs, "|", ch.TokenIDs))
	}
}

func (rc *recorder) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.answers = nil
}

// produced is the set of "prompt|response" vLLM sent since the last reset.
func (rc *recorder) produced() map[string]bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make(map[string]bool, len(rc.answers))
	for _, a := range rc.answers {
		out[a] = true
	}
	return out
}

// With --base-url the example talks to a tokentap started separately (here
// in front of a simulated vLLM that records what it sends), and every
// triplet it writes holds exactly the IDs vLLM produced, and so does every
// turn of every trajectory. With Qwen3's template, which drops the
// reasoning of earlier turns, the turns drift apart and the example says so.
func TestBaseURL(t *testing.T) {
	for _, template := range []string{"qwen2.5", "qwen3"} {
		t.Run(template, func(t *testing.T) { testBaseURL(t, template) })
	}
}

func testBaseURL(t *testing.T, template string) {
	rec := &recorder{h: vllmsim.New(vllmsim.Options{Policy: vllmsim.SearchR1Policy, Template: template})}
	sim := httptest.NewServer(rec)
	defer sim.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	sidecar := exec.Command(sidecarBin, "--upstream", sim.URL, "--in-memory", "--listen", addr, "--admin-token", "trainer-secret", "--log-level", "warn")
	if err := sidecar.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sidecar.Process.Signal(syscall.SIGTERM); sidecar.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("sidecar did not start")
		}
	}

	model := "Qwen/Qwen2.5-1.5B-Instruct" // what each template's simulator serves
	if template == "qwen3" {
		model = "Qwen/Qwen3-8B"
	}
	// Two runs on one sidecar: the second tails the feed from the start
	// again and must pass over the first run's attempts.
	for _, rollouts := range []int{5, 3} {
		rec.reset()
		dir := t.TempDir()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"--base-url", "http://" + addr, "--model", model, "--admin-token", "trainer-secret", "--stream",
			"--rollouts", fmt.Sprint(rollouts), "--triplets", filepath.Join(dir, "t.jsonl"), "--trajectories", filepath.Join(dir, "tr.jsonl")}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), "Search-R1 through http://"+addr) {
			t.Errorf("summary: %s", stdout.String())
		}
		rows := readRows(t, filepath.Join(dir, "t.jsonl"))
		checkRows(t, rows, rollouts, false)
		produced := rec.produced()
		if len(rows) != len(produced) {
			t.Errorf("%d triplets for %d generations", len(rows), len(produced))
		}
		for _, r := range rows {
			if !produced[fmt.Sprint(r.PromptTokenIDs, "|", r.ResponseTokenIDs)] {
				t.Errorf("%s/%d: IDs that vLLM did not produce", r.RolloutID, r.SequenceID)
			}
		}
		trajs := readTrajectories(t, filepath.Join(dir, "tr.jsonl"))
		drifted := checkTrajectories(t, trajs, stdout.String(), rollouts)
		checkTurns(t, "http://"+addr, "trainer-secret", trajs, produced)
		if template == "qwen3" && drifted == 0 {
			t.Errorf("no drift with Qwen3's template:\n%s", stdout.String())
		}
		if template == "qwen2.5" && drifted != 0 {
			t.Errorf("drift with Qwen2.5's template, which keeps history:\n%s", stdout.String())
		}
	}
}

func TestExactMatch(t *testing.T) {
	for _, tc := range []struct {
		answer string
		golden []string
		want   float64
	}{
		{"Paris", []string{"Paris"}, 1},
		{" the  Euro. ", []string{"euro"}, 1},
		{"Washington D.C", []string{"Washington, D.C."}, 1},
		{"Lyon", []string{"Paris"}, 0},
		{"", []string{""}, 0},
	} {
		if got := exactMatch(tc.answer, tc.golden); got != tc.want {
			t.Errorf("exactMatch(%q, %q) = %v", tc.answer, tc.golden, got)
		}
	}
}

func TestRetrieverFindsTheCountry(t *testing.T) {
	docs, err := readJSONL[passage](corpusData)
	if err != nil {
		t.Fatal(err)
	}
	qs, _ := readJSONL[question](questionsData)
	ix := newBM25(docs)
	found := 0
	for _, q := range qs {
		if answerRetrieved(ix.search(q.Question, 3), q.Golden) {
			found++
		}
	}
	if found < len(qs)*9/10 {
		t.Errorf("the answer is in the top 3 passages for %d of %d questions", found, len(qs))
	}
}

func answerRetrieved(hits []hit, golden []string) bool {
	for _, h := range hits {
		for _, g := range golden {
			if strings.Contains(h.doc.Text, g) {
				return true
			}
		}
	}
	return false
}
