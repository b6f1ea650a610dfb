package exporter

import (
	"bytes"
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// packedCases are calls whose arrays take every shape: several prompts and
// choices, a first choice without IDs or logprobs, empty and negative
// arrays, no choices at all.
func packedCases() map[string]*Call {
	noPrompts := sampleCall()
	noPrompts.Response.Prompts = nil
	firstWithoutIDs := sampleCall()
	firstWithoutIDs.Response.Choices[0].TokenIDs = nil
	firstWithoutLogprobs := sampleCall()
	firstWithoutLogprobs.Response.Choices[0].Logprobs = nil
	empty := sampleCall()
	empty.Response.PromptTokenIDs, empty.Response.Choices = []int64{}, []tokenids.Choice{{TokenIDs: []int64{}, Logprobs: []float64{}}}
	odd := sampleCall()
	odd.Response.Choices[0].TokenIDs = []int64{-1, 0, 1 << 62, 151643}
	odd.Response.Choices[0].Logprobs = []float64{0, -9999, -1e-300, -0.1}
	none := sampleCall()
	none.Response = tokenids.Result{}
	return map[string]*Call{
		"completions, two prompts, four choices": sampleCall(),
		"one prompt":                             noPrompts,
		"first choice without IDs":               firstWithoutIDs,
		"first choice without logprobs":          firstWithoutLogprobs,
		"empty arrays":                           empty,
		"negative and large values":              odd,
		"no answer":                              none,
		"2,048 + 256 tokens":                     realisticCall(rollout.Key{RolloutID: "r", AttemptID: "0"}, 1),
	}
}

// A call stored packed reads back (ExportForm) as the very bytes the
// recorder writes unpacked, and unpacked data comes back as it is.
func TestExportFormIsTheUnpackedEncoding(t *testing.T) {
	rec := NewRecorder(nil, true, "test")
	key := rollout.Key{RolloutID: "r", AttemptID: "a"}
	for name, call := range packedCases() {
		t.Run(name, func(t *testing.T) {
			_, sp := rec.tracer.Start(context.Background(), "call", trace.WithSpanKind(trace.SpanKindClient),
				trace.WithTimestamp(call.Start), trace.WithAttributes(callAttributes(call, true)...))
			addChoiceEvents(sp, call)
			sp.End(trace.WithTimestamp(call.End))
			ro := sp.(sdktrace.ReadOnlySpan)
			want := appendResourceSpans(nil, new([]byte), ro, callArrays(call, false), resourceKey(key))
			packed := appendResourceSpans(nil, new([]byte), ro, callArrays(call, true), resourceKey(key))
			got, err := ExportForm(packed)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ExportForm of the packed encoding (%d bytes) is not the unpacked one (%d bytes)", len(got), len(want))
			}
			if again, err := ExportForm(want); err != nil || !bytes.Equal(again, want) {
				t.Errorf("ExportForm changed unpacked data (%v)", err)
			}
			t.Logf("stored %d bytes, OTLP %d", len(packed), len(want))
		})
	}
}
