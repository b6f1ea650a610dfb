package trajectory

import (
	"cmp"
	"slices"
)

// node is one (call, choice) of the forest.
type node struct {
	call   int // index into builder.calls
	choice int // position in that call's Choices
	parent int // node id; -1 for a root
	ctxLen int // len(prompt) + len(choice tokens)
}

type builder struct {
	calls []*Call // usable calls with at least one choice, by Seq
	nodes []node
	trie  trie
	path  []*tnode // scratch buffer for trie walks
	drift []Drift
}

// Build merges the calls of one attempt into trajectories and reports drifted
// continuations. Calls may come in any order; they are taken by Seq, which is
// unique within an attempt. Calls that are not Usable, or have no choices, take
// no part. Each drift entry carries a structural cause (eos_rerendered when the
// divergence is the context's last token, else other) until Diagnose refines it.
func Build(calls []Call) Forest {
	b := &builder{calls: usableCalls(calls)}
	for ci := range b.calls {
		b.add(ci)
	}
	return Forest{Trajectories: b.trajectories(), Drift: b.drift}
}

// usableCalls returns the calls that take part, sorted by Seq.
func usableCalls(calls []Call) []*Call {
	var out []*Call
	for i := range calls {
		if calls[i].Usable && len(calls[i].Choices) > 0 {
			out = append(out, &calls[i])
		}
	}
	slices.SortStableFunc(out, func(a, b *Call) int { return cmp.Compare(a.Seq, b.Seq) })
	return out
}

// add attaches call ci below its parent (or as a root, diagnosing drift) and
// then makes its choices available as parents of later calls.
func (b *builder) add(ci int) {
	c := b.calls[ci]
	b.path = b.path[:0]
	pos, m := b.trie.walk(b.trie.start(), c.Prompt, &b.path)
	path := b.path
	parent := -1
	// Every context ending on the walked path is a prefix of the prompt; the
	// deepest one is the longest.
	for k := len(path) - 1; k >= 0 && parent < 0; k-- {
		parent = b.latestOf(path[k].ends, -1)
	}
	if parent < 0 && m > 0 && m < len(c.Prompt) {
		if cand, lcp := b.driftCandidate(path, pos, m); cand >= 0 {
			b.drift = append(b.drift, b.newDrift(ci, cand, lcp))
		}
	}
	end := b.trie.insert(pos, c.Prompt[m:])
	for j := range c.Choices {
		id := len(b.nodes)
		toks := c.Choices[j].TokenIDs
		b.nodes = append(b.nodes, node{call: ci, choice: j, parent: parent, ctxLen: len(c.Prompt) + len(toks)})
		leaf := b.trie.insert(tpos{n: end, off: len(end.label)}, toks)
		leaf.ends = append(leaf.ends, id)
	}
}

// later reports whether node a wins a tie against node b: the latest Seq, then
// the lowest choice index.
func (b *builder) later(a, bb int) bool {
	na, nb := b.nodes[a], b.nodes[bb]
	if na.call != nb.call {
		return na.call > nb.call
	}
	return b.choiceIndex(a) < b.choiceIndex(bb)
}

func (b *builder) choiceIndex(id int) int {
	n := b.nodes[id]
	return b.calls[n.call].Choices[n.choice].Index
}

// latestOf returns the tie winner among ids and best (-1 for none).
func (b *builder) latestOf(ids []int, best int) int {
	for _, id := range ids {
		if best < 0 || b.later(id, best) {
			best = id
		}
	}
	return best
}

// driftCandidate returns the node whose context shares the longest common prefix
// with the prompt among those sharing at least half of their context (or -1),
// and the length of that prefix.
// path and stop are the prompt's walk, m = the tokens it matched. Contexts in
// the subtree below the stop share m tokens; contexts branching off the path at
// node u share u.depth tokens. Subtrees deeper than twice the shared length
// cannot hold a candidate and are skipped.
func (b *builder) driftCandidate(path []*tnode, stop tpos, m int) (int, int) {
	best := b.collect(stop.n, 2*m, -1)
	if best >= 0 {
		return best, m
	}
	below := stop.n
	for k := len(path) - 1; k >= 0; k-- {
		u := path[k]
		if u == stop.n {
			continue
		}
		if u.depth == 0 {
			break
		}
		best = b.latestOf(u.ends, best)
		for _, kid := range u.kids {
			if kid != below {
				best = b.collect(kid, 2*u.depth, best)
			}
		}
		if best >= 0 {
			return best, u.depth
		}
		below = u
	}
	return -1, 0
}

// collect returns the tie winner among best and the contexts of x's subtree no
// longer than limit.
func (b *builder) collect(x *tnode, limit, best int) int {
	if x.depth > limit {
		return best
	}
	best = b.latestOf(x.ends, best)
	for _, kid := range x.kids {
		best = b.collect(kid, limit, best)
	}
	return best
}

// context returns tokens [from, to) of node id's context.
func (b *builder) context(id, from, to int) []int64 {
	return contextSlice(b.calls[b.nodes[id].call], b.nodes[id].choice, from, to)
}

// contextSlice copies tokens [from, to) of c.Prompt ++ c.Choices[j].TokenIDs.
func contextSlice(c *Call, j, from, to int) []int64 {
	out := make([]int64, 0, to-from)
	p := c.Prompt
	if from < len(p) {
		out = append(out, p[from:min(to, len(p))]...)
	}
	r := c.Choices[j].TokenIDs
	if to > len(p) {
		out = append(out, r[max(from, len(p))-len(p):to-len(p)]...)
	}
	return out
}

func (b *builder) newDrift(ci, cand, at int) Drift {
	c := b.calls[ci]
	pn := b.nodes[cand]
	ws := max(0, at-driftWindow)
	return Drift{
		Seq:          c.Seq,
		ParentSeq:    b.calls[pn.call].Seq,
		ParentChoice: b.choiceIndex(cand),
		At:           at,
		WindowStart:  ws,
		Expected:     b.context(cand, ws, min(pn.ctxLen, at+driftWindow)),
		Got:          slices.Clone(c.Prompt[ws:min(len(c.Prompt), at+driftWindow)]),
		Cause:        structuralCause(at, pn.ctxLen),
	}
}

// structuralCause is the cause that needs no text: the last token of the
// context is the parent's end-of-turn token.
func structuralCause(at, ctxLen int) Cause {
	if at == ctxLen-1 {
		return CauseEOSRerendered
	}
	return CauseOther
}
