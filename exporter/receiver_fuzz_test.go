package exporter

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/rs/zerolog"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// FuzzReceiver posts arbitrary bodies to the OTLP receiver, as protobuf and
// as JSON: it answers 200 with an ExportTraceServiceResponse or a 4xx, never
// panics or fails inside, and whatever it stored reads back as spans with
// a rollout key and a sequence id.
func FuzzReceiver(f *testing.F) {
	keyed, err := proto.Marshal(&coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
			{TraceId: bytes.Repeat([]byte{1}, 16), SpanId: bytes.Repeat([]byte{2}, 8), Name: "tool",
				Attributes: []*commonpb.KeyValue{strAttr(AttrAGLRolloutID, "rf"), strAttr(AttrAGLAttemptID, "0"), intAttr(AttrSequenceID, 3)}},
			{Name: "bare"},
		}}},
	}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(keyed, false)
	f.Add([]byte(`{"resourceSpans":[{"resource":{"attributes":[{"key":"agentlightning.rollout_id","value":{"stringValue":"rj"}}]},`+
		`"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"agentlightning.annotation",`+
		`"attributes":[{"key":"agentlightning.reward.0.value","value":{"doubleValue":1.0}},{"key":"rollout.sequence_id","value":{"intValue":"7"}}]}]}]}]}`), true)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"bare"}]}]}]}`), true)
	f.Add([]byte("\x0a\x02\x0a\x00"), false)
	f.Add([]byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","attributes":[{"key":"rollout.id","value":{"arrayValue":{}}}]}]}]}]}`), true)
	st := testStore(f)
	rv := NewReceiver(st, 1<<20, zerolog.Nop())
	f.Fuzz(func(t *testing.T, body []byte, asJSON bool) {
		req := httptest.NewRequest(http.MethodPost, "/v1/traces", bytes.NewReader(body))
		req.Header.Set("Content-Type", map[bool]string{false: "application/x-protobuf", true: "application/json"}[asJSON])
		w := httptest.NewRecorder()
		before := st.Cursor()
		rv.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusOK:
			var err error
			if asJSON {
				_, err = decodeJSONResponse(w.Body.Bytes())
			} else {
				err = proto.Unmarshal(w.Body.Bytes(), &coltracepb.ExportTraceServiceResponse{})
			}
			if err != nil {
				t.Fatalf("200 with an undecodable response %q: %v", w.Body.Bytes(), err)
			}
		case w.Code >= 400 && w.Code < 500:
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body.Bytes())
		}
		recs, _, err := st.Scan(context.Background(), before, 1<<20, 1<<30, "", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if _, sp, err := DecodeRecord(rec.Data); err != nil {
				t.Fatalf("stored span does not decode: %v", err)
			} else if seq, ok := SequenceOf(sp); !ok || seq == 0 || rec.RolloutID == "" {
				t.Fatalf("stored span without key or sequence id: %q seq %d", rec.RolloutID, seq)
			}
		}
	})
}
