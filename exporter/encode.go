package exporter

import (
	"math"
	"slices"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes an ended SDK span as an OTLP ResourceSpans message with
// protowire, field for field what otlptrace's transform and proto.Marshal
// produce (a test holds the two equal). The transform builds a message
// object per array element: two allocations per token ID, a few thousand
// per call. Here a call costs a handful, whatever its length.

// OTLP field numbers (opentelemetry/proto/trace/v1, common/v1, resource/v1).
const (
	fResourceSpansResource   = 1
	fResourceSpansScopeSpans = 2
	fResourceSpansSchemaURL  = 3
	fResourceAttributes      = 1
	fScopeSpansScope         = 1
	fScopeSpansSpans         = 2
	fScopeSpansSchemaURL     = 3
	fScopeName               = 1
	fScopeVersion            = 2
	fScopeAttributes         = 3

	fSpanTraceID       = 1
	fSpanSpanID        = 2
	fSpanTraceState    = 3
	fSpanParentSpanID  = 4
	fSpanName          = 5
	fSpanKind          = 6
	fSpanStart         = 7
	fSpanEnd           = 8
	fSpanAttributes    = 9
	fSpanDroppedAttrs  = 10
	fSpanEvents        = 11
	fSpanDroppedEvents = 12
	fSpanLinks         = 13
	fSpanDroppedLinks  = 14
	fSpanStatus        = 15
	fSpanFlags         = 16

	fEventTime         = 1
	fEventName         = 2
	fEventAttributes   = 3
	fEventDroppedAttrs = 4

	fLinkTraceID      = 1
	fLinkSpanID       = 2
	fLinkTraceState   = 3
	fLinkAttributes   = 4
	fLinkDroppedAttrs = 5
	fLinkFlags        = 6

	fStatusMessage = 2
	fStatusCode    = 3

	fKeyValueKey   = 1
	fKeyValueValue = 2

	fAnyString = 1
	fAnyBool   = 2
	fAnyInt    = 3
	fAnyDouble = 4
	fAnyArray  = 5

	fArrayValues = 1

	// SpanFlags masks.
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

// tokenArrays are a call's token ID and logprob arrays. They are not set
// on the SDK span: the SDK copies a slice attribute when it is set and again
// when it is read (by reflection), and these arrays are most of a call's
// bytes. They are written into the span's encoding straight from the call,
// after the attributes the SDK holds: span arrays after the span's
// attributes, events[i] after the attributes of the span's i-th event.
type tokenArrays struct {
	span   []arrayAttr
	events [][]arrayAttr
	// packed writes them in their stored form (packed.go), not as OTLP.
	packed bool
}

// keyValueLen is the encoded size of a's KeyValue.
func (t *tokenArrays) keyValueLen(a arrayAttr) int {
	if t.packed {
		return a.packedKeyValueLen()
	}
	return a.keyValueLen()
}

// appendField appends a as a KeyValue field.
func (t *tokenArrays) appendField(b []byte, a arrayAttr, field protowire.Number) []byte {
	if t.packed {
		return a.appendPackedField(b, field)
	}
	return a.appendField(b, field)
}

type arrayAttr struct {
	key     string
	ints    []int64
	floats  []float64
	isFloat bool
}

func (a arrayAttr) keyValueLen() int {
	arr := int64ArrayLen(a.ints)
	if a.isFloat {
		arr = len(a.floats) * float64ElemLen
	}
	return stringLen(fKeyValueKey, a.key) + tagLen(fKeyValueValue, tagLen(fAnyArray, arr))
}

func (a arrayAttr) appendField(b []byte, field protowire.Number) []byte {
	if a.isFloat {
		return appendFloat64SliceKeyValue(b, field, a.key, a.floats)
	}
	return appendInt64SliceKeyValue(b, field, a.key, a.ints)
}

// appendResourceSpans appends ro as a ResourceSpans holding one span, with
// its token arrays (nil when none) and extra attributes added to its
// resource. The span is first written into scratch, so that its length is
// known; the envelopes around it are small.
func appendResourceSpans(dst []byte, scratch *[]byte, ro sdktrace.ReadOnlySpan, arrays *tokenArrays, extra []attribute.KeyValue) []byte {
	if arrays == nil {
		arrays = &tokenArrays{}
	}
	span := appendSpan((*scratch)[:0], ro, arrays)
	*scratch = span

	var res []byte
	for it := ro.Resource().Iter(); it.Next(); {
		res = appendKeyValueField(res, fResourceAttributes, it.Attribute())
	}
	for _, kv := range extra {
		res = appendKeyValueField(res, fResourceAttributes, kv)
	}
	sc := ro.InstrumentationScope()
	var scope []byte
	scope = appendString(scope, fScopeName, sc.Name)
	scope = appendString(scope, fScopeVersion, sc.Version)
	for it := sc.Attributes.Iter(); it.Next(); {
		scope = appendKeyValueField(scope, fScopeAttributes, it.Attribute())
	}

	scopeSpansLen := tagLen(fScopeSpansScope, len(scope)) + tagLen(fScopeSpansSpans, len(span)) + stringLen(fScopeSpansSchemaURL, sc.SchemaURL)
	dst = slices.Grow(dst, len(res)+len(scope)+len(span)+64)
	dst = protowire.AppendTag(dst, fResourceSpansResource, protowire.BytesType)
	dst = protowire.AppendBytes(dst, res)
	dst = protowire.AppendTag(dst, fResourceSpansScopeSpans, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(scopeSpansLen))
	dst = protowire.AppendTag(dst, fScopeSpansScope, protowire.BytesType)
	dst = protowire.AppendBytes(dst, scope)
	dst = protowire.AppendTag(dst, fScopeSpansSpans, protowire.BytesType)
	dst = protowire.AppendBytes(dst, span)
	dst = appendString(dst, fScopeSpansSchemaURL, sc.SchemaURL)
	return appendString(dst, fResourceSpansSchemaURL, ro.Resource().SchemaURL())
}

// tagLen is the encoded size of a length-delimited field of n bytes.
func tagLen(field protowire.Number, n int) int {
	return protowire.SizeTag(field) + protowire.SizeBytes(n)
}

func stringLen(field protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return tagLen(field, len(s))
}

func appendSpan(b []byte, ro sdktrace.ReadOnlySpan, arrays *tokenArrays) []byte {
	sc := ro.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	b = appendBytesField(b, fSpanTraceID, tid[:])
	b = appendBytesField(b, fSpanSpanID, sid[:])
	b = appendString(b, fSpanTraceState, sc.TraceState().String())
	if psid := ro.Parent().SpanID(); psid.IsValid() {
		b = appendBytesField(b, fSpanParentSpanID, psid[:])
	}
	b = appendString(b, fSpanName, ro.Name())
	b = appendVarintField(b, fSpanKind, uint64(spanKind(ro.SpanKind())))
	b = appendFixed64Field(b, fSpanStart, unixNano(ro.StartTime().UnixNano()))
	b = appendFixed64Field(b, fSpanEnd, unixNano(ro.EndTime().UnixNano()))
	for _, kv := range ro.Attributes() {
		b = appendKeyValueField(b, fSpanAttributes, kv)
	}
	for _, a := range arrays.span {
		b = arrays.appendField(b, a, fSpanAttributes)
	}
	b = appendVarintField(b, fSpanDroppedAttrs, uint64(clamp32(ro.DroppedAttributes())))
	for i, ev := range ro.Events() {
		var evArrays []arrayAttr
		if i < len(arrays.events) {
			evArrays = arrays.events[i]
		}
		// Choice events hold token arrays: size them rather than copy them.
		t, dropped := unixNano(ev.Time.UnixNano()), uint64(clamp32(ev.DroppedAttributeCount))
		n := stringLen(fEventName, ev.Name)
		if t != 0 {
			n += protowire.SizeTag(fEventTime) + protowire.SizeFixed64()
		}
		for _, kv := range ev.Attributes {
			n += tagLen(fEventAttributes, keyValueLen(kv))
		}
		for _, a := range evArrays {
			n += tagLen(fEventAttributes, arrays.keyValueLen(a))
		}
		if dropped != 0 {
			n += protowire.SizeTag(fEventDroppedAttrs) + protowire.SizeVarint(dropped)
		}
		b = protowire.AppendTag(b, fSpanEvents, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = appendFixed64Field(b, fEventTime, t)
		b = appendString(b, fEventName, ev.Name)
		for _, kv := range ev.Attributes {
			b = appendKeyValueField(b, fEventAttributes, kv)
		}
		for _, a := range evArrays {
			b = arrays.appendField(b, a, fEventAttributes)
		}
		b = appendVarintField(b, fEventDroppedAttrs, dropped)
	}
	b = appendVarintField(b, fSpanDroppedEvents, uint64(clamp32(ro.DroppedEvents())))
	for _, l := range ro.Links() {
		b = appendMessage(b, fSpanLinks, func(m []byte) []byte {
			ltid, lsid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
			m = appendBytesField(m, fLinkTraceID, ltid[:])
			m = appendBytesField(m, fLinkSpanID, lsid[:])
			m = appendString(m, fLinkTraceState, l.SpanContext.TraceState().String())
			for _, kv := range l.Attributes {
				m = appendKeyValueField(m, fLinkAttributes, kv)
			}
			m = appendVarintField(m, fLinkDroppedAttrs, uint64(clamp32(l.DroppedAttributeCount)))
			return appendFixed32Field(m, fLinkFlags, spanFlags(l.SpanContext.TraceFlags(), l.SpanContext))
		})
	}
	b = appendVarintField(b, fSpanDroppedLinks, uint64(clamp32(ro.DroppedLinks())))
	st := ro.Status()
	b = appendMessage(b, fSpanStatus, func(m []byte) []byte {
		m = appendString(m, fStatusMessage, st.Description)
		return appendVarintField(m, fStatusCode, uint64(statusCode(st.Code)))
	})
	return appendFixed32Field(b, fSpanFlags, spanFlags(sc.TraceFlags(), ro.Parent()))
}

// appendMessage appends a length-delimited sub-message built by fill.
// Sub-messages built this way are small (a status, a link), so they are
// built in a scratch buffer and copied.
func appendMessage(b []byte, field protowire.Number, fill func([]byte) []byte) []byte {
	var scratch [256]byte
	m := fill(scratch[:0])
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, m)
}

// keyValueLen is the encoded size of a KeyValue's contents.
func keyValueLen(kv attribute.KeyValue) int {
	return stringLen(fKeyValueKey, string(kv.Key)) + tagLen(fKeyValueValue, anyValueLen(kv.Value))
}

func appendKeyValueField(b []byte, field protowire.Number, kv attribute.KeyValue) []byte {
	key := string(kv.Key)
	if kv.Value.Type() == attribute.INT64SLICE {
		// Token arrays: read the slice once (each As call copies it).
		return appendInt64SliceKeyValue(b, field, key, kv.Value.AsInt64Slice())
	}
	valueLen := anyValueLen(kv.Value)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(stringLen(fKeyValueKey, key)+tagLen(fKeyValueValue, valueLen)))
	b = appendString(b, fKeyValueKey, key)
	b = protowire.AppendTag(b, fKeyValueValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(valueLen))
	return appendAnyValue(b, kv.Value)
}

// appendArrayKeyValueHead appends a KeyValue field holding an ArrayValue of
// arr bytes, up to where the array's elements go.
func appendArrayKeyValueHead(b []byte, field protowire.Number, key string, arr int) []byte {
	valueLen := tagLen(fAnyArray, arr)
	b = protowire.AppendTag(b, field, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(stringLen(fKeyValueKey, key)+tagLen(fKeyValueValue, valueLen)))
	b = appendString(b, fKeyValueKey, key)
	b = protowire.AppendTag(b, fKeyValueValue, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(valueLen))
	b = protowire.AppendTag(b, fAnyArray, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(arr))
	return slices.Grow(b, arr)
}

func appendInt64SliceKeyValue(b []byte, field protowire.Number, key string, xs []int64) []byte {
	b = appendArrayKeyValueHead(b, field, key, int64ArrayLen(xs))
	for _, x := range xs {
		// values { int_value: x }: 0x0a, len, 0x18, varint(x)
		n := protowire.SizeVarint(uint64(x))
		b = append(b, 0x0a, byte(1+n), 0x18)
		b = protowire.AppendVarint(b, uint64(x))
	}
	return b
}

// float64ElemLen is the encoded size of an ArrayValue element holding a
// double: values { double_value: x }.
const float64ElemLen = 2 + 1 + 8

func appendFloat64SliceKeyValue(b []byte, field protowire.Number, key string, xs []float64) []byte {
	b = appendArrayKeyValueHead(b, field, key, len(xs)*float64ElemLen)
	for _, x := range xs {
		b = append(b, 0x0a, 9, 0x21) // values { double_value (fixed64): x }
		b = protowire.AppendFixed64(b, math.Float64bits(x))
	}
	return b
}

// int64ArrayLen is the encoded size of an ArrayValue of ints.
func int64ArrayLen(xs []int64) int {
	n := 0
	for _, x := range xs {
		// Each element is at most 1+1+1+10 bytes: its length fits one byte.
		n += 3 + protowire.SizeVarint(uint64(x))
	}
	return n
}

// anyValueLen is the encoded size of an AnyValue's contents.
func anyValueLen(v attribute.Value) int {
	switch v.Type() {
	case attribute.BOOL:
		return protowire.SizeTag(fAnyBool) + 1
	case attribute.INT64:
		return protowire.SizeTag(fAnyInt) + protowire.SizeVarint(uint64(v.AsInt64()))
	case attribute.FLOAT64:
		return protowire.SizeTag(fAnyDouble) + protowire.SizeFixed64()
	case attribute.STRING:
		return tagLen(fAnyString, len(v.AsString()))
	case attribute.INT64SLICE:
		return tagLen(fAnyArray, int64ArrayLen(v.AsInt64Slice()))
	case attribute.BOOLSLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		return tagLen(fAnyArray, arrayLen(v))
	}
	return tagLen(fAnyString, len(v.Emit()))
}

// arrayLen is the encoded size of an ArrayValue's contents (ints are
// handled by int64ArrayLen).
func arrayLen(v attribute.Value) int {
	n := 0
	switch v.Type() {
	case attribute.BOOLSLICE:
		n = len(v.AsBoolSlice()) * tagLen(fArrayValues, protowire.SizeTag(fAnyBool)+1)
	case attribute.FLOAT64SLICE:
		n = len(v.AsFloat64Slice()) * tagLen(fArrayValues, protowire.SizeTag(fAnyDouble)+protowire.SizeFixed64())
	case attribute.STRINGSLICE:
		for _, s := range v.AsStringSlice() {
			n += tagLen(fArrayValues, tagLen(fAnyString, len(s)))
		}
	}
	return n
}

func appendAnyValue(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOL:
		return appendBoolAny(b, v.AsBool())
	case attribute.INT64:
		return appendIntAny(b, v.AsInt64())
	case attribute.FLOAT64:
		return appendDoubleAny(b, v.AsFloat64())
	case attribute.STRING:
		return appendStringAlways(b, fAnyString, v.AsString())
	case attribute.BOOLSLICE, attribute.FLOAT64SLICE, attribute.STRINGSLICE:
		b = protowire.AppendTag(b, fAnyArray, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(arrayLen(v)))
		return appendArray(b, v)
	}
	return appendStringAlways(b, fAnyString, v.Emit())
}

func appendArray(b []byte, v attribute.Value) []byte {
	switch v.Type() {
	case attribute.BOOLSLICE:
		for _, x := range v.AsBoolSlice() {
			b = protowire.AppendTag(b, fArrayValues, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fAnyBool)+1))
			b = appendBoolAny(b, x)
		}
	case attribute.FLOAT64SLICE:
		for _, x := range v.AsFloat64Slice() {
			b = protowire.AppendTag(b, fArrayValues, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(protowire.SizeTag(fAnyDouble)+protowire.SizeFixed64()))
			b = appendDoubleAny(b, x)
		}
	case attribute.STRINGSLICE:
		for _, s := range v.AsStringSlice() {
			b = protowire.AppendTag(b, fArrayValues, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(tagLen(fAnyString, len(s))))
			b = appendStringAlways(b, fAnyString, s)
		}
	}
	return b
}

// A oneof member is written even when it holds its zero value (false, 0,
// ""): its presence says which member is set.
func appendBoolAny(b []byte, x bool) []byte {
	b = protowire.AppendTag(b, fAnyBool, protowire.VarintType)
	return protowire.AppendVarint(b, protowire.EncodeBool(x))
}

func appendIntAny(b []byte, x int64) []byte {
	b = protowire.AppendTag(b, fAnyInt, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(x))
}

func appendDoubleAny(b []byte, x float64) []byte {
	b = protowire.AppendTag(b, fAnyDouble, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, math.Float64bits(x))
}

func appendStringAlways(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// Scalar fields outside a oneof are omitted at their zero value (proto3).
func appendString(b []byte, field protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return appendStringAlways(b, field, s)
}

func appendBytesField(b []byte, field protowire.Number, v []byte) []byte {
	if len(v) == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func appendVarintField(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func appendFixed64Field(b []byte, field protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.Fixed64Type)
	return protowire.AppendFixed64(b, v)
}

func appendFixed32Field(b []byte, field protowire.Number, v uint32) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, field, protowire.Fixed32Type)
	return protowire.AppendFixed32(b, v)
}

func unixNano(n int64) uint64 { return uint64(max(0, n)) }

func clamp32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// spanKind maps the SDK's span kinds to OTLP's enum values.
func spanKind(k trace.SpanKind) int {
	switch k {
	case trace.SpanKindInternal:
		return 1
	case trace.SpanKindServer:
		return 2
	case trace.SpanKindClient:
		return 3
	case trace.SpanKindProducer:
		return 4
	case trace.SpanKindConsumer:
		return 5
	}
	return 0
}

func statusCode(c codes.Code) int {
	switch c {
	case codes.Ok:
		return 1
	case codes.Error:
		return 2
	}
	return 0
}

// spanFlags are the W3C trace flags plus whether the parent is remote, as
// otlptrace sets them.
func spanFlags(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | flagHasIsRemote
	if parent.IsRemote() {
		flags |= flagIsRemote
	}
	return flags
}
