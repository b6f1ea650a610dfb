package exporter

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/store"
)

func receiverServer(t *testing.T) (*httptest.Server, *store.Store) {
	t.Helper()
	st := testStore(t)
	srv := httptest.NewServer(NewReceiver(st, 1<<20, zerolog.Nop()))
	t.Cleanup(srv.Close)
	return srv, st
}

// agentTracer is an agent's own OTel SDK exporting to tokentap with the
// official OTLP/HTTP exporter (protobuf, gzip).
func agentTracer(t *testing.T, url string, res ...attribute.KeyValue) *sdktrace.TracerProvider {
	t.Helper()
	exp, err := otlptracehttp.New(context.Background(),
		otlptracehttp.WithEndpointURL(url+"/v1/traces"),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression),
		otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(append([]attribute.KeyValue{attribute.String("service.name", "agent")}, res...)...)))
}

func TestReceiverWithOfficialExporter(t *testing.T) {
	srv, st := receiverServer(t)
	ctx := context.Background()
	// The rollout key on the resource, as Agent Lightning's tracer sets it.
	tp := agentTracer(t, srv.URL, attribute.String(AttrAGLRolloutID, "r1"), attribute.String(AttrAGLAttemptID, "a1"))
	tr := tp.Tracer("agent")
	_, tool := tr.Start(ctx, "tool.search")
	tool.End()
	// emit_reward: an annotation span; its span-level key wins over the resource's.
	_, reward := tr.Start(ctx, SpanNameAnnotation, trace.WithAttributes(
		attribute.Float64(AttrRewardValue, 0.75), attribute.String(AttrRewardName, "primary"),
		attribute.String(AttrAGLAttemptID, "a2")))
	reward.End()
	// An explicit sequence id is kept, and moves the counter.
	_, explicit := tr.Start(ctx, "explicit", trace.WithAttributes(attribute.Int(AttrAGLSequenceID, 40)))
	explicit.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export: %v", err)
	}

	recs, err := st.Records(ctx, "r1", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("%d records", len(recs))
	}
	got := map[string]store.Record{}
	for _, r := range recs {
		_, sp, err := DecodeRecord(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		got[sp.Name] = r
		if seq, _ := SequenceOf(sp); seq != r.Seq {
			t.Errorf("%s: span carries seq %d, record %d", sp.Name, seq, r.Seq)
		}
	}
	if r := got["tool.search"]; r.AttemptID != "a1" || r.Seq != 1 || r.Kind != store.KindSpan {
		t.Errorf("tool span stored as %+v", r)
	}
	if r := got[SpanNameAnnotation]; r.AttemptID != "a2" || r.Seq != 2 || r.Kind != store.KindReward {
		t.Errorf("reward stored as %+v", r)
	}
	if r := got["explicit"]; r.Seq != 40 {
		t.Errorf("explicit sequence stored as %d", r.Seq)
	}
	if seq, _ := st.NextSequence(ctx, "r1", "a1"); seq != 41 {
		t.Errorf("next sequence after an explicit 40: %d", seq)
	}
	sum, _ := st.Rollout(ctx, "r1")
	if sum.Rewards != 1 || sum.Spans != 2 {
		t.Errorf("summary %+v", sum)
	}
}

func TestReceiverRejectsSpansWithoutKey(t *testing.T) {
	srv, st := receiverServer(t)
	ctx := context.Background()

	// Some keyed, some not: 200 with a partial success.
	tp := agentTracer(t, srv.URL)
	tr := tp.Tracer("agent")
	_, keyed := tr.Start(ctx, "keyed", trace.WithAttributes(attribute.String(AttrAGLRolloutID, "r"), attribute.String(AttrAGLAttemptID, "0")))
	keyed.End()
	_, bare := tr.Start(ctx, "bare")
	bare.End()
	tp.ForceFlush(ctx)
	if recs, _ := st.Records(ctx, "r", "0"); len(recs) != 1 {
		t.Errorf("keyed span not stored: %d", len(recs))
	}

	// Raw: a request of keyless spans only gets 400 with a Status.
	body := exportBody(t, "")
	resp, err := http.Post(srv.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st1 status.Status
	if resp.StatusCode != 400 || proto.Unmarshal(out, &st1) != nil || !strings.Contains(st1.Message, "rollout_id") {
		t.Errorf("keyless: %d %q", resp.StatusCode, st1.Message)
	}

	// A mixed raw request: the partial success says how many and why.
	body = exportBody(t, "r9")
	resp, _ = http.Post(srv.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	out, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var er coltracepb.ExportTraceServiceResponse
	if resp.StatusCode != 200 || proto.Unmarshal(out, &er) != nil || er.PartialSuccess.GetRejectedSpans() != 1 {
		t.Errorf("mixed: %d %v", resp.StatusCode, &er)
	}
}

// exportBody is a request with one keyless span and, when rid is set, one
// span keyed to rid.
func exportBody(t *testing.T, rid string) []byte {
	t.Helper()
	span := func(name string, attrs ...*commonpb.KeyValue) *tracepb.Span {
		return &tracepb.Span{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: []byte(name + "12345678")[:8], Name: name, Attributes: attrs}
	}
	spans := []*tracepb.Span{span("bare")}
	if rid != "" {
		spans = append(spans, span("keyed", strAttr(AttrAGLRolloutID, rid), strAttr(AttrAGLAttemptID, "0")))
	}
	req := &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReceiverJSONAndGzip(t *testing.T) {
	srv, st := receiverServer(t)
	json := `{"resourceSpans":[{"resource":{"attributes":[{"key":"agentlightning.rollout_id","value":{"stringValue":"rj"}},{"key":"agentlightning.attempt_id","value":{"stringValue":"0"}}]},` +
		`"scopeSpans":[{"scope":{"name":"agl"},"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"agentlightning.annotation","kind":1,` +
		`"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"agentlightning.reward.0.value","value":{"doubleValue":1.0}}]}]}]}]}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(json))
	zw.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/traces", &gz)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || strings.Contains(string(out), "rejected") {
		t.Errorf("JSON export: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), out)
	}
	recs, _ := st.Records(context.Background(), "rj", "0")
	if len(recs) != 1 || recs[0].Kind != store.KindReward {
		t.Fatalf("stored %+v", recs)
	}
	_, sp, _ := DecodeRecord(recs[0].Data)
	if tid, _ := SpanIDs(sp); tid.String() != "5b8efff798038103d269b633813fc60c" {
		t.Errorf("hex trace id read as %s", tid)
	}
}

func TestReceiverBadInput(t *testing.T) {
	srv, _ := receiverServer(t)
	big := bytes.Repeat([]byte{0}, 2<<20)
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(big)
	zw.Close()
	for _, tc := range []struct {
		ctype, encoding string
		body            []byte
		want            int
	}{
		{"application/x-protobuf", "", []byte("\xff\xff not protobuf"), 400},
		{"application/json", "", []byte(`{"resourceSpans":[`), 400},
		{"text/plain", "", []byte("x"), 415},
		{"application/x-protobuf", "gzip", []byte("not gzip"), 400},
		{"application/x-protobuf", "br", []byte("x"), 400},
		{"application/x-protobuf", "gzip", bomb.Bytes(), 413},
		{"application/x-protobuf", "", big, 413},
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/traces", bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.ctype, tc.encoding, resp.StatusCode, tc.want)
		}
	}
	// An empty request is a valid export of nothing.
	resp, _ := http.Post(srv.URL+"/v1/traces", "application/x-protobuf", nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("empty export: %d", resp.StatusCode)
	}
}

func TestReceiverRefusesCompletedAttempt(t *testing.T) {
	srv, st := receiverServer(t)
	if _, err := st.Complete(context.Background(), "done", "0"); err != nil {
		t.Fatal(err)
	}
	body := exportBody(t, "done")
	resp, _ := http.Post(srv.URL+"/v1/traces", "application/x-protobuf", bytes.NewReader(body))
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var st1 status.Status
	proto.Unmarshal(out, &st1)
	if resp.StatusCode != 400 || !strings.Contains(st1.Message, "complete") {
		t.Errorf("%d %q", resp.StatusCode, st1.Message)
	}
}
