package exporter

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// ScopeName is the instrumentation scope of tokentap's spans.
const ScopeName = "github.com/tokentap/tokentap"

// maxCapture bounds the captured request and response content of one span,
// so a 64 MiB request does not become a 64 MiB span.
const maxCapture = 8 << 20

// Recorder records calls and rewards as spans in the store.
type Recorder struct {
	store   *store.Store
	tracer  trace.Tracer
	capture bool
	bufs    sync.Pool // of *[]byte: encoding buffers, reused once a span is committed
	// index finds the earlier call a prompt extends, so that the call is
	// stored as the tokens it adds (delta.go); nil stores every call whole.
	index *promptIndex
	// packed stores token arrays packed, each once (packed.go).
	packed bool
	// legacyHashes stores deltas with the hashes of records before XXH64
	// (tests: those records must still read back).
	legacyHashes bool
}

// RecorderOption configures NewRecorder.
type RecorderOption func(*recorderOptions)

type recorderOptions struct{ wholePrompts, unpacked, legacyHashes bool }

// WithWholePrompts stores every call's whole prompt, as tokentap did before
// it stored prompts as deltas: for comparisons (benchmarks) and tests.
func WithWholePrompts() RecorderOption {
	return func(o *recorderOptions) { o.wholePrompts = true }
}

// WithUnpackedArrays stores token arrays as OTLP arrays, the first choice's
// repeated at span level, as tokentap did before it packed them (packed.go):
// for comparisons (benchmarks) and tests.
func WithUnpackedArrays() RecorderOption {
	return func(o *recorderOptions) { o.unpacked = true }
}

// NewRecorder returns a Recorder writing to st. With capture, request
// messages and output texts are kept on the spans. A call whose prompt
// extends an earlier call's context in its attempt is stored as a
// reference to it plus the tokens it adds, when the store keeps prompt
// parents (store.Store.KeepsPromptParents); reads put the whole prompt back.
func NewRecorder(st *store.Store, capture bool, version string, opts ...RecorderOption) *Recorder {
	var o recorderOptions
	for _, opt := range opts {
		opt(&o)
	}
	tp := sdktrace.NewTracerProvider(
		// Every call is recorded, whatever a parent's sampling flag says.
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", ServiceName))),
		// One event per choice, and token arrays are never truncated (the
		// SDK does not truncate int slices; strings are bounded above).
		sdktrace.WithRawSpanLimits(sdktrace.SpanLimits{
			AttributeValueLengthLimit:   -1,
			AttributeValueDepthLimit:    -1,
			AttributeCountLimit:         256,
			EventCountLimit:             -1,
			AttributePerEventCountLimit: 32,
			LinkCountLimit:              0,
			AttributePerLinkCountLimit:  0,
		}),
	)
	r := &Recorder{
		store:   st,
		tracer:  tp.Tracer(ScopeName, trace.WithInstrumentationVersion(version)),
		capture: capture,
		packed:  !o.unpacked,

		legacyHashes: o.legacyHashes,
	}
	if st != nil && !o.wholePrompts && st.KeepsPromptParents() {
		r.index = newPromptIndex()
	}
	return r
}

// NextSequence allocates the sequence id of a call or reward about to start.
func (r *Recorder) NextSequence(ctx context.Context, key rollout.Key) (uint64, error) {
	return r.store.NextSequence(ctx, key.RolloutID, key.AttemptID)
}

// RecordCall commits a call's span. It returns once the span is durable.
func (r *Recorder) RecordCall(ctx context.Context, c *Call) error {
	name := c.Request.Endpoint.Operation()
	if c.Request.Model != "" {
		name += " " + validUTF8(c.Request.Model)
	}
	parent := context.Background()
	if c.Parent.IsValid() {
		parent = trace.ContextWithRemoteSpanContext(parent, c.Parent)
	}
	attrs, arrays := callAttributes(c, r.capture), callArrays(c, r.packed)
	var plan *deltaPlan
	promptParent := uint64(0)
	if r.index != nil {
		if plan = r.planPrompt(c); plan != nil && plan.level > 0 {
			attrs = plan.apply(attrs, arrays)
			promptParent = plan.match.ref.seq
		}
	}
	_, span := r.tracer.Start(parent, name,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(c.Start),
		trace.WithAttributes(attrs...))
	addChoiceEvents(span, c)
	if c.Status != StatusOK {
		span.SetStatus(codes.Error, validUTF8(c.Error))
	}
	span.End(trace.WithTimestamp(c.End))
	sc := span.SpanContext()
	c.TraceID, c.SpanID = sc.TraceID(), sc.SpanID()
	if err := r.commitRecord(ctx, span, arrays, c.Key, c.Seq, store.KindCall, c.End, promptParent); err != nil {
		return err
	}
	if plan != nil {
		// Only now: a child must never refer to a parent a crash could lose.
		choices := make(map[int][]int64, len(c.Response.Choices))
		for _, ch := range c.Response.Choices {
			if ch.TokenIDs != nil {
				choices[ch.Index] = ch.TokenIDs
			}
		}
		r.index.add(c.Key, c.Seq, plan.level, time.Now(), plan.prompt, plan.blocks, choices, plan.bounds)
	}
	return nil
}

// RecordReward commits a reward span.
func (r *Recorder) RecordReward(ctx context.Context, rw *Reward) error {
	attrs := append(keyAttributes(rw.Key, rw.Seq),
		text(AttrRewardName, rw.Name),
		attribute.Float64(AttrRewardValue, rw.Value))
	if rw.TargetSeq != 0 {
		attrs = append(attrs, attribute.Int64(AttrRewardTargetSeq, int64(rw.TargetSeq)))
		if rw.TargetChoice >= 0 {
			attrs = append(attrs, attribute.Int64(AttrRewardTargetChoice, int64(rw.TargetChoice)))
		}
	}
	_, span := r.tracer.Start(context.Background(), SpanNameAnnotation,
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithTimestamp(rw.Time),
		trace.WithAttributes(attrs...))
	span.End(trace.WithTimestamp(rw.Time))
	return r.commit(ctx, span, nil, rw.Key, rw.Seq, store.KindReward, rw.Time)
}

// commit encodes an ended span as OTLP and appends it to the store.
func (r *Recorder) commit(ctx context.Context, span trace.Span, arrays *tokenArrays, key rollout.Key, seq uint64, kind store.Kind, end time.Time) error {
	return r.commitRecord(ctx, span, arrays, key, seq, kind, end, 0)
}

// commitRecord is commit for a record that may refer to a prompt parent.
func (r *Recorder) commitRecord(ctx context.Context, span trace.Span, arrays *tokenArrays, key rollout.Key, seq uint64, kind store.Kind, end time.Time, promptParent uint64) error {
	ro, ok := span.(sdktrace.ReadOnlySpan)
	if !ok {
		return fmt.Errorf("record %s: the SDK returned a non-recording span", kind)
	}
	out, scratch := r.buffer(), r.buffer()
	defer r.bufs.Put(out)
	defer r.bufs.Put(scratch)
	*out = appendResourceSpans((*out)[:0], scratch, ro, arrays, resourceKey(key))
	// Append copies the data into the store before it returns.
	return r.store.Append(ctx, &store.Record{
		RolloutID: key.RolloutID, AttemptID: key.AttemptID, Seq: seq,
		Kind: kind, Time: end, Data: *out, PromptParent: promptParent,
	})
}

func (r *Recorder) buffer() *[]byte {
	if b, ok := r.bufs.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 64<<10)
	return &b
}

// resourceKey is the rollout key as resource attributes, where Agent
// Lightning's OTLP receiver looks for it first.
func resourceKey(key rollout.Key) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrAGLRolloutID, key.RolloutID),
		attribute.String(AttrAGLAttemptID, key.AttemptID),
	}
}

func keyAttributes(key rollout.Key, seq uint64) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String(AttrRolloutID, key.RolloutID),
		attribute.String(AttrAttemptID, key.AttemptID),
		attribute.Int64(AttrSequenceID, int64(seq)),
		attribute.String(AttrAGLRolloutID, key.RolloutID),
		attribute.String(AttrAGLAttemptID, key.AttemptID),
		attribute.Int64(AttrAGLSequenceID, int64(seq)),
	}
}

func callAttributes(c *Call, capture bool) []attribute.KeyValue {
	req, res := &c.Request, &c.Response
	attrs := keyAttributes(c.Key, c.Seq)
	attrs = append(attrs,
		attribute.String(AttrOperation, req.Endpoint.Operation()),
		attribute.String(AttrProvider, ProviderVLLM),
		text(AttrURLPath, c.Path),
		attribute.Int(AttrHTTPStatus, c.HTTPStatus),
		attribute.String(AttrCallStatus, string(c.Status)),
		attribute.String(AttrDialect, c.DialectName()),
		attribute.Bool(AttrStream, req.Stream),
		attribute.Int(AttrChoiceCount, req.N),
		attribute.Bool(AttrTokenIDsValid, c.Valid),
	)
	if c.Problem != "" {
		attrs = append(attrs, text(AttrTokenIDsProblem, c.Problem))
	}
	if len(c.Checks) > 0 {
		attrs = append(attrs, attribute.StringSlice(AttrTokenIDsChecks, c.Checks))
	}
	if c.ErrorType != "" {
		attrs = append(attrs, text(AttrErrorType, c.ErrorType))
	}
	if req.Model != "" {
		attrs = append(attrs, text(AttrRequestModel, req.Model))
	}
	if req.RequestedModel != "" {
		attrs = append(attrs, text(AttrRequestedModel, req.RequestedModel))
	}
	if req.Temperature != nil {
		attrs = append(attrs, attribute.Float64(AttrTemperature, *req.Temperature))
	}
	if req.TopP != nil {
		attrs = append(attrs, attribute.Float64(AttrTopP, *req.TopP))
	}
	if req.MaxTokens != nil {
		attrs = append(attrs, attribute.Int64(AttrMaxTokens, *req.MaxTokens))
	}
	if req.Seed != nil {
		attrs = append(attrs, attribute.Int64(AttrSeed, *req.Seed))
	}
	if len(req.Forced) > 0 {
		attrs = append(attrs, attribute.StringSlice(AttrForcedParams, req.Forced))
	}
	for _, kv := range [...]struct{ key, value string }{
		{AttrResponseID, res.ResponseID}, {AttrResponseModel, res.Model}, {AttrUpstream, c.Upstream},
		{AttrPolicyVersion, c.PolicyVersion}, {AttrPolicyEnd, c.PolicyVersionEnd},
	} {
		if kv.value != "" {
			attrs = append(attrs, text(kv.key, kv.value))
		}
	}
	if len(res.Choices) > 0 {
		reasons := make([]string, len(res.Choices))
		for i, ch := range res.Choices {
			reasons[i] = ch.FinishReason
		}
		attrs = append(attrs, attribute.StringSlice(AttrFinishReasons, reasons))
	}
	if u := res.Usage; u != nil {
		attrs = append(attrs, attribute.Int64(AttrInputTokens, u.PromptTokens), attribute.Int64(AttrOutputTokens, u.CompletionTokens))
	}
	if !c.FirstToken.IsZero() {
		attrs = append(attrs, attribute.Float64(AttrTimeToFirst, c.FirstToken.Sub(c.Start).Seconds()))
	}
	if capture {
		// No copies: the span is encoded and dropped before the request
		// body goes, and the output messages are a fresh buffer.
		if in := req.Input; len(in) > 0 && len(in) <= maxCapture {
			attrs = append(attrs, text(AttrInputMessages, unsafe.String(&in[0], len(in))))
		}
		if out := outputMessages(c); len(out) > 0 && len(out) <= maxCapture {
			attrs = append(attrs, text(AttrOutputMessages, unsafe.String(&out[0], len(out))))
		}
	}
	return attrs
}

// addChoiceEvents adds one gen_ai.choice event per choice, and one
// tokentap.prompt event per prompt when a completions call had several.
// Their token arrays come with callArrays, in the same order.
func addChoiceEvents(span trace.Span, c *Call) {
	res := &c.Response
	if len(res.Prompts) > 1 {
		for i, p := range res.Prompts {
			if p != nil {
				span.AddEvent(EventPrompt, trace.WithTimestamp(c.End), trace.WithAttributes(attribute.Int(AttrPromptIndex, i)))
			}
		}
	}
	for i := range res.Choices {
		ch := &res.Choices[i]
		attrs := []attribute.KeyValue{
			attribute.Int(AttrChoiceIndex, ch.Index),
			attribute.Int(AttrChoicePromptIndex, ch.PromptIndex),
			text(AttrChoiceFinish, ch.FinishReason),
			text(AttrChoiceText, ch.Text),
		}
		if ch.Reasoning != "" {
			attrs = append(attrs, text(AttrChoiceReasoning, ch.Reasoning))
		}
		if ch.ToolCalls != nil {
			attrs = append(attrs, text(AttrChoiceToolCalls, string(ch.ToolCalls)))
		}
		span.AddEvent(EventChoice, trace.WithTimestamp(c.End), trace.WithAttributes(attrs...))
	}
}

// callArrays gives a call's token arrays for its span and its events, in
// the order addChoiceEvents adds the events. Packed, the span does not
// repeat the first choice's arrays: ExportForm puts them back.
func callArrays(c *Call, packed bool) *tokenArrays {
	res := &c.Response
	a := &tokenArrays{packed: packed}
	if res.PromptTokenIDs != nil {
		a.span = append(a.span, arrayAttr{key: AttrPromptTokenIDs, ints: res.PromptTokenIDs})
	}
	if len(res.Choices) > 0 && !packed {
		c0 := &res.Choices[0]
		if c0.TokenIDs != nil {
			a.span = append(a.span, arrayAttr{key: AttrResponseTokenIDs, ints: c0.TokenIDs})
		}
		if c0.Logprobs != nil {
			a.span = append(a.span, arrayAttr{key: AttrResponseLogprobs, floats: c0.Logprobs, isFloat: true})
		}
	}
	if len(res.Prompts) > 1 {
		for _, p := range res.Prompts {
			if p != nil {
				a.events = append(a.events, []arrayAttr{{key: AttrPromptEventTokens, ints: p}})
			}
		}
	}
	for i := range res.Choices {
		ch := &res.Choices[i]
		var ev []arrayAttr
		if ch.TokenIDs != nil {
			ev = append(ev, arrayAttr{key: AttrChoiceTokenIDs, ints: ch.TokenIDs})
		}
		if ch.Logprobs != nil {
			ev = append(ev, arrayAttr{key: AttrChoiceLogprobs, floats: ch.Logprobs, isFloat: true})
		}
		a.events = append(a.events, ev)
	}
	return a
}

// outputMessages renders the choices as OpenAI assistant messages (chat) or
// texts (completions), a JSON array in choice order.
func outputMessages(c *Call) []byte {
	if len(c.Response.Choices) == 0 {
		return nil
	}
	out := []byte{'['}
	for i, ch := range c.Response.Choices {
		if i > 0 {
			out = append(out, ',')
		}
		if c.Request.Endpoint != tokenids.Chat {
			out = tokenids.AppendJSONString(out, ch.Text)
			continue
		}
		out = append(out, `{"role":"assistant","content":`...)
		if ch.Text == "" && ch.ToolCalls != nil {
			out = append(out, "null"...)
		} else {
			out = tokenids.AppendJSONString(out, ch.Text)
		}
		if ch.Reasoning != "" {
			out = append(out, `,"reasoning":`...)
			out = tokenids.AppendJSONString(out, ch.Reasoning)
		}
		if ch.ToolCalls != nil {
			out = append(out, `,"tool_calls":`...)
			out = append(out, ch.ToolCalls...)
		}
		out = append(out, '}')
	}
	return append(out, ']')
}

// Writable says whether the store takes new records (store.ErrDiskFull
// when it does not).
func (r *Recorder) Writable() error { return r.store.Writable() }

// ErrDiskFull is what Writable returns when the store is out of space.
var ErrDiskFull = store.ErrDiskFull

// ErrAttemptComplete is returned for calls and rewards of a completed
// attempt, and for completing it twice.
var ErrAttemptComplete = store.ErrAttemptComplete

// Completion is what completing an attempt reports.
type Completion struct {
	Calls   int
	LastSeq uint64
}

// Complete marks an attempt complete. The caller makes sure none of its
// calls is still in flight.
func (r *Recorder) Complete(ctx context.Context, key rollout.Key) (Completion, error) {
	sum, err := r.store.Complete(ctx, key.RolloutID, key.AttemptID)
	if err != nil {
		return Completion{}, err
	}
	if r.index != nil {
		r.index.forget(key) // a complete attempt takes no more calls
	}
	return Completion{Calls: sum.Calls, LastSeq: sum.LastSeq}, nil
}

// IsComplete reports whether an attempt was marked complete.
func (r *Recorder) IsComplete(ctx context.Context, key rollout.Key) (bool, error) {
	return r.store.IsComplete(ctx, key.RolloutID, key.AttemptID)
}

// text is a string attribute from a client or the upstream. OTLP strings
// must be UTF-8 (a protobuf decoder refuses anything else), and agents do
// send invalid bytes: they are replaced with U+FFFD.
func text(key, value string) attribute.KeyValue {
	return attribute.String(key, validUTF8(value))
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
