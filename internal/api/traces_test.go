package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

func index(kvs []*commonpb.KeyValue) map[string]string {
	m := map[string]string{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value.GetStringValue()
	}
	return m
}

func pull(t *testing.T, url string, json bool) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if json {
		req.Header.Set("Accept", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestPullTraces(t *testing.T) {
	srv, rec, _ := setup(t, "")
	ctx := context.Background()
	keys := []rollout.Key{{RolloutID: "r1", AttemptID: "0"}, {RolloutID: "r1", AttemptID: "0"}, {RolloutID: "r2", AttemptID: "0"}, {RolloutID: "r1", AttemptID: "1"}}
	for i, k := range keys {
		c := call(k, uint64(i+1), true, exporter.StatusOK, []int64{151644, int64(i)}, tokenids.Choice{TokenIDs: []int64{40, 1079, 151645}})
		if err := rec.RecordCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	// Protobuf: TracesData grouped per rollout/attempt, in commit order.
	status, h, body := pull(t, srv.URL+"/api/v1/traces", false)
	if status != 200 || h.Get("Content-Type") != "application/x-protobuf" || h.Get("X-Next-Cursor") != "4" {
		t.Fatalf("%d %v", status, h)
	}
	var td tracepb.TracesData
	if err := proto.Unmarshal(body, &td); err != nil {
		t.Fatal(err)
	}
	var groups []string
	for _, rs := range td.ResourceSpans {
		a := index(rs.Resource.Attributes)
		spans := 0
		for _, ss := range rs.ScopeSpans {
			spans += len(ss.Spans)
		}
		groups = append(groups, a[exporter.AttrAGLRolloutID]+"/"+a[exporter.AttrAGLAttemptID]+":"+strconv.Itoa(spans))
	}
	if strings.Join(groups, " ") != "r1/0:2 r2/0:1 r1/1:1" {
		t.Errorf("groups %v", groups)
	}

	// Incremental: after a cursor, a limit, the next cursor.
	_, h, body = pull(t, srv.URL+"/api/v1/traces?after=1&limit=2", false)
	proto.Unmarshal(body, &td)
	if h.Get("X-Next-Cursor") != "3" || len(td.ResourceSpans) != 2 {
		t.Errorf("incremental: next %s, %d groups", h.Get("X-Next-Cursor"), len(td.ResourceSpans))
	}

	// OTLP/JSON: hex ids, int64 as strings, the token IDs and the keys.
	status, h, body = pull(t, srv.URL+"/api/v1/traces?rollout_id=r1&attempt_id=latest", true)
	if status != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %v %s", status, h, body)
	}
	var doc struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct {
					TraceID    string `json:"traceId"`
					SpanID     string `json:"spanId"`
					Start      string `json:"startTimeUnixNano"`
					Attributes []struct {
						Key   string `json:"key"`
						Value struct {
							IntValue   string `json:"intValue"`
							ArrayValue struct {
								Values []struct {
									IntValue string `json:"intValue"`
								} `json:"values"`
							} `json:"arrayValue"`
						} `json:"value"`
					} `json:"attributes"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.ResourceSpans) != 1 {
		t.Fatalf("latest attempt of r1: %s", body)
	}
	sp := doc.ResourceSpans[0].ScopeSpans[0].Spans[0]
	if len(sp.TraceID) != 32 || len(sp.SpanID) != 16 || sp.Start == "" {
		t.Errorf("ids %q %q start %q", sp.TraceID, sp.SpanID, sp.Start)
	}
	found := map[string]bool{}
	for _, a := range sp.Attributes {
		found[a.Key] = true
		if a.Key == exporter.AttrResponseTokenIDs && (len(a.Value.ArrayValue.Values) != 3 || a.Value.ArrayValue.Values[0].IntValue != "40") {
			t.Errorf("response_token_ids = %+v", a.Value)
		}
		if a.Key == exporter.AttrSequenceID && a.Value.IntValue != "4" {
			t.Errorf("sequence id %q", a.Value.IntValue)
		}
	}
	for _, k := range []string{exporter.AttrPromptTokenIDs, exporter.AttrResponseTokenIDs, exporter.AttrAGLRolloutID, exporter.AttrAGLAttemptID, exporter.AttrAGLSequenceID} {
		if !found[k] {
			t.Errorf("span lacks %s", k)
		}
	}

	for path, want := range map[string]int{
		"/api/v1/traces?attempt_id=0":                      400,
		"/api/v1/traces?after=-1":                          400,
		"/api/v1/traces?limit=0":                           400,
		"/api/v1/traces?wait=2h":                           400,
		"/api/v1/traces?rollout_id=bad%20id":               400,
		"/api/v1/traces?rollout_id=nope&attempt_id=latest": 404,
	} {
		if status, _, _ := pull(t, srv.URL+path, false); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}
}

// A trainer tails the store: a pull with wait returns as soon as a record
// is committed after its cursor.
func TestPullTracesWait(t *testing.T) {
	srv, rec, _ := setup(t, "")
	done := make(chan http.Header)
	go func() {
		_, h, _ := pull(t, srv.URL+"/api/v1/traces?after=0&wait=30s", false)
		done <- h
	}()
	time.Sleep(50 * time.Millisecond)
	c := call(rollout.Key{RolloutID: "w", AttemptID: "0"}, 1, true, exporter.StatusOK, []int64{1}, tokenids.Choice{TokenIDs: []int64{2}})
	if err := rec.RecordCall(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	select {
	case h := <-done:
		if h.Get("X-Next-Cursor") != "1" {
			t.Errorf("next cursor %q", h.Get("X-Next-Cursor"))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting pull did not return after a commit")
	}
	// Nothing new: an empty answer once wait passes, same cursor.
	_, h, body := pull(t, srv.URL+"/api/v1/traces?after=1&wait=100ms", false)
	if h.Get("X-Next-Cursor") != "1" || len(body) != 0 {
		t.Errorf("empty tail: next %s, %d bytes", h.Get("X-Next-Cursor"), len(body))
	}
}
