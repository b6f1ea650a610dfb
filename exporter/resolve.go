package exporter

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/tokentap/tokentap/store"
)

// This file reads delta-stored calls (delta.go) back whole. It works on the
// stored encoding with protowire: a stored span is read only as far as the
// attributes that matter here, and the whole span is the stored one with
// the delta attributes swapped back for prompt_token_ids and
// gen_ai.input.messages, every other byte copied as it is. So a whole span
// is byte for byte what the recorder would have stored without deltas.

// RecordSource reads a stored record by rollout, attempt and sequence id;
// *store.Store is one.
type RecordSource interface {
	Record(ctx context.Context, rid, aid string, seq uint64) (store.Record, error)
}

// ErrPromptParentMissing is what putting a prompt together fails with
// when a record it refers to is nowhere to be found.
var ErrPromptParentMissing = errors.New("prompt parent record missing")

// maxChain bounds the references followed for one prompt. The recorder
// never chains more than maxDeltaDepth; more means a corrupt store (or a
// cycle).
const maxChain = 4 * maxDeltaDepth

// Resolver puts delta-stored calls back together. One serves one read (a
// view, a batch of spans): it keeps every prompt it rebuilt, so the calls
// of an attempt cost one pass over their tokens, however they chain. Not
// safe for concurrent use.
type Resolver struct {
	src   RecordSource // nil: only the records added
	known map[callRef][]byte
	calls map[callRef]*resolvedCall
}

type callRef struct {
	rid, aid string
	seq      uint64
}

type resolvedCall struct {
	prompt      []int64
	messages    string
	hasMessages bool
	choices     map[int][]int64
}

// NewResolver returns a Resolver that reads the parents it was not given
// (Add) from src; src may be nil.
func NewResolver(src RecordSource) *Resolver {
	return &Resolver{src: src, known: map[callRef][]byte{}, calls: map[callRef]*resolvedCall{}}
}

// Add makes records available as parents without reading the store.
func (r *Resolver) Add(recs ...store.Record) {
	for _, rec := range recs {
		if rec.Kind == store.KindCall {
			r.known[callRef{rec.RolloutID, rec.AttemptID, rec.Seq}] = rec.Data
		}
	}
}

// IsDelta reports whether a stored record is a call stored as a delta.
// Every call goes through a Resolver to be read as OTLP (Full), a delta or
// not.
func IsDelta(rec store.Record) bool {
	if rec.Kind != store.KindCall {
		return false
	}
	sc, err := parseStored(rec.Data, false)
	return err == nil && sc.hasParent
}

// Full returns a record's data as OTLP: a call whole and in ExportForm,
// anything else as it is.
func (r *Resolver) Full(ctx context.Context, rec store.Record) ([]byte, error) {
	data, err := r.whole(ctx, rec)
	if err != nil || rec.Kind != store.KindCall {
		return data, err
	}
	if data, err = ExportForm(data); err != nil {
		return nil, fmt.Errorf("record %d: %w", rec.Cursor, err)
	}
	return data, nil
}

// whole returns a record's data in its stored form, a delta call's prompt
// put back.
func (r *Resolver) whole(ctx context.Context, rec store.Record) ([]byte, error) {
	if rec.Kind != store.KindCall {
		return rec.Data, nil
	}
	sc, err := parseStored(rec.Data, false)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", rec.Cursor, err)
	}
	if !sc.hasParent {
		return rec.Data, nil
	}
	ref := callRef{rec.RolloutID, rec.AttemptID, rec.Seq}
	r.known[ref] = rec.Data
	call, err := r.resolve(ctx, ref, 0)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", rec.Cursor, err)
	}
	return wholeSpan(rec.Data, call)
}

// Rebase returns a delta call's data whole, in its stored form, reading its
// ancestors with parent: store.Options.Rebase, which retention calls before
// a record's prompt parent goes.
func Rebase(child store.Record, parent func(seq uint64) (store.Record, error)) ([]byte, error) {
	r := NewResolver(parentFunc(parent))
	return r.whole(context.Background(), child)
}

type parentFunc func(seq uint64) (store.Record, error)

func (f parentFunc) Record(_ context.Context, _, _ string, seq uint64) (store.Record, error) {
	return f(seq)
}

// resolve returns the whole prompt (and messages, and choice tokens) of a
// call.
func (r *Resolver) resolve(ctx context.Context, ref callRef, depth int) (*resolvedCall, error) {
	if c, ok := r.calls[ref]; ok {
		return c, nil
	}
	if depth > maxChain {
		return nil, fmt.Errorf("prompt of call %d: more than %d references deep", ref.seq, maxChain)
	}
	data, ok := r.known[ref]
	if !ok {
		if r.src == nil {
			return nil, fmt.Errorf("call %d of %q/%q: %w", ref.seq, ref.rid, ref.aid, ErrPromptParentMissing)
		}
		rec, err := r.src.Record(ctx, ref.rid, ref.aid, ref.seq)
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("call %d of %q/%q: %w", ref.seq, ref.rid, ref.aid, ErrPromptParentMissing)
		}
		if err != nil {
			return nil, fmt.Errorf("read call %d: %w", ref.seq, err)
		}
		data = rec.Data
	}
	sc, err := parseStored(data, true)
	if err != nil {
		return nil, fmt.Errorf("call %d: %w", ref.seq, err)
	}
	c := &resolvedCall{messages: sc.messages, hasMessages: sc.hasMessages, choices: sc.choices}
	if sc.hasPrompt {
		if c.prompt, err = anyInts(sc.prompt); err != nil {
			return nil, fmt.Errorf("call %d: %w", ref.seq, err)
		}
	}
	if sc.hasParent {
		if err := r.rebuild(ctx, ref, sc, c, depth); err != nil {
			return nil, err
		}
	}
	delete(r.known, ref) // its data is not needed again
	r.calls[ref] = c
	return c, nil
}

// rebuild puts a delta call's prompt and messages together from its parent.
func (r *Resolver) rebuild(ctx context.Context, ref callRef, sc *storedCall, c *resolvedCall, depth int) error {
	pref := callRef{ref.rid, ref.aid, sc.parentSeq}
	if sc.parentSeq == ref.seq {
		return fmt.Errorf("call %d names itself as its prompt parent", ref.seq)
	}
	parent, err := r.resolve(ctx, pref, depth+1)
	if err != nil {
		return fmt.Errorf("prompt of call %d: parent %d: %w", ref.seq, sc.parentSeq, err)
	}
	var tokens []int64
	if sc.parentChoice >= 0 {
		var ok bool
		if tokens, ok = parent.choices[sc.parentChoice]; !ok {
			return fmt.Errorf("prompt of call %d: parent %d has no choice %d", ref.seq, sc.parentSeq, sc.parentChoice)
		}
	}
	delta, err := anyInts(sc.delta)
	if err != nil {
		return fmt.Errorf("prompt of call %d: %w", ref.seq, err)
	}
	f := sc.fork
	if f < 0 || f > len(parent.prompt)+len(tokens) || sc.length != f+len(delta) {
		return fmt.Errorf("prompt of call %d: parent %d's context of %d tokens cannot give %d of a %d-token prompt with %d added",
			ref.seq, sc.parentSeq, len(parent.prompt)+len(tokens), f, sc.length, len(delta))
	}
	p := make([]int64, 0, sc.length)
	p = append(p, parent.prompt[:min(f, len(parent.prompt))]...)
	p = append(p, tokens[:f-min(f, len(parent.prompt))]...)
	p = append(p, delta...)
	if h := sc.promptHash(p); h != sc.hash {
		return fmt.Errorf("prompt of call %d put together from parent %d does not match its hash (%x, stored %x): the store is corrupt", ref.seq, sc.parentSeq, h, sc.hash)
	}
	c.prompt = p
	if sc.msgCount > 0 {
		if !parent.hasMessages {
			return fmt.Errorf("input messages of call %d: parent %d has none", ref.seq, sc.parentSeq)
		}
		ends := jsonArrayEnds(parent.messages)
		if len(ends) < sc.msgCount {
			return fmt.Errorf("input messages of call %d: parent %d has %d, not %d", ref.seq, sc.parentSeq, len(ends), sc.msgCount)
		}
		m := parent.messages[:ends[sc.msgCount-1]] + sc.msgDelta
		if len(m) != sc.msgLength || sc.messagesHash(m) != sc.msgHash {
			return fmt.Errorf("input messages of call %d put together from parent %d do not match their length and hash: the store is corrupt", ref.seq, sc.parentSeq)
		}
		c.messages, c.hasMessages = m, true
	}
	return nil
}

// storedCall is what a stored call's encoding says about its prompt.
type storedCall struct {
	hasParent    bool
	parentSeq    uint64
	parentChoice int
	fork, length int
	hash         uint64
	xxhash       bool   // hash is promptXXHash's, not PromptHash's
	prompt       []byte // the AnyValue of prompt_token_ids, stored whole
	hasPrompt    bool
	delta        []byte // the AnyValue of the delta's tokens
	hasMessages  bool   // stored whole
	messages     string
	msgCount     int
	msgDelta     string
	msgLength    int
	msgHash      uint64
	msgXXHash    bool            // msgHash is messagesXXHash's, not messagesHash's
	choices      map[int][]int64 // with choices: each choice's tokens by index
}

// promptHash hashes a prompt put back together as the record's stored
// hash was made.
func (sc *storedCall) promptHash(p []int64) uint64 {
	if sc.xxhash {
		return promptXXHash(p)
	}
	return PromptHash(p)
}

func (sc *storedCall) messagesHash(m string) uint64 {
	if sc.msgXXHash {
		return messagesXXHash(m)
	}
	return messagesHash(m)
}

var errCorrupt = errors.New("corrupt span record")

// parseStored reads the prompt attributes of a stored call, and with
// choices, its choice events' tokens.
func parseStored(data []byte, choices bool) (*storedCall, error) {
	span, err := findSpan(data)
	if err != nil {
		return nil, err
	}
	sc := &storedCall{parentChoice: -1}
	if choices {
		sc.choices = map[int][]int64{}
	}
	err = eachField(span, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		switch {
		case num == fSpanAttributes:
			return sc.attribute(v)
		case num == fSpanEvents && choices:
			return sc.event(v)
		}
		return nil
	})
	return sc, err
}

func (sc *storedCall) attribute(kv []byte) error {
	key, val, err := keyValue(kv)
	if err != nil {
		return err
	}
	switch key {
	case AttrPromptTokenIDs:
		sc.prompt, sc.hasPrompt = val, true
	case AttrPromptDelta:
		sc.delta = val
	case AttrInputMessages:
		sc.messages, sc.hasMessages = string(anyString(val)), true
	case AttrInputDelta:
		sc.msgDelta = string(anyString(val))
	case AttrPromptParentSeq:
		sc.hasParent = true
		sc.parentSeq = uint64(anyInt(val))
	case AttrPromptParentChoice:
		sc.parentChoice = int(anyInt(val))
	case AttrPromptFork:
		sc.fork = int(anyInt(val))
	case AttrPromptLength:
		sc.length = int(anyInt(val))
	case AttrPromptHash:
		sc.hash = uint64(anyInt(val))
	case AttrPromptXXHash:
		sc.hash, sc.xxhash = uint64(anyInt(val)), true
	case AttrInputParentCount:
		sc.msgCount = int(anyInt(val))
	case AttrInputLength:
		sc.msgLength = int(anyInt(val))
	case AttrInputHash:
		sc.msgHash = uint64(anyInt(val))
	case AttrInputXXHash:
		sc.msgHash, sc.msgXXHash = uint64(anyInt(val)), true
	}
	return err
}

func (sc *storedCall) event(ev []byte) error {
	idx, isChoice := -1, false
	var tokens []int64
	err := eachField(ev, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		switch num {
		case fEventName:
			isChoice = string(v) == EventChoice
		case fEventAttributes:
			key, val, err := keyValue(v)
			if err != nil {
				return err
			}
			switch key {
			case AttrChoiceIndex:
				idx = int(anyInt(val))
			case AttrChoiceTokenIDs:
				tokens, err = anyInts(val)
				return err
			}
		}
		return nil
	})
	if err == nil && isChoice && idx >= 0 && tokens != nil {
		sc.choices[idx] = tokens
	}
	return err
}

// findSpan returns the encoding of the (first) span of a ResourceSpans.
func findSpan(data []byte) ([]byte, error) {
	var span []byte
	err := eachField(data, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		if num != fResourceSpansScopeSpans || span != nil {
			return nil
		}
		return eachField(v, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
			if num == fScopeSpansSpans && span == nil {
				span = v
			}
			return nil
		})
	})
	if err == nil && span == nil {
		err = fmt.Errorf("%w: no span", errCorrupt)
	}
	return span, err
}

// wholeSpan is data with its span's delta attributes replaced by what they
// stand for (the prompt packed) and the storage-only attributes dropped.
func wholeSpan(data []byte, c *resolvedCall) ([]byte, error) {
	span, err := findSpan(data)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(span)+len(c.prompt)*4+len(c.messages)+64)
	err = eachField(span, func(num protowire.Number, _ protowire.Type, v, raw []byte) error {
		if num != fSpanAttributes {
			out = append(out, raw...)
			return nil
		}
		key, _, err := keyValue(v)
		if err != nil {
			return err
		}
		switch key {
		case AttrPromptDelta:
			out = arrayAttr{key: AttrPromptTokenIDs, ints: c.prompt}.appendPackedField(out, fSpanAttributes)
		case AttrInputDelta:
			if c.hasMessages {
				out = appendKeyValueField(out, fSpanAttributes, attribute.String(AttrInputMessages, c.messages))
			}
		case AttrPromptParentSeq, AttrPromptParentChoice, AttrPromptFork, AttrPromptLength, AttrPromptHash, AttrPromptXXHash,
			AttrInputParentCount, AttrInputLength, AttrInputHash, AttrInputXXHash:
		default:
			out = append(out, raw...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return replaceSpan(data, out)
}

// replaceSpan re-encodes a ResourceSpans with its span replaced, every
// other field as it was, in its place.
func replaceSpan(data, span []byte) ([]byte, error) {
	return appendWithSpan(make([]byte, 0, len(data)+len(span)), data, len(span), func(b []byte) []byte { return append(b, span...) })
}

// eachField calls fn with every field of the message b: its number, its
// type, its value (a length-delimited field's contents, otherwise its
// encoded value) and its whole encoding.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v, raw []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %w", errCorrupt, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return fmt.Errorf("%w: %w", errCorrupt, protowire.ParseError(m))
		}
		v := b[n : n+m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(v)
		}
		if err := fn(num, typ, v, b[:n+m]); err != nil {
			return err
		}
		b = b[n+m:]
	}
	return nil
}

// keyValue splits a KeyValue into its key and its AnyValue's encoding.
func keyValue(kv []byte) (key string, val []byte, err error) {
	err = eachField(kv, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		switch num {
		case fKeyValueKey:
			key = string(v)
		case fKeyValueValue:
			val = v
		}
		return nil
	})
	return key, val, err
}

func anyInt(val []byte) int64 {
	var x int64
	eachField(val, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		if num == fAnyInt && typ == protowire.VarintType {
			u, _ := protowire.ConsumeVarint(v)
			x = int64(u)
		}
		return nil
	})
	return x
}

func anyString(val []byte) []byte {
	var s []byte
	eachField(val, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		if num == fAnyString && typ == protowire.BytesType {
			s = v
		}
		return nil
	})
	return s
}

// anyInts reads an AnyValue holding an array of ints, OTLP or packed.
func anyInts(val []byte) ([]int64, error) {
	if p, ok := packedValue(val); ok {
		return unpackInts(p)
	}
	var arr []byte
	found := false
	err := eachField(val, func(num protowire.Number, typ protowire.Type, v, _ []byte) error {
		if num == fAnyArray && typ == protowire.BytesType {
			arr, found = v, true
		}
		return nil
	})
	if err != nil || !found {
		return nil, err
	}
	out := make([]int64, 0, len(arr)/4)
	for len(arr) > 0 {
		// The recorder's elements are 0x0a len 0x18 varint: read those
		// directly, anything else field by field.
		if len(arr) >= 4 && arr[0] == 0x0a && arr[2] == 0x18 && int(arr[1]) >= 2 && int(arr[1])+2 <= len(arr) {
			u, n := protowire.ConsumeVarint(arr[3 : 2+int(arr[1])])
			if n == int(arr[1])-1 {
				out = append(out, int64(u))
				arr = arr[2+int(arr[1]):]
				continue
			}
		}
		num, typ, n := protowire.ConsumeTag(arr)
		if n < 0 {
			return nil, fmt.Errorf("%w: %w", errCorrupt, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, arr[n:])
		if m < 0 {
			return nil, fmt.Errorf("%w: %w", errCorrupt, protowire.ParseError(m))
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(arr[n:])
			out = append(out, anyInt(v))
		}
		arr = arr[n+m:]
	}
	return out, nil
}
