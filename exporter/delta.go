package exporter

import (
	"hash/crc64"
	"hash/maphash"
	"time"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
)

// Delta storage. A call whose prompt starts with at least promptBlock
// tokens of an earlier call's context (same attempt) is stored without
// prompt_token_ids: it names that context and holds the tokens after the
// shared prefix. With content capture, its input messages are stored the
// same way when they start with the parent's first messages. Every read
// (resolve.go) puts the whole prompt and messages back, so stored spans as
// read, viewed and exported are what they would be stored whole; these
// attributes never leave the store.
const (
	AttrPromptParentSeq    = "tokentap.prompt.parent_sequence_id" // int: the parent call
	AttrPromptParentChoice = "tokentap.prompt.parent_choice"      // int: its choice whose tokens extend the context (-1: its prompt alone)
	AttrPromptFork         = "tokentap.prompt.fork"               // int f: tokens of the parent context the prompt starts with
	AttrPromptLength       = "tokentap.prompt.length"             // int: tokens of the whole prompt
	AttrPromptHash         = "tokentap.prompt.hash"               // int: PromptHash of the whole prompt
	AttrPromptDelta        = "tokentap.prompt.delta_token_ids"    // int[]: prompt[f:]
	AttrInputParentCount   = "tokentap.input.messages.parent_count"
	AttrInputDelta         = "tokentap.input.messages.delta"  // string: the input messages' text after the parent's first parent_count elements
	AttrInputLength        = "tokentap.input.messages.length" // int: bytes of the whole text
	AttrInputHash          = "tokentap.input.messages.hash"   // int: CRC-64 (ECMA) of the whole text
)

// minMessagesShared is the least text worth referring to a parent for.
const minMessagesShared = 256

var crcTable = crc64.MakeTable(crc64.ECMA)

// PromptHash is the 64-bit hash of a prompt's IDs stored with a delta
// prompt and checked whenever the prompt is put back together.
func PromptHash(ids []int64) uint64 {
	h := uint64(0x9E3779B97F4A7C15) ^ uint64(len(ids))
	for _, x := range ids {
		h ^= uint64(x)
		h *= 0xBF58476D1CE4E5B9
		h ^= h >> 31
	}
	return h
}

func messagesHash(s string) uint64 {
	return crc64.Update(0, crcTable, unsafe.Slice(unsafe.StringData(s), len(s)))
}

// deltaPlan is how one call is stored, and what the index learns from it
// once it is committed.
type deltaPlan struct {
	prompt []int64
	blocks []uint64 // the prompt's block hashes
	level  int      // 0: stored whole
	match  promptMatch
	// The captured input messages (as stored whole) and their bounds;
	// messagesCount of the parent's elements are reused, ending at byte
	// messagesSplit.
	messages      string
	bounds        messageBounds
	messagesCount int
	messagesSplit int
}

// planPrompt decides how c is stored. nil: whole, and nothing to index.
func (r *Recorder) planPrompt(c *Call) *deltaPlan {
	res := &c.Response
	if res.PromptTokenIDs == nil || len(res.Prompts) > 1 {
		return nil // several completion prompts: stored whole, never a parent
	}
	p := &deltaPlan{prompt: res.PromptTokenIDs}
	p.blocks = r.index.chain(nil, p.prompt, 0)
	if r.capture {
		if in := c.Request.Input; len(in) > 0 && len(in) <= maxCapture {
			p.messages = validUTF8(unsafe.String(&in[0], len(in)))
			p.bounds = r.index.messageBounds(p.messages)
		}
	}
	notBefore := time.Time{}
	if ret := r.store.Retention(); ret > 0 {
		// The sweep deletes records older than the retention: a parent
		// must not be close to it, or the child could commit after the
		// sweep looked for the parent's children.
		notBefore = time.Now().Add(-ret / 2)
	}
	m, ok := r.index.lookup(c.Key, p.prompt, p.blocks, notBefore)
	if !ok || m.fork < promptBlock {
		return p
	}
	p.match, p.level = m, m.level+1
	if p.messages != "" {
		k := 0
		for k < len(p.bounds.ends) && k < len(m.messages.ends) &&
			p.bounds.ends[k] == m.messages.ends[k] && p.bounds.hashes[k] == m.messages.hashes[k] {
			k++
		}
		if k > 0 && p.bounds.ends[k-1] >= minMessagesShared {
			p.messagesCount, p.messagesSplit = k, p.bounds.ends[k-1]
		}
	}
	if !p.saves() {
		p.match, p.level, p.messagesCount, p.messagesSplit = promptMatch{}, 0, 0, 0
	}
	return p
}

// saves reports whether the delta form is smaller than the whole one: the
// references cost a few dozen bytes, and a packed prompt of small token IDs
// shares little more.
func (p *deltaPlan) saves() bool {
	shared := arrayAttr{ints: p.prompt[:p.match.fork]}.packedLen() - 1
	cost := len(AttrPromptDelta) - len(AttrPromptTokenIDs)
	if p.messagesCount > 0 {
		shared += p.messagesSplit
		cost += len(AttrInputDelta) - len(AttrInputMessages)
	}
	for _, kv := range p.storageAttributes() {
		cost += tagLen(fSpanAttributes, keyValueLen(kv))
	}
	// A few bytes for length prefixes that may not shrink with their
	// contents.
	return shared > cost+8
}

// apply turns a call's attributes and arrays (as callAttributes and
// callArrays give them) into its delta form. The storage attributes go
// after the others and the delta takes the place of what it stands for, so
// that dropping the first and swapping back the second restores the
// whole span's encoding exactly.
func (p *deltaPlan) apply(attrs []attribute.KeyValue, arrays *tokenArrays) []attribute.KeyValue {
	for i := range arrays.span {
		if arrays.span[i].key == AttrPromptTokenIDs {
			arrays.span[i] = arrayAttr{key: AttrPromptDelta, ints: p.prompt[p.match.fork:]}
		}
	}
	if p.messagesCount > 0 {
		for i := range attrs {
			if attrs[i].Key == AttrInputMessages {
				attrs[i] = attribute.String(AttrInputDelta, p.messages[p.messagesSplit:])
			}
		}
	}
	return append(attrs, p.storageAttributes()...)
}

// storageAttributes are the references of the delta form.
func (p *deltaPlan) storageAttributes() []attribute.KeyValue {
	attrs := []attribute.KeyValue{
		attribute.Int64(AttrPromptParentSeq, int64(p.match.ref.seq)),
		attribute.Int(AttrPromptParentChoice, p.match.ref.choice),
		attribute.Int(AttrPromptFork, p.match.fork),
		attribute.Int(AttrPromptLength, len(p.prompt)),
		attribute.Int64(AttrPromptHash, int64(PromptHash(p.prompt))),
	}
	if p.messagesCount > 0 {
		attrs = append(attrs,
			attribute.Int(AttrInputParentCount, p.messagesCount),
			attribute.Int(AttrInputLength, len(p.messages)),
			attribute.Int64(AttrInputHash, int64(messagesHash(p.messages))),
		)
	}
	return attrs
}

// messageBounds finds the top-level elements of s, a JSON array, with the
// index's hash of the text up to the end of each.
func (x *promptIndex) messageBounds(s string) messageBounds {
	ends := jsonArrayEnds(s)
	if len(ends) == 0 {
		return messageBounds{}
	}
	var h maphash.Hash
	h.SetSeed(x.seed)
	b := messageBounds{ends: ends, hashes: make([]uint64, len(ends))}
	prev := 0
	for i, end := range ends {
		h.WriteString(s[prev:end])
		b.hashes[i] = h.Sum64()
		prev = end
	}
	return b
}

// jsonArrayEnds returns where each top-level element of the JSON array s
// ends (the offset after its last byte), or nil when s is not an array. It
// only follows strings and brackets: the split it gives is byte-exact
// whatever the elements hold.
func jsonArrayEnds(s string) []int {
	i := 0
	for i < len(s) && isJSONSpace(s[i]) {
		i++
	}
	if i >= len(s) || s[i] != '[' {
		return nil
	}
	var ends []int
	depth, last, inElem := 0, 0, false
	for i++; i < len(s); i++ {
		c := s[i]
		switch {
		case isJSONSpace(c):
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
			last, inElem = i+1, true
		case depth == 0 && c == ',':
			if !inElem {
				return nil
			}
			ends, inElem = append(ends, last), false
		case depth == 0 && c == ']':
			if inElem {
				ends = append(ends, last)
			}
			return ends
		case c == '[' || c == '{':
			depth++
			last, inElem = i+1, true
		case c == ']' || c == '}':
			depth--
			last, inElem = i+1, true
		default:
			last, inElem = i+1, true
		}
	}
	return nil
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
