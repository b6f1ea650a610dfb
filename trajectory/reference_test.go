package trajectory

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// naiveBuild is the merge rule written the obvious quadratic way, to check the
// trie-based Build against.
func naiveBuild(calls []Call) Forest {
	b := &builder{calls: usableCalls(calls)}
	for ci, c := range b.calls {
		parent, parentLen := -1, 0
		for id := range b.nodes {
			ctx := b.context(id, 0, b.nodes[id].ctxLen)
			if len(ctx) <= len(c.Prompt) && slices.Equal(ctx, c.Prompt[:len(ctx)]) &&
				(parent < 0 || len(ctx) > parentLen || len(ctx) == parentLen && b.later(id, parent)) {
				parent, parentLen = id, len(ctx)
			}
		}
		if parent < 0 {
			inside, cand, candLCP := false, -1, 0
			for id := range b.nodes {
				ctx := b.context(id, 0, b.nodes[id].ctxLen)
				l := commonPrefix(ctx, c.Prompt)
				if l == len(c.Prompt) {
					inside = true
				}
				if 2*l >= len(ctx) && (cand < 0 || l > candLCP || l == candLCP && b.later(id, cand)) {
					cand, candLCP = id, l
				}
			}
			if !inside && cand >= 0 {
				b.drift = append(b.drift, b.newDrift(ci, cand, candLCP))
			}
		}
		for j := range c.Choices {
			b.nodes = append(b.nodes, node{call: ci, choice: j, parent: parent,
				ctxLen: len(c.Prompt) + len(c.Choices[j].TokenIDs)})
		}
	}
	return Forest{Trajectories: b.trajectories(), Drift: b.drift}
}

// genCalls builds an attempt from a byte source: prompts that extend, retry,
// truncate or edit earlier contexts over a tiny alphabet, so that prefixes,
// ties and trie splits are common.
func genCalls(next func() byte) []Call {
	n := int(next()%12) + 1
	var calls []Call
	var ctxs [][]int64
	tokens := func(k int) []int64 {
		out := make([]int64, k)
		for i := range out {
			out[i] = int64(next() % 3)
		}
		return out
	}
	for i := range n {
		var p []int64
		op := next() % 5
		switch {
		case op == 0 || len(ctxs) == 0:
			p = tokens(int(next() % 6))
		case op == 1: // extend a context
			p = cat(ctxs[int(next())%len(ctxs)], tokens(int(next()%3)))
		case op == 2: // retry an earlier prompt
			p = slices.Clone(calls[int(next())%len(calls)].Prompt)
		default: // edit a context somewhere, then go on
			c := ctxs[int(next())%len(ctxs)]
			k := int(next()) % (len(c) + 1)
			p = cat(c[:k], tokens(int(next()%4)), c[k:][:min(len(c)-k, int(next()%3))])
		}
		c := Call{Seq: uint64(n - i), Usable: next()%8 != 0, Prompt: p, PolicyVersion: string('a' + rune(next()%3))}
		if n%2 == 0 {
			c.Seq = uint64(i * 2) // ascending with gaps as well as reversed input
		}
		off := int(next()) // distinct choice indexes, not always in slice order
		for j := range int(next()%3) + 1 {
			ch := Choice{Index: (j + off) % 4, TokenIDs: tokens(int(next() % 4)), FinishReason: "stop"}
			if next()%2 == 0 {
				ch.Logprobs = make([]float64, len(ch.TokenIDs))
				for k := range ch.Logprobs {
					ch.Logprobs[k] = -float64(next()) / 10
				}
			}
			c.Choices = append(c.Choices, ch)
			if c.Usable {
				ctxs = append(ctxs, cat(p, ch.TokenIDs))
			}
		}
		calls = append(calls, c)
	}
	return calls
}

func checkAgainstNaive(t *testing.T, calls []Call) {
	t.Helper()
	got, want := Build(calls), naiveBuild(calls)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %+v\nBuild %+v\nnaive %+v", calls, got, want)
	}
	for _, tr := range got.Trajectories {
		checkTrajectory(t, calls, tr)
	}
}

func TestBuildMatchesNaive(t *testing.T) {
	for seed := range uint64(3000) {
		r := rand.New(rand.NewPCG(seed, 7))
		calls := genCalls(func() byte { return byte(r.UintN(256)) })
		if !uniqueSeqs(calls) {
			continue
		}
		checkAgainstNaive(t, calls)
	}
}

func FuzzBuild(f *testing.F) {
	f.Add([]byte{3, 0, 2, 1, 1, 0, 0, 1, 0, 0, 1, 2, 3})
	f.Add([]byte{11, 4, 1, 2, 0, 2, 5, 1, 1, 3, 2, 2, 1, 0, 4, 3, 3, 1, 1, 0, 2, 2, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		i := 0
		calls := genCalls(func() byte {
			if i >= len(data) {
				return 0
			}
			i++
			return data[i-1]
		})
		if uniqueSeqs(calls) {
			checkAgainstNaive(t, calls)
		}
	})
}

// uniqueSeqs: Seq is unique within an attempt, which Build relies on for a
// result independent of input order.
func uniqueSeqs(calls []Call) bool {
	seen := map[uint64]bool{}
	for _, c := range calls {
		if seen[c.Seq] {
			return false
		}
		seen[c.Seq] = true
	}
	return true
}
