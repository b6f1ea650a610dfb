package exporter

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
)

// Receiver is an OTLP/HTTP trace receiver (POST /v1/traces) for agents' own
// tracers: Agent Lightning's emit_reward spans, tool spans. A span whose
// span or resource attributes carry a rollout key (span level wins) is
// stored under that rollout, with a sequence id allocated when it has none;
// rewards among them count in the calls and triplets views.
type Receiver struct {
	store   *store.Store
	maxBody int64
	log     zerolog.Logger
}

// NewReceiver returns a receiver storing into st; request bodies (after
// gunzip) are bounded by maxBody.
func NewReceiver(st *store.Store, maxBody int64, log zerolog.Logger) *Receiver {
	return &Receiver{store: st, maxBody: maxBody, log: log}
}

func (rv *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := Protobuf
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/x-protobuf", "application/protobuf", "":
	case "application/json":
		f = JSON
	default:
		rv.fail(w, Protobuf, http.StatusUnsupportedMediaType, codes.InvalidArgument, "unsupported Content-Type "+strconv.Quote(mt)+": send application/x-protobuf or application/json")
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		rv.fail(w, f, http.StatusMethodNotAllowed, codes.Unimplemented, "OTLP/HTTP export takes POST")
		return
	}
	body, err := rv.readBody(r)
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, errTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		rv.fail(w, f, status, codes.InvalidArgument, err.Error())
		return
	}
	if err := rv.store.Writable(); err != nil {
		rv.fail(w, f, http.StatusServiceUnavailable, codes.Unavailable, "tokentap cannot store spans now: "+err.Error())
		return
	}
	req, err := DecodeExportRequest(body, f)
	if err != nil {
		rv.fail(w, f, http.StatusBadRequest, codes.InvalidArgument, "unable to parse OTLP traces: "+err.Error())
		return
	}
	accepted, rejected, reason, err := rv.store1(r.Context(), req)
	if err != nil {
		rv.log.Error().Err(err).Msg("OTLP receiver: store spans")
		rv.fail(w, f, http.StatusServiceUnavailable, codes.Unavailable, "tokentap could not store the spans: "+err.Error())
		return
	}
	if rejected > 0 && accepted == 0 {
		rv.fail(w, f, http.StatusBadRequest, codes.InvalidArgument, fmt.Sprintf("all %d spans rejected: %s", rejected, reason))
		return
	}
	resp := &coltracepb.ExportTraceServiceResponse{}
	if rejected > 0 {
		resp.PartialSuccess = &coltracepb.ExportTracePartialSuccess{
			RejectedSpans: int64(rejected),
			ErrorMessage:  fmt.Sprintf("%d of %d spans rejected: %s", rejected, accepted+rejected, reason),
		}
	}
	out, err := EncodeExportResponse(resp, f)
	if err != nil {
		rv.fail(w, f, http.StatusInternalServerError, codes.Internal, err.Error())
		return
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

var errTooLarge = errors.New("request body too large")

func (rv *Receiver) readBody(r *http.Request) ([]byte, error) {
	var src io.Reader = r.Body
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(io.LimitReader(r.Body, rv.maxBody+1))
		if err != nil {
			return nil, fmt.Errorf("gzip body: %w", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q", enc)
	}
	// Bound what is decompressed, not only what is sent.
	body, err := io.ReadAll(io.LimitReader(src, rv.maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", err)
	}
	if int64(len(body)) > rv.maxBody {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, rv.maxBody)
	}
	return body, nil
}

// fail answers with a google.rpc.Status, as OTLP/HTTP prescribes.
func (rv *Receiver) fail(w http.ResponseWriter, f Format, httpStatus int, code codes.Code, msg string) {
	st := status.New(code, msg).Proto()
	var out []byte
	if f == JSON {
		out, _ = protojson.Marshal(st)
	} else {
		out, _ = proto.Marshal(st)
	}
	w.Header().Set("Content-Type", f.ContentType())
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(httpStatus)
	w.Write(out)
}

// spanKey is the rollout key a span carries.
type spanKey struct {
	rollout.Key
	seq uint64
}

// keyOf reads the key from attributes, Agent Lightning's names first.
func keyOf(attrs []*commonpb.KeyValue, into *spanKey) {
	a := index(attrs)
	for _, k := range []string{AttrAGLRolloutID, AttrRolloutID} {
		if v := a.str(k); v != "" {
			into.RolloutID = v
			break
		}
	}
	for _, k := range []string{AttrAGLAttemptID, AttrAttemptID} {
		if v := a.str(k); v != "" {
			into.AttemptID = v
			break
		}
	}
	for _, k := range []string{AttrAGLSequenceID, AttrSequenceID} {
		if v, ok := a.int(k); ok && v > 0 {
			into.seq = uint64(v)
			break
		}
	}
}

// store1 stores the keyed spans of a request, one record each, in one
// commit. It returns how many spans it accepted and rejected, and why.
func (rv *Receiver) store1(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (accepted, rejected int, reason string, err error) {
	var recs []*store.Record
	reasons := map[string]int{}
	for _, rs := range req.ResourceSpans {
		var resKey spanKey
		if rs.Resource != nil {
			keyOf(rs.Resource.Attributes, &resKey)
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				k := resKey
				keyOf(sp.Attributes, &k)
				rec, why, err := rv.record(ctx, rs, ss, sp, k)
				if err != nil {
					return 0, 0, "", err
				}
				if why != "" {
					rejected++
					reasons[why]++
					continue
				}
				recs = append(recs, rec)
			}
		}
	}
	if err := rv.store.Append(context.WithoutCancel(ctx), recs...); err != nil {
		return 0, 0, "", err
	}
	parts := make([]string, 0, len(reasons))
	for why, n := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", n, why))
	}
	return len(recs), rejected, strings.Join(parts, "; "), nil
}

// record turns one received span into a record, or says why it is refused.
func (rv *Receiver) record(ctx context.Context, rs *tracepb.ResourceSpans, ss *tracepb.ScopeSpans, sp *tracepb.Span, k spanKey) (*store.Record, string, error) {
	if k.RolloutID == "" || k.AttemptID == "" {
		return nil, "without agentlightning.rollout_id and agentlightning.attempt_id (span or resource attributes)", nil
	}
	if rollout.ValidateID("rollout id", k.RolloutID) != nil || rollout.ValidateID("attempt id", k.AttemptID) != nil {
		return nil, "with an invalid rollout or attempt id", nil
	}
	done, err := rv.store.IsComplete(ctx, k.RolloutID, k.AttemptID)
	if err != nil {
		return nil, "", err
	}
	if done {
		return nil, "for an attempt already complete (flush the tracer before calling complete)", nil
	}
	if k.seq > 0 {
		err = rv.store.ObserveSequence(ctx, k.RolloutID, k.seq)
	} else {
		k.seq, err = rv.store.NextSequence(ctx, k.RolloutID, k.AttemptID)
	}
	if errors.Is(err, store.ErrAttemptComplete) {
		return nil, "for an attempt already complete (flush the tracer before calling complete)", nil
	}
	if err != nil {
		return nil, "", err
	}

	span := proto.Clone(sp).(*tracepb.Span)
	span.Attributes = setAttrs(span.Attributes,
		intAttr(AttrSequenceID, int64(k.seq)), intAttr(AttrAGLSequenceID, int64(k.seq)),
		strAttr(AttrRolloutID, k.RolloutID), strAttr(AttrAttemptID, k.AttemptID))
	res := &resourcepb.Resource{}
	if rs.Resource != nil {
		res = proto.Clone(rs.Resource).(*resourcepb.Resource)
	}
	res.Attributes = setAttrs(res.Attributes, strAttr(AttrAGLRolloutID, k.RolloutID), strAttr(AttrAGLAttemptID, k.AttemptID))
	data, err := proto.Marshal(&tracepb.ResourceSpans{
		Resource: res, SchemaUrl: rs.SchemaUrl,
		ScopeSpans: []*tracepb.ScopeSpans{{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl, Spans: []*tracepb.Span{span}}},
	})
	if err != nil {
		return nil, "", fmt.Errorf("encode received span: %w", err)
	}
	kind := store.KindSpan
	if _, _, ok := RewardFromSpan(span); ok {
		kind = store.KindReward
	}
	end := time.Unix(0, int64(span.EndTimeUnixNano))
	if span.EndTimeUnixNano == 0 {
		end = time.Now()
	}
	return &store.Record{RolloutID: k.RolloutID, AttemptID: k.AttemptID, Seq: k.seq, Kind: kind, Time: end, Data: data}, "", nil
}

// setAttrs sets attributes, replacing those of the same key.
func setAttrs(attrs []*commonpb.KeyValue, set ...*commonpb.KeyValue) []*commonpb.KeyValue {
	out := attrs[:0:0]
	for _, kv := range attrs {
		keep := true
		for _, s := range set {
			if kv.Key == s.Key {
				keep = false
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func intAttr(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}
