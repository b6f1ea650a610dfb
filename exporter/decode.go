package exporter

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/trace"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// DecodeRecord reads a stored record's data: one ResourceSpans holding one
// span.
func DecodeRecord(data []byte) (*tracepb.ResourceSpans, *tracepb.Span, error) {
	rs := &tracepb.ResourceSpans{}
	if err := proto.Unmarshal(data, rs); err != nil {
		return nil, nil, fmt.Errorf("decode stored span: %w", err)
	}
	for _, ss := range rs.ScopeSpans {
		for _, sp := range ss.Spans {
			return rs, sp, nil
		}
	}
	return nil, nil, fmt.Errorf("decode stored span: no span in record")
}

// attrs indexes a span's or event's attributes by key.
type attrs map[string]*commonpb.AnyValue

func index(kvs []*commonpb.KeyValue) attrs {
	m := make(attrs, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

func (a attrs) str(key string) string {
	if v := a[key]; v != nil {
		switch x := v.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			return x.StringValue
		case *commonpb.AnyValue_IntValue:
			return strconv.FormatInt(x.IntValue, 10)
		}
	}
	return ""
}

func (a attrs) int(key string) (int64, bool) {
	if v := a[key]; v != nil {
		switch x := v.Value.(type) {
		case *commonpb.AnyValue_IntValue:
			return x.IntValue, true
		case *commonpb.AnyValue_DoubleValue:
			return int64(x.DoubleValue), true
		case *commonpb.AnyValue_StringValue:
			n, err := strconv.ParseInt(x.StringValue, 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

func (a attrs) float(key string) (float64, bool) {
	if v := a[key]; v != nil {
		switch x := v.Value.(type) {
		case *commonpb.AnyValue_DoubleValue:
			return x.DoubleValue, true
		case *commonpb.AnyValue_IntValue:
			return float64(x.IntValue), true
		case *commonpb.AnyValue_StringValue:
			f, err := strconv.ParseFloat(x.StringValue, 64)
			return f, err == nil
		}
	}
	return 0, false
}

func (a attrs) bool(key string) bool {
	if v := a[key]; v != nil {
		if x, ok := v.Value.(*commonpb.AnyValue_BoolValue); ok {
			return x.BoolValue
		}
	}
	return false
}

// ints reads an int array; nil when absent.
func (a attrs) ints(key string) []int64 {
	arr := a.array(key)
	if arr == nil {
		return nil
	}
	out := make([]int64, 0, len(arr))
	for _, v := range arr {
		out = append(out, v.GetIntValue())
	}
	return out
}

func (a attrs) floats(key string) []float64 {
	arr := a.array(key)
	if arr == nil {
		return nil
	}
	out := make([]float64, 0, len(arr))
	for _, v := range arr {
		if d, ok := v.Value.(*commonpb.AnyValue_DoubleValue); ok {
			out = append(out, d.DoubleValue)
		} else {
			out = append(out, float64(v.GetIntValue()))
		}
	}
	return out
}

func (a attrs) strs(key string) []string {
	arr := a.array(key)
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		out = append(out, v.GetStringValue())
	}
	return out
}

func (a attrs) array(key string) []*commonpb.AnyValue {
	if v := a[key]; v != nil {
		if x, ok := v.Value.(*commonpb.AnyValue_ArrayValue); ok && x.ArrayValue != nil {
			if x.ArrayValue.Values == nil {
				return []*commonpb.AnyValue{}
			}
			return x.ArrayValue.Values
		}
	}
	return nil
}

// IsCall reports whether a span is a traced LLM call of tokentap's.
func IsCall(sp *tracepb.Span) bool {
	for _, kv := range sp.Attributes {
		if kv.Key == AttrCallStatus {
			return true
		}
	}
	return false
}

// CallFromSpan reads a call back from its span.
func CallFromSpan(sp *tracepb.Span) *Call {
	a := index(sp.Attributes)
	c := &Call{
		Key:              rollout.Key{RolloutID: a.str(AttrRolloutID), AttemptID: a.str(AttrAttemptID)},
		Path:             a.str(AttrURLPath),
		Status:           Status(a.str(AttrCallStatus)),
		ErrorType:        a.str(AttrErrorType),
		Start:            time.Unix(0, int64(sp.StartTimeUnixNano)).UTC(),
		End:              time.Unix(0, int64(sp.EndTimeUnixNano)).UTC(),
		Valid:            a.bool(AttrTokenIDsValid),
		Problem:          a.str(AttrTokenIDsProblem),
		Upstream:         a.str(AttrUpstream),
		PolicyVersion:    a.str(AttrPolicyVersion),
		PolicyVersionEnd: a.str(AttrPolicyEnd),
	}
	copy(c.TraceID[:], sp.TraceId)
	copy(c.SpanID[:], sp.SpanId)
	if sp.Status != nil && sp.Status.Code == tracepb.Status_STATUS_CODE_ERROR {
		c.Error = sp.Status.Message
	}
	if seq, ok := a.int(AttrSequenceID); ok {
		c.Seq = uint64(seq)
	}
	if st, ok := a.int(AttrHTTPStatus); ok {
		c.HTTPStatus = int(st)
	}
	if ttft, ok := a.float(AttrTimeToFirst); ok {
		c.FirstToken = c.Start.Add(time.Duration(ttft * float64(time.Second)))
	}
	if a[AttrTokenIDsChecks] != nil {
		c.Checks = a.strs(AttrTokenIDsChecks) // nil: recorded before checks were
	}
	if in := a.str(AttrInputMessages); in != "" {
		c.InputMessages = []byte(in)
	}
	if out := a.str(AttrOutputMessages); out != "" {
		c.OutputMessages = []byte(out)
	}

	req := &c.Request
	req.Endpoint = tokenids.Chat
	if a.str(AttrOperation) == tokenids.Completions.Operation() {
		req.Endpoint = tokenids.Completions
	}
	c.Dialect = a.str(AttrDialect)
	if c.Dialect == "" {
		c.Dialect = EndpointDialect(req.Endpoint)
	}
	req.Model = a.str(AttrRequestModel)
	req.RequestedModel = a.str(AttrRequestedModel)
	req.Stream = a.bool(AttrStream)
	req.N = 1
	if n, ok := a.int(AttrChoiceCount); ok {
		req.N = int(n)
	}
	if v, ok := a.float(AttrTemperature); ok {
		req.Temperature = &v
	}
	if v, ok := a.float(AttrTopP); ok {
		req.TopP = &v
	}
	if v, ok := a.int(AttrMaxTokens); ok {
		req.MaxTokens = &v
	}
	if v, ok := a.int(AttrSeed); ok {
		req.Seed = &v
	}
	if forced := a.strs(AttrForcedParams); len(forced) > 0 {
		req.Forced = forced
	}

	res := &c.Response
	res.ResponseID = a.str(AttrResponseID)
	res.Model = a.str(AttrResponseModel)
	res.PromptTokenIDs = a.ints(AttrPromptTokenIDs)
	if in, ok := a.int(AttrInputTokens); ok {
		out, _ := a.int(AttrOutputTokens)
		res.Usage = &tokenids.Usage{PromptTokens: in, CompletionTokens: out, TotalTokens: in + out}
	}
	for _, ev := range sp.Events {
		e := index(ev.Attributes)
		switch ev.Name {
		case EventChoice:
			idx, _ := e.int(AttrChoiceIndex)
			pidx, _ := e.int(AttrChoicePromptIndex)
			ch := tokenids.Choice{
				Index: int(idx), PromptIndex: int(pidx),
				TokenIDs: e.ints(AttrChoiceTokenIDs), Logprobs: e.floats(AttrChoiceLogprobs),
				FinishReason: e.str(AttrChoiceFinish), Text: e.str(AttrChoiceText),
				Reasoning: e.str(AttrChoiceReasoning),
			}
			if tc := e.str(AttrChoiceToolCalls); tc != "" {
				ch.ToolCalls = []byte(tc)
			}
			res.Choices = append(res.Choices, ch)
		case EventPrompt:
			i, _ := e.int(AttrPromptIndex)
			for int(i) >= len(res.Prompts) && i < 1<<16 {
				res.Prompts = append(res.Prompts, nil)
			}
			if i >= 0 && int(i) < len(res.Prompts) {
				res.Prompts[i] = e.ints(AttrPromptEventTokens)
			}
		}
	}
	sort.SliceStable(res.Choices, func(i, j int) bool { return res.Choices[i].Index < res.Choices[j].Index })
	if res.Prompts == nil && res.PromptTokenIDs != nil {
		res.Prompts = [][]int64{res.PromptTokenIDs}
	}
	req.Prompts = max(len(res.Prompts), 1)
	return c
}

// RewardFromSpan reads a reward span: Agent Lightning's
// agentlightning.reward.0.value (with .name), or its v0.2 form, an
// agentlightning.annotation span with a "reward" attribute. ok is false
// for spans that carry no reward.
func RewardFromSpan(sp *tracepb.Span) (name string, value float64, ok bool) {
	a := index(sp.Attributes)
	if v, found := a.float(AttrRewardValue); found {
		name = a.str(AttrRewardName)
		if name == "" {
			name = "primary"
		}
		return name, v, true
	}
	if sp.Name == SpanNameAnnotation {
		if v, found := a.float("reward"); found {
			return "primary", v, true
		}
	}
	return "", 0, false
}

// RewardTarget reads the call a reward span was posted for: its sequence
// id (0 when the reward follows the matching rule) and choice (-1: all).
func RewardTarget(sp *tracepb.Span) (seq uint64, choice int) {
	a := index(sp.Attributes)
	v, ok := a.int(AttrRewardTargetSeq)
	if !ok || v <= 0 {
		return 0, -1
	}
	choice = -1
	if c, ok := a.int(AttrRewardTargetChoice); ok && c >= 0 && c <= math.MaxInt32 {
		choice = int(c)
	}
	return uint64(v), choice
}

// SequenceOf reads the sequence id a span carries, under tokentap's or
// Agent Lightning's key.
func SequenceOf(sp *tracepb.Span) (uint64, bool) {
	a := index(sp.Attributes)
	for _, k := range []string{AttrSequenceID, AttrAGLSequenceID} {
		if v, ok := a.int(k); ok && v > 0 {
			return uint64(v), true
		}
	}
	return 0, false
}

// SpanIDs returns a span's ids in the OTel Go types.
func SpanIDs(sp *tracepb.Span) (trace.TraceID, trace.SpanID) {
	var t trace.TraceID
	var s trace.SpanID
	copy(t[:], sp.TraceId)
	copy(s[:], sp.SpanId)
	return t, s
}
