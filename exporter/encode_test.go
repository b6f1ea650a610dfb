package exporter

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
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

// The hand-written encoder writes what the SDK's transform writes.
func TestEncoderMatchesSDKTransform(t *testing.T) {
	rec := NewRecorder(nil, true, "test")
	key := rollout.Key{RolloutID: "r", AttemptID: "a"}
	spans := map[string]trace.Span{}

	call := sampleCall()
	_, sp := rec.tracer.Start(context.Background(), "call", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(call.Start),
		trace.WithAttributes(callAttributes(call, true)...))
	addChoiceEvents(sp, call)
	sp.End(trace.WithTimestamp(call.End))
	spans["call"] = sp

	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{9}, SpanID: trace.SpanID{8}, TraceFlags: trace.FlagsSampled, Remote: true})
	_, sp = rec.tracer.Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "failed",
		trace.WithAttributes(attribute.BoolSlice("bools", []bool{true, false}), attribute.StringSlice("strs", []string{"", "x"}),
			attribute.Int64Slice("empty", []int64{}), attribute.Int64("zero", 0), attribute.Bool("false", false), attribute.String("blank", ""),
			attribute.Int64Slice("negative", []int64{-1, 1 << 62}), attribute.Float64Slice("floats", []float64{0, -9999, 1e-300})),
		trace.WithLinks(trace.Link{SpanContext: parent, Attributes: []attribute.KeyValue{attribute.String("l", "v")}}))
	sp.AddEvent("no attributes", trace.WithTimestamp(time.Unix(5, 6)))
	sp.SetStatus(codes.Error, "upstream unreachable")
	sp.End()
	spans["failed"] = sp

	for name, sp := range spans {
		ro := sp.(sdktrace.ReadOnlySpan)
		want, err := proto.Marshal(reference(t, ro, key))
		if err != nil {
			t.Fatal(err)
		}
		got := appendResourceSpans(nil, new([]byte), ro, resourceKey(key))
		var a, b tracepb.ResourceSpans
		if err := proto.Unmarshal(got, &a); err != nil {
			t.Fatalf("%s: our encoding does not parse: %v", name, err)
		}
		proto.Unmarshal(want, &b)
		if !proto.Equal(&a, &b) {
			t.Errorf("%s: encodings differ\n ours %v\n sdk  %v", name, &a, &b)
		}
		if len(got) != len(want) {
			t.Errorf("%s: %d bytes, the SDK's %d", name, len(got), len(want))
		}
	}
}
