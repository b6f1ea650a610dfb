package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// The scenarios of a real RL step, beside the steady load of main.go:
//
//   - fresh: a wave of rollouts arriving at once, each a new rollout id with
//     one call (tokentap allocates a sequence counter for every one of them);
//   - growing: multi-turn rollouts whose context grows by the previous answer
//     and ~1,100 new tokens a turn, several at once, each turn waiting for
//     the previous one (tokentap stores each turn as a delta on its parent).
//
// Both are a fixed amount of work per measurement (so many rollouts, so many
// turns each) rather than a duration, and every scenario runs on a fresh
// tokentap store whose size after a clean stop is reported per call.

// turnNewTokens is what each turn of a growing rollout adds to its prompt
// after the previous answer (the first turn's whole prompt).
const turnNewTokens = 1100

func rolloutFlags(c *config) {
	flag.IntVar(&c.fresh, "fresh", 10000, "rollouts of the fresh scenario per path per round (one call each, 256 concurrent)")
	flag.IntVar(&c.growing, "growing", 32, "rollouts of the growing scenario per path per round (8 concurrent)")
	flag.IntVar(&c.turns, "turns", 30, "turns of each growing rollout")
}

func rolloutScenarios(c config) map[string]scenario {
	return map[string]scenario{
		"fresh":   {Name: fmt.Sprintf("%d fresh rollouts at once, one call each, concurrency 256", c.fresh), Concurrency: 256, Rollouts: c.fresh, Turns: 1, rounds: c.rounds},
		"growing": {Name: fmt.Sprintf("%d-turn rollouts, context growing by %d tokens a turn, %d rollouts 8 at once", c.turns, turnNewTokens+responseTokens, c.growing), Concurrency: 8, Rollouts: c.growing, Turns: c.turns, rounds: c.rounds},
	}
}

// fixed says a measurement is a fixed amount of work, with no warm-up.
func (sc scenario) fixed() bool { return sc.oneWave || sc.Rollouts > 0 }

// rollout is the rollout id of a worker's i-th run of the scenario's turns,
// false when the worker is done. A duration's load reuses one rollout per
// worker; a fixed number of rollouts is shared out through next, each with an
// id of its own.
func (sc scenario) rollout(ctxDone bool, next *atomic.Int64, round, worker, i int) (string, bool) {
	if sc.Rollouts == 0 {
		return fmt.Sprintf("bench-%d", worker), !sc.oneWave && !ctxDone || sc.oneWave && i == 0
	}
	r := next.Add(1) - 1
	return fmt.Sprintf("bench-%d-%d", round, r), r < int64(sc.Rollouts)
}

// turn is one call of a rollout.
type turn struct {
	body string
	// prompt is how many tokens the prompt has, sent in promptTokensHeader
	// so that the upstream answers with IDs that extend the previous turn's;
	// 0 for the static answer of 2,048 + 256 IDs.
	prompt int
	// raw is the call's payload, rawNew the part of it the previous turn
	// (its prompt and answer) did not already hold.
	raw, rawNew int
}

// payload is what a call carries: 4 B per token ID, 8 B per logprob (the
// benchmark neither asks for logprobs nor has tokentap inject them) and the
// content (request messages' contents and the answer's text).
func payload(tokenIDs, content int) int { return 4*tokenIDs + content }

func scenarioTurns(sc scenario) []turn {
	if sc.Turns <= 1 {
		raw := payload(promptTokens+responseTokens, len(systemPrompt)+len("lorem ipsum ")*(promptTokens/2)+len(answerText()))
		return []turn{{body: requestBody(sc.Stream), raw: raw, rawNew: raw}}
	}
	return growingTurns(sc.Turns)
}

// growingTurns are the calls of a conversation: each prompt is the previous
// one, the previous answer (as the assistant's message) and a new user
// message of turnNewTokens tokens.
func growingTurns(n int) []turn {
	answer := answerText()
	msgs := fmt.Sprintf(`{"role":"system","content":%q}`, systemPrompt)
	prompt, content := 0, len(systemPrompt)
	turns := make([]turn, n)
	for i := range turns {
		if i > 0 {
			msgs += fmt.Sprintf(`,{"role":"assistant","content":%q}`, answer)
			prompt, content = prompt+responseTokens, content+len(answer)
		}
		user := fmt.Sprintf("turn %d: %s", i+1, strings.Repeat("lorem ipsum ", turnNewTokens/2))
		msgs += fmt.Sprintf(`,{"role":"user","content":%q}`, user)
		prompt, content = prompt+turnNewTokens, content+len(user)
		t := turn{
			body:   fmt.Sprintf(`{"model":%q,"messages":[%s],"max_tokens":%d,"temperature":1.0,"stream":false}`, model, msgs, responseTokens),
			prompt: prompt,
			raw:    payload(prompt+responseTokens, content+len(answer)),
			rawNew: payload(turnNewTokens+responseTokens, len(user)+len(answer)),
		}
		if i == 0 {
			t.rawNew = t.raw
		}
		turns[i] = t
	}
	return turns
}

// storage is what a scenario left in tokentap's --data directory, measured
// after a clean stop.
type storage struct {
	// Calls is every call sent to tokentap in the scenario, warm-ups included.
	Calls int `json:"calls"`
	// Bytes is the directory's allocated bytes minus those of an empty store.
	Bytes      int64   `json:"bytes"`
	EmptyBytes int64   `json:"empty_store_bytes"`
	PerCall    float64 `json:"bytes_per_call"`
	// RawPerCall is a call's payload (see payload), NewRawPerCall the part
	// of it that its parent did not hold (the same for single-turn calls),
	// both averaged over the scenario's turns.
	RawPerCall    float64 `json:"raw_payload_bytes_per_call"`
	NewRawPerCall float64 `json:"new_raw_payload_bytes_per_call"`
	Turns         int     `json:"turns"`
	// RepeatedPrompt: each worker sends the same prompt again and again in
	// one rollout (the steady-load scenarios), so tokentap stores the calls
	// after the first as deltas on it; the fresh scenario's calls are the
	// single-turn calls stored whole.
	RepeatedPrompt bool `json:"repeated_prompt"`
}

func newStorage(sc scenario, calls int, bytes, empty int64) *storage {
	s := &storage{Calls: calls, Bytes: bytes - empty, EmptyBytes: empty, Turns: max(sc.Turns, 1), RepeatedPrompt: sc.Rollouts == 0 && !sc.oneWave}
	turns := scenarioTurns(sc)
	for _, t := range turns {
		s.RawPerCall += float64(t.raw) / float64(len(turns))
		s.NewRawPerCall += float64(t.rawNew) / float64(len(turns))
	}
	if calls > 0 {
		s.PerCall = float64(s.Bytes) / float64(calls)
	}
	return s
}

func (s *storage) print(w io.Writer) {
	fmt.Fprintf(w, "  tokentap on disk after a clean stop: %.1f KB per call (%d calls, %.1f MiB), %.2f× its raw payload of %.1f KB\n",
		s.PerCall/1000, s.Calls, mib(s.Bytes), s.PerCall/s.RawPerCall, s.RawPerCall/1000)
	if s.RepeatedPrompt {
		fmt.Fprintln(w, "  (one prompt repeated in each worker's rollout: calls after the first are stored as deltas on it)")
	}
	if s.Turns > 1 {
		fmt.Fprintf(w, "  per turn: %.2f× the %.1f KB of new tokens and text a turn adds; %.0f KB per %d-turn rollout\n",
			s.PerCall/s.NewRawPerCall, s.NewRawPerCall/1000, s.PerCall*float64(s.Turns)/1000, s.Turns)
	}
}

func startTokentap(bin, upstream, dir string) (*process, error) {
	return startProcess("tokentap", "/healthz", "--listen", bin, "--upstream", upstream, "--data", dir, "--log-level", "warn")
}

// emptyStoreBytes is the size of a store that recorded nothing, after a
// clean stop: Badger's fixed files, taken off every scenario's figure.
func emptyStoreBytes(bin, upstream, dir string) (int64, error) {
	tt, err := startTokentap(bin, upstream, dir)
	if err != nil {
		return 0, err
	}
	tt.stop()
	defer os.RemoveAll(dir)
	return diskBytes(dir), nil
}

// runOnFreshStore runs a scenario with tokentap (path tt) started on an
// empty store in dir, stops it cleanly and measures what the store kept.
func runOnFreshStore(sc scenario, paths []*path, tt *path, c config, upstream, dir string, empty int64) (scenarioResult, error) {
	proc, err := startTokentap(c.sidecarBin, upstream, dir)
	if err != nil {
		return scenarioResult{}, err
	}
	tt.base, tt.proc, tt.mallocsURL, tt.sent = proc.url, proc, proc.url+"/metrics", 0
	res, err := runScenario(sc, paths, c)
	proc.stop()
	defer os.RemoveAll(dir)
	if err != nil {
		return res, err
	}
	res.Storage = newStorage(sc, tt.sent, diskBytes(dir), empty)
	return res, nil
}
