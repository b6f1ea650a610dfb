package trajectory

// trie is a radix trie over the contexts of the nodes seen so far. Edge labels
// are sub-slices of the input prompts and choices (never copied), so the trie
// costs O(branch points) memory however long the contexts are.
type trie struct {
	root tnode
}

// tnode is a trie node; the path from the root to it spells a token prefix of
// length depth, whose last len(label) tokens label the edge into it.
type tnode struct {
	label []int64
	depth int
	kids  []*tnode
	ends  []int // forest nodes whose context ends exactly here
}

// tpos is a point in the trie: off tokens into n's label (off == len(n.label)
// is n itself).
type tpos struct {
	n   *tnode
	off int
}

func (p tpos) atNode() bool { return p.off == len(p.n.label) }

func (t *trie) start() tpos { return tpos{n: &t.root} }

// child returns the kid of n whose label starts with tok.
func (n *tnode) child(tok int64) *tnode {
	for _, k := range n.kids {
		if k.label[0] == tok {
			return k
		}
	}
	return nil
}

// walk follows toks from p as far as the trie spells them. It returns where it
// stopped and how many tokens matched; when path is not nil, it appends every
// node it reached in full (in order; p.n itself when p is at it).
func (t *trie) walk(p tpos, toks []int64, path *[]*tnode) (tpos, int) {
	i := 0
	for {
		n := p.n
		lab := n.label[p.off:]
		rest := toks[i:]
		k := commonPrefix(lab, rest)
		p.off += k
		i += k
		if k < len(lab) {
			return p, i
		}
		if path != nil {
			*path = append(*path, n)
		}
		if i == len(toks) {
			return p, i
		}
		c := n.child(toks[i])
		if c == nil {
			return p, i
		}
		p = tpos{n: c}
	}
}

// insert adds toks after p and returns the node where they end (splitting an
// edge when that point lies inside one).
func (t *trie) insert(p tpos, toks []int64) *tnode {
	p, i := t.walk(p, toks, nil)
	n := split(p)
	if i == len(toks) {
		return n
	}
	leaf := &tnode{label: toks[i:], depth: n.depth + len(toks) - i}
	n.kids = append(n.kids, leaf)
	return leaf
}

// split makes p a node boundary. It splits in place (p.n keeps the upper part
// of its label) so that parents and walk paths holding p.n stay valid.
func split(p tpos) *tnode {
	n := p.n
	if p.atNode() {
		return n
	}
	lower := &tnode{label: n.label[p.off:], depth: n.depth, kids: n.kids, ends: n.ends}
	n.label = n.label[:p.off:p.off]
	n.depth -= len(lower.label)
	n.kids = []*tnode{lower}
	n.ends = nil
	return n
}

// commonPrefix is the length of the longest common prefix of a and b.
func commonPrefix(a, b []int64) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
