package exporter

import (
	"encoding/binary"
	"hash/crc64"
	"hash/maphash"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"go.opentelemetry.io/otel/attribute"

	"github.com/tokentap/tokentap/internal/jsonbytes"
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
	AttrPromptHash         = "tokentap.prompt.hash"               // int: PromptHash of the whole prompt (records before xxhash)
	AttrPromptXXHash       = "tokentap.prompt.xxhash"             // int: XXH64 of the whole prompt's IDs, 8 bytes each, little-endian
	AttrPromptDelta        = "tokentap.prompt.delta_token_ids"    // int[]: prompt[f:]
	AttrInputParentCount   = "tokentap.input.messages.parent_count"
	AttrInputDelta         = "tokentap.input.messages.delta"  // string: the input messages' text after the parent's first parent_count elements
	AttrInputLength        = "tokentap.input.messages.length" // int: bytes of the whole text
	AttrInputHash          = "tokentap.input.messages.hash"   // int: CRC-64 (ECMA) of the whole text (records before xxhash)
	AttrInputXXHash        = "tokentap.input.messages.xxhash" // int: XXH64 of the whole text
)

// minMessagesShared is the least text worth referring to a parent for.
const minMessagesShared = 256

var crcTable = crc64.MakeTable(crc64.ECMA)

// The hashes a delta stores of what it stands for, checked whenever it is
// put back together. Records store XXH64 (promptXXHash, messagesXXHash):
// a few GB/s, where the CRC-64 and the multiply chain earlier records
// store (PromptHash, messagesHash, still checked on those) cost a call
// tens of microseconds.

// promptXXHash is the XXH64 of ids as 8-byte little-endian integers.
func promptXXHash(ids []int64) uint64 {
	if littleEndian {
		return xxhash.Sum64(int64Bytes(ids))
	}
	d := xxhash.New()
	var b [8]byte
	for _, x := range ids {
		binary.LittleEndian.PutUint64(b[:], uint64(x))
		d.Write(b[:])
	}
	return d.Sum64()
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func messagesXXHash(s string) uint64 { return xxhash.Sum64String(s) }

// PromptHash is the 64-bit hash of a prompt's IDs that records stored
// before XXH64 carry.
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
	// storage holds the references of the delta form (storageAttributes),
	// hashed once for both saves and apply.
	storage []attribute.KeyValue
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
	p.storage = p.storageAttributes(r.legacyHashes)
	if !p.saves() {
		p.match, p.level, p.messagesCount, p.messagesSplit, p.storage = promptMatch{}, 0, 0, 0, nil
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
	for _, kv := range p.storage {
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
	return append(attrs, p.storage...)
}

// storageAttributes are the references of the delta form; legacy gives
// the hashes of records before XXH64.
func (p *deltaPlan) storageAttributes(legacy bool) []attribute.KeyValue {
	promptHash := attribute.Int64(AttrPromptXXHash, int64(promptXXHash(p.prompt)))
	if legacy {
		promptHash = attribute.Int64(AttrPromptHash, int64(PromptHash(p.prompt)))
	}
	attrs := []attribute.KeyValue{
		attribute.Int64(AttrPromptParentSeq, int64(p.match.ref.seq)),
		attribute.Int(AttrPromptParentChoice, p.match.ref.choice),
		attribute.Int(AttrPromptFork, p.match.fork),
		attribute.Int(AttrPromptLength, len(p.prompt)),
		promptHash,
	}
	if p.messagesCount > 0 {
		inputHash := attribute.Int64(AttrInputXXHash, int64(messagesXXHash(p.messages)))
		if legacy {
			inputHash = attribute.Int64(AttrInputHash, int64(messagesHash(p.messages)))
		}
		attrs = append(attrs,
			attribute.Int(AttrInputParentCount, p.messagesCount),
			attribute.Int(AttrInputLength, len(p.messages)),
			inputHash,
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
			// Message contents are most of the text: one vectorised scan
			// per string rather than a byte loop.
			end, ok := jsonbytes.StringEnd(unsafe.Slice(unsafe.StringData(s), len(s)), i)
			if !ok {
				return nil
			}
			i, last, inElem = end-1, end, true
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
