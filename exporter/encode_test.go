package exporter

import (
	"context"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
)

// captured is an otlptrace.Client that keeps what it is given: through it
// the SDK's own ReadOnlySpan→OTLP transform is the reference.
type captured struct{ spans []*tracepb.ResourceSpans }

func (c *captured) Start(context.Context) error { return nil }
func (c *captured) Stop(context.Context) error  { return nil }
func (c *captured) UploadTraces(_ context.Context, rs []*tracepb.ResourceSpans) error {
	c.spans = rs
	return nil
}

// reference encodes a span with otlptrace's transform.
func reference(t *testing.T, ro sdktrace.ReadOnlySpan, key rollout.Key) *tracepb.ResourceSpans {
	t.Helper()
	var got captured
	if err := otlptrace.NewUnstarted(&got).ExportSpans(context.Background(), []sdktrace.ReadOnlySpan{ro}); err != nil {
		t.Fatal(err)
	}
	rs := got.spans[0]
	for _, kv := range resourceKey(key) {
		rs.Resource.Attributes = append(rs.Resource.Attributes, strAttr(string(kv.Key), kv.Value.AsString()))
	}
	return rs
}

// sdkArrays turns token arrays into plain SDK attributes, for a reference
// span that holds everything as the SDK would.
func sdkArrays(as []arrayAttr) []attribute.KeyValue {
	var out []attribute.KeyValue
	for _, a := range as {
		if a.isFloat {
			out = append(out, attribute.Float64Slice(a.key, a.floats))
		} else {
			out = append(out, attribute.Int64Slice(a.key, a.ints))
		}
	}
	return out
}

// normalize clears what differs between two recordings of the same span
// (ids) and sorts attributes by key (the arrays come last in ours).
func normalize(rs *tracepb.ResourceSpans) *tracepb.ResourceSpans {
	sortKV := func(kvs []*commonpb.KeyValue) {
		sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].Key < kvs[j].Key })
	}
	for _, ss := range rs.ScopeSpans {
		for _, sp := range ss.Spans {
			sp.TraceId, sp.SpanId = nil, nil
			sortKV(sp.Attributes)
			for _, ev := range sp.Events {
				sortKV(ev.Attributes)
			}
		}
	}
	return rs
}

// The hand-written encoder, token arrays included, writes what the SDK's
// transform writes for a span holding everything as attributes.
func TestEncoderMatchesSDKTransform(t *testing.T) {
	rec := NewRecorder(nil, true, "test")
	key := rollout.Key{RolloutID: "r", AttemptID: "a"}
	for _, call := range []*Call{sampleCall(), func() *Call { c := sampleCall(); c.Response.Prompts = nil; return c }()} {
		arrays := callArrays(call, false)
		start := func(withArrays bool) sdktrace.ReadOnlySpan {
			attrs := callAttributes(call, true)
			if withArrays {
				attrs = append(attrs, sdkArrays(arrays.span)...)
			}
			_, sp := rec.tracer.Start(context.Background(), "call", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithTimestamp(call.Start), trace.WithAttributes(attrs...))
			addChoiceEvents(sp, call)
			sp.End(trace.WithTimestamp(call.End))
			return sp.(sdktrace.ReadOnlySpan)
		}
		ours := appendResourceSpans(nil, new([]byte), start(false), arrays, resourceKey(key))
		refSpan := reference(t, start(true), key)
		// The reference's events get their arrays the SDK way.
		evs := refSpan.ScopeSpans[0].Spans[0].Events
		if len(evs) != len(arrays.events) {
			t.Fatalf("%d events, %d event arrays", len(evs), len(arrays.events))
		}
		for i, ev := range evs {
			for _, kv := range sdkArrays(arrays.events[i]) {
				ev.Attributes = append(ev.Attributes, sdkValue(kv))
			}
		}
		var a tracepb.ResourceSpans
		if err := proto.Unmarshal(ours, &a); err != nil {
			t.Fatalf("our encoding does not parse: %v", err)
		}
		if want, _ := proto.Marshal(refSpan); len(ours) != len(want) {
			t.Errorf("%d bytes, the SDK's %d", len(ours), len(want))
		}
		if want := normalize(refSpan); !proto.Equal(normalize(&a), want) {
			t.Errorf("encodings differ\n ours %v\n sdk  %v", &a, want)
		}
	}

	// A span of every attribute type, links, a remote parent, an error.
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled, Remote: true})
	_, sp := rec.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "failed",
		trace.WithAttributes(attribute.BoolSlice("bools", []bool{true, false}), attribute.StringSlice("strs", []string{"", "x"}),
			attribute.Int64Slice("empty", []int64{}), attribute.Int64("zero", 0), attribute.Bool("false", false), attribute.String("blank", ""),
			attribute.Int64Slice("negative", []int64{-1, 1 << 62}), attribute.Float64Slice("floats", []float64{0, -9999, 1e-300})),
		trace.WithLinks(trace.Link{SpanContext: parent, Attributes: []attribute.KeyValue{attribute.String("l", "v")}}))
	sp.AddEvent("no attributes", trace.WithTimestamp(time.Unix(5, 6)))
	sp.SetStatus(codes.Error, "upstream unreachable")
	sp.End()
	ro := sp.(sdktrace.ReadOnlySpan)
	want, _ := proto.Marshal(reference(t, ro, key))
	got := appendResourceSpans(nil, new([]byte), ro, nil, resourceKey(key))
	var a, b tracepb.ResourceSpans
	proto.Unmarshal(got, &a)
	proto.Unmarshal(want, &b)
	if !proto.Equal(&a, &b) || len(got) != len(want) {
		t.Errorf("encodings differ\n ours %v\n sdk  %v", &a, &b)
	}
}

// sdkValue converts an attribute the way otlptrace's transform does.
func sdkValue(kv attribute.KeyValue) *commonpb.KeyValue {
	av := &commonpb.ArrayValue{}
	switch kv.Value.Type() {
	case attribute.INT64SLICE:
		for _, x := range kv.Value.AsInt64Slice() {
			av.Values = append(av.Values, &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: x}})
		}
	case attribute.FLOAT64SLICE:
		for _, x := range kv.Value.AsFloat64Slice() {
			av.Values = append(av.Values, &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: x}})
		}
	}
	return &commonpb.KeyValue{Key: string(kv.Key), Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: av}}}
}
