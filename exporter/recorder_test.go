package exporter

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

func testStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func ptr[T any](v T) *T { return &v }

func sampleCall() *Call {
	start := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	return &Call{
		Key:  rollout.Key{RolloutID: "r7", AttemptID: "0"},
		Seq:  1,
		Path: "/v1/completions",
		Request: tokenids.Request{
			Endpoint: tokenids.Completions, Model: "Qwen/Qwen3-8B", Stream: true, N: 2, Prompts: 2,
			Temperature: ptr(0.7), TopP: ptr(1.0), MaxTokens: ptr(int64(16)), Seed: ptr(int64(3)),
			TokenIDs: true, Logprobs: true, Input: []byte(`["a","b"]`), Forced: []string{"temperature"},
		},
		Response: tokenids.Result{
			ResponseID: "cmpl-1", Model: "Qwen/Qwen3-8B",
			PromptTokenIDs: []int64{1, 2},
			Prompts:        [][]int64{{1, 2}, {3}},
			Choices: []tokenids.Choice{
				{Index: 0, PromptIndex: 0, TokenIDs: []int64{40, 1079}, Logprobs: []float64{-0.1, -0.02}, FinishReason: "stop", Text: "I am"},
				{Index: 1, PromptIndex: 0, TokenIDs: []int64{41}, Logprobs: []float64{-0.5}, FinishReason: "length", Text: "x"},
				{Index: 2, PromptIndex: 1, TokenIDs: []int64{42}, Logprobs: []float64{-0.25}, FinishReason: "stop", Text: "y"},
				{Index: 3, PromptIndex: 1, TokenIDs: []int64{43}, Logprobs: []float64{-0.125}, FinishReason: "stop", Text: "z"},
			},
			Usage: &tokenids.Usage{PromptTokens: 3, CompletionTokens: 5, TotalTokens: 8},
		},
		Status: StatusOK, HTTPStatus: 200,
		Start: start, End: start.Add(1500 * time.Millisecond),
		Valid:    true,
		Checks:   []string{"ids_present", "choice_count", "logprob_count", "prompt_count", "completion_count"},
		Upstream: "vllm-1:8000", PolicyVersion: "step-3", PolicyVersionEnd: "step-4",
	}
}

func stored(t *testing.T, st *store.Store, key rollout.Key) []*tracepb.Span {
	t.Helper()
	recs, err := st.Records(context.Background(), key.RolloutID, key.AttemptID)
	if err != nil {
		t.Fatal(err)
	}
	var out []*tracepb.Span
	for _, r := range recs {
		data, err := NewResolver(st).Full(context.Background(), r) // as the views read it
		if err != nil {
			t.Fatal(err)
		}
		rs, sp, err := DecodeRecord(data)
		if err != nil {
			t.Fatal(err)
		}
		res := index(rs.Resource.Attributes)
		if res.str("service.name") != "tokentap" || res.str(AttrAGLRolloutID) != key.RolloutID || res.str(AttrAGLAttemptID) != key.AttemptID {
			t.Errorf("resource = %v", rs.Resource.Attributes)
		}
		out = append(out, sp)
	}
	return out
}

func TestRecordCallSpan(t *testing.T) {
	st := testStore(t)
	rec := NewRecorder(st, true, "test")
	call := sampleCall()
	parent := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5}, TraceFlags: 0, Remote: true,
	})
	call.Parent = parent // sampled=false: tokentap records anyway
	if err := rec.RecordCall(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	spans := stored(t, st, call.Key)
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	sp := spans[0]
	if sp.Name != "text_completion Qwen/Qwen3-8B" || sp.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("name %q kind %v", sp.Name, sp.Kind)
	}
	if trace.TraceID(sp.TraceId) != parent.TraceID() || trace.SpanID(sp.ParentSpanId) != parent.SpanID() {
		t.Error("the span did not join the agent's trace")
	}
	a := index(sp.Attributes)
	wantInts := map[string][]int64{AttrPromptTokenIDs: {1, 2}, AttrResponseTokenIDs: {40, 1079}}
	for k, v := range wantInts {
		if got := a.ints(k); !reflect.DeepEqual(got, v) {
			t.Errorf("%s = %v, want %v", k, got, v)
		}
	}
	if got := a.floats(AttrResponseLogprobs); !reflect.DeepEqual(got, []float64{-0.1, -0.02}) {
		t.Errorf("logprobs = %v", got)
	}
	for k, v := range map[string]string{
		AttrRolloutID: "r7", AttrAttemptID: "0", AttrAGLRolloutID: "r7", AttrAGLAttemptID: "0",
		AttrOperation: "text_completion", AttrProvider: "vllm", AttrRequestModel: "Qwen/Qwen3-8B",
		AttrResponseID: "cmpl-1", AttrResponseModel: "Qwen/Qwen3-8B", AttrURLPath: "/v1/completions",
		AttrCallStatus: "ok", AttrInputMessages: `["a","b"]`, AttrOutputMessages: `["I am","x","y","z"]`,
	} {
		if got := a.str(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	for k, v := range map[string]int64{AttrSequenceID: 1, AttrAGLSequenceID: 1, AttrHTTPStatus: 200, AttrInputTokens: 3, AttrOutputTokens: 5, AttrMaxTokens: 16, AttrSeed: 3, AttrChoiceCount: 2} {
		if got, _ := a.int(k); got != v {
			t.Errorf("%s = %d, want %d", k, got, v)
		}
	}
	if seq := a[AttrSequenceID]; seq == nil || seq.GetIntValue() != 1 {
		t.Error("sequence id must be an int attribute")
	}
	if !a.bool(AttrTokenIDsValid) || !a.bool(AttrStream) || !reflect.DeepEqual(a.strs(AttrFinishReasons), []string{"stop", "length", "stop", "stop"}) {
		t.Error("valid/stream/finish reasons wrong")
	}
	if got := a.strs(AttrTokenIDsChecks); !reflect.DeepEqual(got, call.Checks) || a[AttrTokenIDsChecks].GetArrayValue() == nil {
		t.Errorf("%s = %v, want the string array %v", AttrTokenIDsChecks, got, call.Checks)
	}
	var choices, prompts int
	for _, ev := range sp.Events {
		switch ev.Name {
		case EventChoice:
			choices++
		case EventPrompt:
			prompts++
		}
	}
	if choices != 4 || prompts != 2 {
		t.Errorf("%d choice events, %d prompt events", choices, prompts)
	}
	if sp.Status != nil && sp.Status.Code == tracepb.Status_STATUS_CODE_ERROR {
		t.Error("ok call has status ERROR")
	}

	// And back: the call read from its span is the call recorded.
	got := CallFromSpan(sp)
	want := *call
	want.Parent = trace.SpanContext{}
	want.TraceID, want.SpanID = SpanIDs(sp)
	want.InputMessages, want.OutputMessages = []byte(`["a","b"]`), []byte(`["I am","x","y","z"]`)
	want.Request.TokenIDs, want.Request.Logprobs, want.Request.Input = false, false, nil
	want.Dialect = DialectOpenAICompletions // unset: the endpoint's
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("round trip\n got %+v\nwant %+v", *got, want)
	}
}

// Every call span says which API the agent spoke: the one set on the call
// (a translated dialect), else its endpoint's; spans recorded before the
// attribute existed read back as their endpoint's.
func TestDialectAttribute(t *testing.T) {
	tests := []struct {
		name     string
		endpoint tokenids.Endpoint
		dialect  string
		want     string
	}{
		{"chat", tokenids.Chat, "", DialectOpenAIChat},
		{"completions", tokenids.Completions, "", DialectOpenAICompletions},
		{"anthropic messages", tokenids.Chat, DialectAnthropicMessages, DialectAnthropicMessages},
		{"responses", tokenids.Chat, DialectOpenAIResponses, DialectOpenAIResponses},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := testStore(t)
			rec := NewRecorder(st, false, "test")
			call := sampleCall()
			call.Seq = uint64(i + 1)
			call.Request.Endpoint, call.Dialect = tt.endpoint, tt.dialect
			if err := rec.RecordCall(context.Background(), call); err != nil {
				t.Fatal(err)
			}
			sp := stored(t, st, call.Key)[0]
			if got := index(sp.Attributes).str(AttrDialect); got != tt.want {
				t.Errorf("%s = %q, want %q", AttrDialect, got, tt.want)
			}
			if got := CallFromSpan(sp); got.Dialect != tt.want || got.DialectName() != tt.want {
				t.Errorf("read back dialect %q, want %q", got.Dialect, tt.want)
			}
			// A span from before the attribute: the endpoint's dialect.
			var kept []*commonpb.KeyValue
			for _, kv := range sp.Attributes {
				if kv.Key != AttrDialect {
					kept = append(kept, kv)
				}
			}
			sp.Attributes = kept
			if got, want := CallFromSpan(sp).Dialect, EndpointDialect(tt.endpoint); got != want {
				t.Errorf("without the attribute: %q, want %q", got, want)
			}
		})
	}
}

func TestRecordFailedCall(t *testing.T) {
	st := testStore(t)
	rec := NewRecorder(st, false, "test")
	call := sampleCall()
	call.Status, call.HTTPStatus, call.Error, call.ErrorType = StatusError, 502, "upstream unreachable: connection refused", "connection_error"
	call.Response = tokenids.Result{}
	call.Valid, call.Problem, call.Checks = false, "no prompt_token_ids", nil
	if err := rec.RecordCall(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	sp := stored(t, st, call.Key)[0]
	if sp.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || sp.Status.Message != call.Error {
		t.Errorf("status = %v", sp.Status)
	}
	a := index(sp.Attributes)
	if a[AttrInputMessages] != nil {
		t.Error("content captured with capture off")
	}
	if a.str(AttrErrorType) != "connection_error" || a.str(AttrTokenIDsProblem) != "no prompt_token_ids" || a[AttrPromptTokenIDs] != nil {
		t.Errorf("attributes = %v", sp.Attributes)
	}
	got := CallFromSpan(sp)
	if a[AttrTokenIDsChecks] != nil || got.Checks != nil {
		t.Error("a call without checks must carry no checks attribute, and read back as unknown (nil)")
	}
	if got.Status != StatusError || got.HTTPStatus != 502 || got.Error != call.Error || got.Valid {
		t.Errorf("read back %+v", got)
	}
}

func TestRecordReward(t *testing.T) {
	st := testStore(t)
	rec := NewRecorder(st, true, "test")
	key := rollout.Key{RolloutID: "r", AttemptID: "a"}
	if err := rec.RecordReward(context.Background(), &Reward{Key: key, Seq: 3, Name: "primary", Value: 0.5, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	sp := stored(t, st, key)[0]
	name, value, ok := RewardFromSpan(sp)
	if sp.Name != SpanNameAnnotation || !ok || name != "primary" || value != 0.5 {
		t.Errorf("reward span %q: %q %v %v", sp.Name, name, value, ok)
	}
	if seq, ok := SequenceOf(sp); !ok || seq != 3 {
		t.Errorf("sequence %d %v", seq, ok)
	}
	if IsCall(sp) {
		t.Error("a reward is not a call")
	}
}

func TestRewardFromSpanLegacy(t *testing.T) {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	dbl := func(k string, v float64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
	}
	tests := []struct {
		span  *tracepb.Span
		name  string
		value float64
		ok    bool
	}{
		{&tracepb.Span{Name: "x", Attributes: []*commonpb.KeyValue{dbl(AttrRewardValue, 1)}}, "primary", 1, true},
		{&tracepb.Span{Name: "x", Attributes: []*commonpb.KeyValue{str(AttrRewardName, "em"), dbl(AttrRewardValue, 0.25)}}, "em", 0.25, true},
		{&tracepb.Span{Name: SpanNameAnnotation, Attributes: []*commonpb.KeyValue{dbl("reward", 2)}}, "primary", 2, true},
		{&tracepb.Span{Name: "tool", Attributes: []*commonpb.KeyValue{dbl("reward", 2)}}, "", 0, false},
	}
	for _, tt := range tests {
		name, value, ok := RewardFromSpan(tt.span)
		if name != tt.name || value != tt.value || ok != tt.ok {
			t.Errorf("%v: got %q %v %v", tt.span.Attributes, name, value, ok)
		}
	}
}
