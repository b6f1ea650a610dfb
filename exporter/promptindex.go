package exporter

import (
	"container/list"
	"hash/maphash"
	"slices"
	"sync"
	"time"
	"unsafe"

	"github.com/tokentap/tokentap/rollout"
)

// The prompt index finds, for a call about to be stored, the earlier call of
// its attempt whose context (prompt ++ one choice's tokens) shares the
// longest prefix with its prompt: the call is then stored as a reference to
// that context plus the tokens it adds (delta.go). It only knows calls whose
// commit succeeded, so a child never refers to a parent that a crash could
// lose; after a restart it is empty and calls are stored whole until their
// attempt has committed some again.
//
// Contexts are hashed in fixed blocks, each block's hash chained on the
// previous one as in vLLM's prefix cache, so a hit on block i means the
// whole prefix up to it matches: the longest match costs one map lookup per
// block of the prompt, whatever the number of earlier calls.

const (
	promptBlock = 64 // tokens per hashed block; also the least prefix worth a reference
	// maxDeltaDepth bounds a chain of references: the call that would be
	// the maxDeltaDepth-th delta on top of a whole prompt is stored whole,
	// so reading any prompt reads at most that many records.
	maxDeltaDepth = 32
	// maxIndexedAttempts bounds the attempts the index remembers (least
	// recently used go first), maxIndexedBlocks the blocks of one attempt,
	// maxIndexedSize the blocks and calls of all attempts together (about
	// 40 bytes each: ~20 MiB; 32M tokens of distinct context, a thousand
	// 32k-token agents at once). Attempts that never complete would
	// otherwise hold memory up to the attempt bound.
	maxIndexedAttempts = 4096
	maxIndexedBlocks   = 1 << 18
	maxIndexedSize     = 1 << 19
)

type promptIndex struct {
	seed     maphash.Seed
	mu       sync.Mutex
	attempts map[rollout.Key]*list.Element // of *attemptIndex
	lru      list.List                     // most recently used first
	size     int                           // blocks and calls of all attempts
	maxSize  int                           // bound on size (maxIndexedSize)
}

type attemptIndex struct {
	key rollout.Key
	// blocks maps the chained hash of context[:promptBlock*(i+1)] to the
	// latest (highest sequence id) context holding that prefix.
	blocks map[uint64]contextRef
	calls  map[uint64]*indexedCall
}

type contextRef struct {
	seq    uint64
	choice int // the choice's index; -1 for a call without choice tokens (its prompt alone)
}

type indexedCall struct {
	level     int       // references between this call and a whole prompt
	committed time.Time // retention: a parent must not be about to go
	contexts  map[int]indexedContext
	messages  messageBounds // the captured input messages, when there were some
}

type indexedContext struct {
	length int
	tail   []int64 // the tokens after the last full block
}

// messageBounds are the top-level elements of a JSON array of messages:
// where each ends, and a hash of the text up to there.
type messageBounds struct {
	ends   []int
	hashes []uint64
}

func newPromptIndex() *promptIndex {
	return &promptIndex{seed: maphash.MakeSeed(), attempts: map[rollout.Key]*list.Element{}, maxSize: maxIndexedSize}
}

// chain returns the chained hashes of the full blocks of ids, continuing
// from prev (0 at the start of a context).
func (x *promptIndex) chain(dst []uint64, ids []int64, prev uint64) []uint64 {
	var h maphash.Hash
	h.SetSeed(x.seed)
	var buf [8]byte
	for off := 0; off+promptBlock <= len(ids); off += promptBlock {
		h.Reset()
		for i := range buf {
			buf[i] = byte(prev >> (8 * i))
		}
		h.Write(buf[:])
		h.Write(int64Bytes(ids[off : off+promptBlock]))
		prev = h.Sum64()
		dst = append(dst, prev)
	}
	return dst
}

// int64Bytes views ids as bytes, in the machine's order: the hashes only
// live in this process.
func int64Bytes(ids []int64) []byte {
	if len(ids) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&ids[0])), len(ids)*8)
}

// promptMatch is the storage parent found for a prompt.
type promptMatch struct {
	ref      contextRef
	fork     int // tokens of the parent context the prompt starts with
	level    int // the parent call's level
	messages messageBounds
}

// lookup finds the storage parent of prompt (whose block hashes are
// blocks) in key's attempt: the context with the longest common prefix, at
// least one block long, ties to the latest. Calls committed before
// notBefore are not used (retention may be deleting them).
func (x *promptIndex) lookup(key rollout.Key, prompt []int64, blocks []uint64, notBefore time.Time) (promptMatch, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	el, ok := x.attempts[key]
	if !ok {
		return promptMatch{}, false
	}
	x.lru.MoveToFront(el)
	a := el.Value.(*attemptIndex)
	best, ref := -1, contextRef{}
	for i, h := range blocks {
		r, ok := a.blocks[h]
		if !ok {
			break // chained: no later block can match either
		}
		best, ref = i, r
	}
	if best < 0 {
		return promptMatch{}, false
	}
	call := a.calls[ref.seq]
	if call == nil || call.committed.Before(notBefore) || call.level+1 >= maxDeltaDepth {
		return promptMatch{}, false
	}
	ctx, ok := call.contexts[ref.choice]
	if !ok {
		return promptMatch{}, false
	}
	fork := promptBlock * (best + 1)
	if fork == ctx.length-len(ctx.tail) {
		// Every full block of the context matched: its tail may too.
		n := 0
		for n < len(ctx.tail) && fork+n < len(prompt) && prompt[fork+n] == ctx.tail[n] {
			n++
		}
		fork += n
	}
	return promptMatch{ref: ref, fork: fork, level: call.level, messages: call.messages}, true
}

// add indexes a committed call: each choice's context prompt ++ tokens
// (the prompt alone when no choice has tokens). promptBlocks are the
// prompt's block hashes.
func (x *promptIndex) add(key rollout.Key, seq uint64, level int, committed time.Time, prompt []int64, promptBlocks []uint64, choices map[int][]int64, messages messageBounds) {
	call := &indexedCall{level: level, committed: committed, contexts: map[int]indexedContext{}, messages: messages}
	type hashed struct {
		choice int
		blocks []uint64
	}
	var all []hashed
	full := len(promptBlocks) * promptBlock
	if len(choices) == 0 {
		choices = map[int][]int64{-1: nil}
	}
	order := make([]int, 0, len(choices))
	for choice := range choices {
		order = append(order, choice)
	}
	slices.Sort(order) // the prompt's blocks name the highest choice: stored bytes do not depend on map order
	for _, choice := range order {
		tokens := choices[choice]
		// The blocks after the prompt's full ones straddle its tail and the
		// choice's tokens.
		rest := make([]int64, 0, len(prompt)-full+len(tokens))
		rest = append(append(rest, prompt[full:]...), tokens...)
		prev := uint64(0)
		if len(promptBlocks) > 0 {
			prev = promptBlocks[len(promptBlocks)-1]
		}
		more := x.chain(nil, rest, prev)
		all = append(all, hashed{choice, more})
		tail := rest[len(more)*promptBlock:]
		call.contexts[choice] = indexedContext{length: len(prompt) + len(tokens), tail: append([]int64(nil), tail...)}
	}

	x.mu.Lock()
	defer x.mu.Unlock()
	el, ok := x.attempts[key]
	if !ok {
		el = x.lru.PushFront(&attemptIndex{key: key, blocks: map[uint64]contextRef{}, calls: map[uint64]*indexedCall{}})
		x.attempts[key] = el
		for x.lru.Len() > maxIndexedAttempts {
			x.evict(x.lru.Back())
		}
	}
	x.lru.MoveToFront(el)
	a := el.Value.(*attemptIndex)
	if len(a.blocks) >= maxIndexedBlocks {
		return // an attempt this large stores its later calls whole
	}
	before := len(a.blocks) + len(a.calls)
	defer func() {
		x.size += len(a.blocks) + len(a.calls) - before
		for x.size > x.maxSize && x.lru.Back() != el {
			x.evict(x.lru.Back())
		}
	}()
	a.calls[seq] = call
	// Ties go to the latest call, whatever order concurrent calls commit in.
	set := func(h uint64, ref contextRef) {
		if old, ok := a.blocks[h]; !ok || old.seq <= ref.seq {
			a.blocks[h] = ref
		}
	}
	for _, hs := range all {
		ref := contextRef{seq: seq, choice: hs.choice}
		for _, h := range promptBlocks {
			set(h, ref)
		}
		for _, h := range hs.blocks {
			set(h, ref)
		}
	}
}

// forget drops what the index knows of an attempt.
func (x *promptIndex) forget(key rollout.Key) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if el, ok := x.attempts[key]; ok {
		x.evict(el)
	}
}

// evict drops one attempt from the index.
func (x *promptIndex) evict(el *list.Element) {
	a := el.Value.(*attemptIndex)
	x.lru.Remove(el)
	delete(x.attempts, a.key)
	x.size -= len(a.blocks) + len(a.calls)
}
