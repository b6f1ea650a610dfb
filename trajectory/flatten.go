package trajectory

import (
	"cmp"
	"slices"
)

// trajectories flattens every root-to-leaf chain, ordered by leaf (Seq, choice).
func (b *builder) trajectories() []Trajectory {
	hasChild := make([]bool, len(b.nodes))
	for _, n := range b.nodes {
		if n.parent >= 0 {
			hasChild[n.parent] = true
		}
	}
	var leaves []int
	for id := range b.nodes {
		if !hasChild[id] {
			leaves = append(leaves, id)
		}
	}
	slices.SortFunc(leaves, func(x, y int) int {
		nx, ny := b.nodes[x], b.nodes[y]
		if c := cmp.Compare(b.calls[nx.call].Seq, b.calls[ny.call].Seq); c != 0 {
			return c
		}
		if c := cmp.Compare(nx.call, ny.call); c != 0 {
			return c
		}
		return cmp.Compare(b.choiceIndex(x), b.choiceIndex(y))
	})
	out := make([]Trajectory, 0, len(leaves))
	var chain []int
	for i, leaf := range leaves {
		chain = chain[:0]
		for id := leaf; id >= 0; id = b.nodes[id].parent {
			chain = append(chain, id)
		}
		slices.Reverse(chain)
		t := b.flatten(chain)
		t.Index = i
		out = append(out, t)
	}
	return out
}

// flatten builds the trajectory of one chain of node ids, root first.
func (b *builder) flatten(chain []int) Trajectory {
	root := b.calls[b.nodes[chain[0]].call]
	size := b.nodes[chain[0]].ctxLen - len(root.Prompt)
	for k := 1; k < len(chain); k++ {
		size += b.nodes[chain[k]].ctxLen - b.nodes[chain[k-1]].ctxLen
	}
	leaf := b.nodes[chain[len(chain)-1]]
	t := Trajectory{
		SequenceIDs:      make([]uint64, 0, len(chain)),
		ChoiceIndex:      b.choiceIndex(chain[len(chain)-1]),
		PromptIDs:        slices.Clone(root.Prompt),
		ResponseIDs:      make([]int64, 0, size),
		ResponseMask:     make([]int, 0, size),
		ResponseLogprobs: make([]float64, 0, size),
		Turns:            make([]Turn, 0, len(chain)),
		FinishReason:     b.calls[leaf.call].Choices[leaf.choice].FinishReason,
	}
	prevCtx := len(root.Prompt)
	for _, id := range chain {
		n := b.nodes[id]
		c := b.calls[n.call]
		// The observation: what the template and environment inserted after
		// the parent's context.
		obs := c.Prompt[prevCtx:]
		t.ResponseIDs = append(t.ResponseIDs, obs...)
		for range obs {
			t.ResponseMask = append(t.ResponseMask, 0)
			t.ResponseLogprobs = append(t.ResponseLogprobs, 0)
		}
		ch := c.Choices[n.choice]
		start := len(t.ResponseIDs)
		t.ResponseIDs = append(t.ResponseIDs, ch.TokenIDs...)
		for range ch.TokenIDs {
			t.ResponseMask = append(t.ResponseMask, 1)
		}
		if len(ch.Logprobs) == len(ch.TokenIDs) {
			t.ResponseLogprobs = append(t.ResponseLogprobs, ch.Logprobs...)
		} else {
			// Missing or malformed logprobs: zeros, as the view promises.
			for range ch.TokenIDs {
				t.ResponseLogprobs = append(t.ResponseLogprobs, 0)
			}
		}
		t.Turns = append(t.Turns, Turn{Seq: c.Seq, Choice: ch.Index, Start: start, End: len(t.ResponseIDs)})
		t.SequenceIDs = append(t.SequenceIDs, c.Seq)
		t.PolicyVersions = appendDistinct(t.PolicyVersions, c.PolicyVersion)
		t.PolicyVersions = appendDistinct(t.PolicyVersions, c.PolicyVersionEnd)
		prevCtx = n.ctxLen
	}
	return t
}

func appendDistinct(vs []string, v string) []string {
	if v == "" || slices.Contains(vs, v) {
		return vs
	}
	return append(vs, v)
}
