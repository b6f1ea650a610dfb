package exporter

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
)

// This file is the stored form of a call's token arrays. OTLP writes an
// array element as a message of its own (values { int_value: x }: 3 bytes
// of framing per token ID, 3 per logprob), and a call's span repeats its
// first choice's arrays at span level. Stored, a call keeps each array once,
// packed into a bytes value: token IDs as varints, logprobs as their
// float64 bits, exact. Reads turn it back into the OTLP a trainer or
// collector gets (ExportForm), byte for byte what the recorder would have
// stored unpacked, so nothing outside the store sees the difference.

// The first byte of a packed array says how the rest is written.
const (
	packedInts   = 1 // uvarint(uint64(x)) each
	packedFloats = 2 // little-endian math.Float64bits(x) each
)

// fAnyBytes is AnyValue's bytes_value.
const fAnyBytes = 7

// packedKeys are the array attributes the recorder stores packed.
var packedKeys = map[string]bool{
	AttrPromptTokenIDs: true, AttrPromptDelta: true, AttrResponseTokenIDs: true, AttrResponseLogprobs: true,
	AttrChoiceTokenIDs: true, AttrChoiceLogprobs: true, // AttrPromptEventTokens is AttrChoiceTokenIDs
}

func (a arrayAttr) packedLen() int {
	n := 1 + 8*len(a.floats)
	if !a.isFloat {
		n = 1
		for _, x := range a.ints {
			n += protowire.SizeVarint(uint64(x))
		}
	}
	return n
}

func (a arrayAttr) packedKeyValueLen() int {
	return stringLen(fKeyValueKey, a.key) + tagLen(fKeyValueValue, tagLen(fAnyBytes, a.packedLen()))
}

// appendPackedField appends a as a KeyValue field whose value is the
// packed array.
func (a arrayAttr) appendPackedField(b []byte, field protowire.Number) []byte {
	n := a.packedLen()
	valueLen := tagLen(fAnyBytes, n)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(stringLen(fKeyValueKey, a.key)+tagLen(fKeyValueValue, valueLen)))
	b = appendString(b, fKeyValueKey, a.key)
	b = protowire.AppendTag(b, fKeyValueValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(valueLen))
	b = protowire.AppendTag(b, fAnyBytes, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if a.isFloat {
		b = append(b, packedFloats)
		for _, x := range a.floats {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
		return b
	}
	b = append(b, packedInts)
	for _, x := range a.ints {
		b = protowire.AppendVarint(b, uint64(x))
	}
	return b
}

// packedValue returns the packed array an AnyValue holds, if it holds one.
func packedValue(val []byte) (packed []byte, ok bool) {
	num, typ, n := protowire.ConsumeTag(val)
	if n < 0 || num != fAnyBytes || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(val[n:])
	if m < 0 || n+m != len(val) || len(v) == 0 || (v[0] != packedInts && v[0] != packedFloats) {
		return nil, false
	}
	return v, true
}

// unpackInts reads a packed int array.
func unpackInts(p []byte) ([]int64, error) {
	if len(p) == 0 || p[0] != packedInts {
		return nil, fmt.Errorf("%w: not a packed int array", errCorrupt)
	}
	p = p[1:]
	out := make([]int64, 0, len(p)/2)
	for len(p) > 0 {
		u, n := protowire.ConsumeVarint(p)
		if n < 0 {
			return nil, fmt.Errorf("%w: packed ints: %w", errCorrupt, protowire.ParseError(n))
		}
		out = append(out, int64(u))
		p = p[n:]
	}
	return out, nil
}

// otlpArrayLen is the size of the OTLP ArrayValue a packed array stands
// for. Unpacking only reframes bytes: an int element is 0x0a, len, 0x18
// and the very varint packed; a double element 0x0a, 9, 0x21 and the very
// 8 little-endian bytes.
func otlpArrayLen(p []byte) (int, error) {
	body := p[1:]
	if p[0] == packedFloats {
		if len(body)%8 != 0 {
			return 0, fmt.Errorf("%w: packed floats of %d bytes", errCorrupt, len(body))
		}
		return len(body) / 8 * float64ElemLen, nil
	}
	// Each varint ends in the one byte of it below 0x80: count those, 8 at
	// a time. A varint over 10 bytes would need 8 continuation bytes in a
	// row, so only a word of them calls for the byte-by-byte check.
	if len(body) > 0 && body[len(body)-1] >= 0x80 {
		return 0, fmt.Errorf("%w: packed ints end inside a varint", errCorrupt)
	}
	count, rest, suspect := 0, body, false
	for ; len(rest) >= 8; rest = rest[8:] {
		high := bits.OnesCount64(binary.LittleEndian.Uint64(rest) & 0x8080808080808080)
		count += 8 - high
		suspect = suspect || high == 8
	}
	for _, c := range rest {
		if c < 0x80 {
			count++
		}
	}
	if suspect {
		run := 0
		for _, c := range body {
			if run++; c < 0x80 {
				run = 0
			} else if run == 10 {
				return 0, fmt.Errorf("%w: packed varint over 10 bytes", errCorrupt)
			}
		}
	}
	return 3*count + len(body), nil
}

// appendOTLPArray appends the elements of the ArrayValue packed stands for
// (otlpArrayLen has checked it, and n is its size).
func appendOTLPArray(b, p []byte, n int) []byte {
	body := p[1:]
	b = slices.Grow(b, n)
	out := b[len(b) : len(b)+n]
	j := 0
	if p[0] == packedFloats {
		for ; len(body) >= 8; body = body[8:] {
			out[j], out[j+1], out[j+2] = 0x0a, 9, 0x21
			copy(out[j+3:j+11], body[:8])
			j += float64ElemLen
		}
		return b[:len(b)+j]
	}
	for i := 0; i < len(body); {
		// Token IDs take one to three bytes; longer varints byte by byte.
		in := body[i:]
		switch o := out[j:]; {
		case in[0] < 0x80:
			o = o[:4:4]
			o[0], o[1], o[2], o[3] = 0x0a, 2, 0x18, in[0]
			i, j = i+1, j+4
		case len(in) >= 3 && in[1] < 0x80:
			o = o[:5:5]
			o[0], o[1], o[2], o[3], o[4] = 0x0a, 3, 0x18, in[0], in[1]
			i, j = i+2, j+5
		case len(in) >= 3 && in[2] < 0x80:
			o = o[:6:6]
			o[0], o[1], o[2], o[3], o[4], o[5] = 0x0a, 4, 0x18, in[0], in[1], in[2]
			i, j = i+3, j+6
		default:
			k := 0
			for in[k] >= 0x80 {
				k++
			}
			o[0], o[1], o[2] = 0x0a, byte(k+2), 0x18
			j += 3 + copy(o[3:], in[:k+1])
			i += k + 1
		}
	}
	return b[:len(b)+j]
}

// exportAttr is one KeyValue of the export form: a packed array to write
// as OTLP, or a KeyValue's encoding (or AnyValue, with key) to copy.
type exportAttr struct {
	key    string
	packed []byte // the packed array
	arrLen int    // its OTLP ArrayValue's size
	val    []byte // an AnyValue to write under key (not packed)
	raw    []byte // a whole KeyValue field to copy
}

// exportAttrOf reads a KeyValue field (kv its contents, raw its encoding).
// Only the keys that matter are kept (as strings): most attributes are
// copied as they are.
func exportAttrOf(kv, raw []byte) (exportAttr, error) {
	var key, val []byte
	err := eachField(kv, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		switch num {
		case fKeyValueKey:
			key = v
		case fKeyValueValue:
			val = v
		}
		return nil
	})
	if err != nil || !packedKeys[string(key)] {
		return exportAttr{val: val, raw: raw}, err
	}
	a := exportAttr{key: string(key), val: val, raw: raw}
	if p, ok := packedValue(val); ok {
		a.packed, a.raw = p, nil
		a.arrLen, err = otlpArrayLen(p)
	}
	return a, err
}

// fieldLen is the size of a as a field.
func (a exportAttr) fieldLen(field protowire.Number) int {
	switch {
	case a.packed != nil:
		return tagLen(field, a.contentLen())
	case a.raw != nil:
		return len(a.raw)
	}
	return tagLen(field, a.contentLen())
}

func (a exportAttr) contentLen() int {
	if a.packed != nil {
		return stringLen(fKeyValueKey, a.key) + tagLen(fKeyValueValue, tagLen(fAnyArray, a.arrLen))
	}
	return stringLen(fKeyValueKey, a.key) + tagLen(fKeyValueValue, len(a.val))
}

func (a exportAttr) appendField(b []byte, field protowire.Number) []byte {
	if a.packed == nil && a.raw != nil {
		return append(b, a.raw...)
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(a.contentLen()))
	b = appendString(b, fKeyValueKey, a.key)
	b = protowire.AppendTag(b, fKeyValueValue, protowire.BytesType)
	if a.packed == nil {
		return protowire.AppendBytes(b, a.val)
	}
	b = protowire.AppendVarint(b, uint64(tagLen(fAnyArray, a.arrLen)))
	b = protowire.AppendTag(b, fAnyArray, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(a.arrLen))
	return appendOTLPArray(b, a.packed, a.arrLen)
}

// exportSpan is a stored span read for its export form: its fields, the
// attributes and events among them read, and the span-level copies of the
// first choice's arrays to write after its last attribute.
type exportSpan struct {
	fields   []exportField
	evFields []exportAttr // the events' fields (attributes, or raw)
	copies   []exportAttr
	size     int // of the span's export encoding
}

type exportField struct {
	kind   int        // fieldRaw, fieldAttr or fieldEvent
	attr   exportAttr // a span attribute, or the raw field
	events [2]int     // an event's fields: evFields[events[0]:events[1]]
	evSize int
	copies bool // the copies go after this one
}

const (
	fieldRaw = iota
	fieldAttr
	fieldEvent
)

func readExportSpan(span []byte) (*exportSpan, error) {
	es := &exportSpan{fields: make([]exportField, 0, 48), evFields: make([]exportAttr, 0, 64)}
	var hasResponse, hasLogprobs, firstChoice bool
	var response, logprobs exportAttr
	lastAttr := -1
	err := eachField(span, func(num protowire.Number, _ protowire.Type, v, raw []byte) error {
		f := exportField{kind: fieldRaw, attr: exportAttr{raw: raw}}
		switch num {
		case fSpanAttributes:
			a, err := exportAttrOf(v, raw)
			if err != nil {
				return err
			}
			hasResponse = hasResponse || a.key == AttrResponseTokenIDs
			hasLogprobs = hasLogprobs || a.key == AttrResponseLogprobs
			f.kind, f.attr, lastAttr = fieldAttr, a, len(es.fields)
		case fSpanEvents:
			choice := !firstChoice && eventName(v) == EventChoice
			firstChoice = firstChoice || choice
			f.kind, f.events[0] = fieldEvent, len(es.evFields)
			err := eachField(v, func(num protowire.Number, _ protowire.Type, v, raw []byte) error {
				a := exportAttr{raw: raw}
				if num == fEventAttributes {
					var err error
					if a, err = exportAttrOf(v, raw); err != nil {
						return err
					}
					switch {
					case choice && a.key == AttrChoiceTokenIDs:
						response = a.renamed(AttrResponseTokenIDs)
					case choice && a.key == AttrChoiceLogprobs:
						logprobs = a.renamed(AttrResponseLogprobs)
					}
				}
				es.evFields = append(es.evFields, a)
				f.evSize += a.fieldLen(fEventAttributes)
				return nil
			})
			f.events[1] = len(es.evFields)
			if err != nil {
				return err
			}
		}
		es.fields = append(es.fields, f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !hasResponse && response.key != "" {
		es.copies = append(es.copies, response)
	}
	if !hasLogprobs && logprobs.key != "" {
		es.copies = append(es.copies, logprobs)
	}
	if lastAttr >= 0 {
		es.fields[lastAttr].copies = true
	}
	for i := range es.fields {
		f := &es.fields[i]
		es.size += f.size()
		if f.copies {
			for _, c := range es.copies {
				es.size += c.fieldLen(fSpanAttributes)
			}
		}
	}
	return es, nil
}

// renamed is a under another key.
func (a exportAttr) renamed(key string) exportAttr {
	a.key, a.raw = key, nil
	return a
}

func (f *exportField) size() int {
	switch f.kind {
	case fieldAttr:
		return f.attr.fieldLen(fSpanAttributes)
	case fieldEvent:
		return tagLen(fSpanEvents, f.evSize)
	}
	return len(f.attr.raw)
}

func (es *exportSpan) appendTo(b []byte) []byte {
	for i := range es.fields {
		f := &es.fields[i]
		switch f.kind {
		case fieldAttr:
			b = f.attr.appendField(b, fSpanAttributes)
		case fieldEvent:
			b = protowire.AppendTag(b, fSpanEvents, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(f.evSize))
			for _, a := range es.evFields[f.events[0]:f.events[1]] {
				b = a.appendField(b, fEventAttributes)
			}
		default:
			b = append(b, f.attr.raw...)
		}
		if f.copies {
			for _, c := range es.copies {
				b = c.appendField(b, fSpanAttributes)
			}
		}
	}
	return b
}

// ExportForm returns a stored call's data (whole, not a delta) as OTLP:
// its packed arrays written as OTLP arrays and its first choice's arrays
// repeated at span level. Data stored unpacked comes back as it is.
func ExportForm(data []byte) ([]byte, error) {
	span, err := findSpan(data)
	if err != nil {
		return nil, err
	}
	es, err := readExportSpan(span)
	if err != nil {
		return nil, err
	}
	return appendWithSpan(make([]byte, 0, len(data)-len(span)+es.size+16), data, es.size, es.appendTo)
}

// appendWithSpan appends the ResourceSpans data with its (first) span
// replaced by the size bytes that write appends, every other field as it
// was, in its place.
func appendWithSpan(out, data []byte, size int, write func([]byte) []byte) ([]byte, error) {
	done := false
	err := eachField(data, func(num protowire.Number, _ protowire.Type, v, raw []byte) error {
		if num != fResourceSpansScopeSpans || done {
			out = append(out, raw...)
			return nil
		}
		// The ScopeSpans' size once its span field has the new size.
		ssLen := 0
		err := eachField(v, func(num protowire.Number, _ protowire.Type, _, raw []byte) error {
			if num == fScopeSpansSpans && !done {
				done = true
				ssLen += tagLen(fScopeSpansSpans, size)
			} else {
				ssLen += len(raw)
			}
			return nil
		})
		if err != nil {
			return err
		}
		done = false
		out = protowire.AppendTag(out, fResourceSpansScopeSpans, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(ssLen))
		return eachField(v, func(num protowire.Number, _ protowire.Type, _, raw []byte) error {
			if num == fScopeSpansSpans && !done {
				done = true
				out = protowire.AppendTag(out, fScopeSpansSpans, protowire.BytesType)
				out = protowire.AppendVarint(out, uint64(size))
				out = write(out)
				return nil
			}
			out = append(out, raw...)
			return nil
		})
	})
	return out, err
}

// eventName is an event's name.
func eventName(ev []byte) string {
	var name string
	eachField(ev, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
		if num == fEventName {
			name = string(v)
		}
		return nil
	})
	return name
}
