package trajectory

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// benchChain is a 30-turn agent whose context grows to about 32k tokens: each
// turn samples ~400 tokens and the environment inserts ~670. Every prompt is
// its own copy, as calls decoded from storage are.
func benchChain(turns int) []Call {
	r := rand.New(rand.NewPCG(1, 2))
	toks := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(r.IntN(150000))
		}
		return out
	}
	var calls []Call
	ctx := toks(800)
	for i := range turns {
		resp := toks(400)
		lp := make([]float64, len(resp))
		calls = append(calls, Call{Seq: uint64(i + 1), Usable: true, Prompt: slices.Clone(ctx), PolicyVersion: "v1",
			Choices: []Choice{{TokenIDs: resp, Logprobs: lp, FinishReason: "stop"}}})
		ctx = cat(ctx, resp, toks(670))
	}
	return calls
}

func BenchmarkBuild(b *testing.B) {
	calls := benchChain(30)
	b.ReportAllocs()
	b.ReportMetric(float64(len(calls[len(calls)-1].Prompt)), "final-prompt-tokens")
	for b.Loop() {
		f := Build(calls)
		if len(f.Trajectories) != 1 || len(f.Drift) != 0 {
			b.Fatalf("%d trajectories, %d drift", len(f.Trajectories), len(f.Drift))
		}
	}
}

// BenchmarkBuildDrifting is the thinking-mode chat of §3.2 at scale: every turn
// drifts, so every call is a root and is diagnosed against all earlier ones.
func BenchmarkBuildDrifting(b *testing.B) {
	calls := benchChain(30)
	for i := range calls {
		for k := range i { // every earlier response's first token re-rendered
			calls[i].Prompt[len(calls[k].Prompt)] ^= 1
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		f := Build(calls)
		if len(f.Trajectories) != 30 || len(f.Drift) != 29 {
			b.Fatalf("%d trajectories, %d drift", len(f.Trajectories), len(f.Drift))
		}
	}
}
