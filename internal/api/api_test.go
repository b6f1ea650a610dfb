package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

func setup(t *testing.T, token string) (*httptest.Server, *exporter.Recorder, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(New(Config{Store: st, AdminToken: token, Logger: zerolog.Nop()}))
	t.Cleanup(srv.Close)
	return srv, exporter.NewRecorder(st, true, "test"), st
}

func get(t *testing.T, url string, header ...string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func call(key rollout.Key, seq uint64, valid bool, status exporter.Status, prompt []int64, choices ...tokenids.Choice) *exporter.Call {
	start := time.Date(2026, 11, 22, 10, 0, 0, int(seq), time.UTC)
	return &exporter.Call{
		Key: key, Seq: seq, Path: "/v1/chat/completions",
		Request:  tokenids.Request{Endpoint: tokenids.Chat, Model: "Qwen/Qwen3-8B", Stream: true, N: len(choices), Prompts: 1},
		Response: tokenids.Result{PromptTokenIDs: prompt, Prompts: [][]int64{prompt}, Choices: choices, Usage: &tokenids.Usage{PromptTokens: int64(len(prompt)), CompletionTokens: 3}},
		Status:   status, HTTPStatus: 200, Start: start, End: start.Add(time.Second), Valid: valid,
	}
}

func TestCallsAndTriplets(t *testing.T) {
	srv, rec, _ := setup(t, "")
	ctx := context.Background()
	key := rollout.Key{RolloutID: "r7", AttemptID: "0"}
	c1 := call(key, 1, true, exporter.StatusOK, []int64{151644, 8948},
		tokenids.Choice{Index: 0, TokenIDs: []int64{40, 1079, 151645}, Logprobs: []float64{-0.1, -0.02, -0.0001}, FinishReason: "stop", Text: "I am"})
	c1.Checks = []string{"ids_present", "choice_count", "prompt_count", "completion_count"}
	c2 := call(key, 2, false, exporter.StatusError, nil)
	c2.HTTPStatus, c2.Error, c2.Problem = 400, "bad", "call error"
	c2.Path, c2.Dialect = "/v1/messages", exporter.DialectAnthropicMessages // a translated call
	for _, c := range []*exporter.Call{c1, c2} {
		if err := rec.RecordCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.RecordReward(ctx, &exporter.Reward{Key: key, Seq: 3, Name: "primary", Value: 1, Time: time.Now()}); err != nil {
		t.Fatal(err)
	}
	// A later attempt makes "latest" point elsewhere.
	if err := rec.RecordCall(ctx, call(rollout.Key{RolloutID: "r7", AttemptID: "1"}, 4, true, exporter.StatusOK, []int64{5}, tokenids.Choice{TokenIDs: []int64{6}})); err != nil {
		t.Fatal(err)
	}

	status, body := get(t, srv.URL+"/api/v1/rollouts/r7/attempts/0/calls")
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var calls map[string]any
	if err := json.Unmarshal(body, &calls); err != nil {
		t.Fatal(err)
	}
	first := calls["calls"].([]any)[0].(map[string]any)
	// Every key of DESIGN §5's example is there.
	for _, k := range []string{"sequence_id", "trace_id", "span_id", "operation", "dialect", "path", "model", "stream", "status", "http_status", "error", "start_time", "end_time", "prompt_token_ids", "choices", "usage", "token_ids_valid", "token_ids_problem", "token_ids_checks"} {
		if _, ok := first[k]; !ok {
			t.Errorf("calls view lacks %q", k)
		}
	}
	choice := first["choices"].([]any)[0].(map[string]any)
	for _, k := range []string{"index", "prompt_index", "token_ids", "logprobs", "finish_reason", "text"} {
		if _, ok := choice[k]; !ok {
			t.Errorf("choice lacks %q", k)
		}
	}
	if first["error"] != nil || first["token_ids_problem"] != nil || first["status"] != "ok" || len(first["trace_id"].(string)) != 32 || len(first["span_id"].(string)) != 16 {
		t.Errorf("first call = %v", first)
	}
	if got := first["token_ids_checks"]; !reflect.DeepEqual(got, []any{"ids_present", "choice_count", "prompt_count", "completion_count"}) {
		t.Errorf("token_ids_checks = %v", got)
	}
	if calls["complete"] != false || !reflect.DeepEqual(calls["rewards"], []any{map[string]any{"sequence_id": 3.0, "name": "primary", "value": 1.0}}) {
		t.Errorf("view = %v", calls)
	}
	second := calls["calls"].([]any)[1].(map[string]any)
	if first["dialect"] != "openai.chat" || first["operation"] != "chat" {
		t.Errorf("first call: dialect %v operation %v, want openai.chat chat", first["dialect"], first["operation"])
	}
	if second["dialect"] != "anthropic.messages" || second["operation"] != "chat" || second["path"] != "/v1/messages" {
		t.Errorf("second call: dialect %v operation %v path %v, want anthropic.messages chat /v1/messages", second["dialect"], second["operation"], second["path"])
	}
	if second["error"] != "bad" || second["status"] != "error" || second["http_status"] != 400.0 {
		t.Errorf("second call = %v", second)
	}

	_, body = get(t, srv.URL+"/api/v1/rollouts/r7/attempts/0/triplets")
	var trip struct {
		RolloutID, AttemptID string
		Triplets             []struct {
			SequenceID       uint64    `json:"sequence_id"`
			ChoiceIndex      int       `json:"choice_index"`
			PromptTokenIDs   []int64   `json:"prompt_token_ids"`
			ResponseTokenIDs []int64   `json:"response_token_ids"`
			ResponseLogprobs []float64 `json:"response_logprobs"`
			Reward           *float64  `json:"reward"`
		}
	}
	if err := json.Unmarshal(body, &trip); err != nil {
		t.Fatal(err)
	}
	if len(trip.Triplets) != 1 || trip.Triplets[0].SequenceID != 1 || *trip.Triplets[0].Reward != 1 ||
		!reflect.DeepEqual(trip.Triplets[0].ResponseTokenIDs, []int64{40, 1079, 151645}) || len(trip.Triplets[0].ResponseLogprobs) != 3 {
		t.Errorf("triplets = %s", body)
	}

	_, body = get(t, srv.URL+"/api/v1/rollouts/r7/attempts/latest/triplets")
	if !strings.Contains(string(body), `"attempt_id":"1"`) || !strings.Contains(string(body), `"reward":null`) {
		t.Errorf("latest = %s", body)
	}

	for path, want := range map[string]int{
		"/api/v1/rollouts/nope/attempts/0/calls":     404,
		"/api/v1/rollouts/r7/attempts/9/calls":       404,
		"/api/v1/rollouts/bad%20id/attempts/0/calls": 400,
		"/api/v1/nothing":                            404,
		"/api/v1/rollouts?limit=0":                   400,
	} {
		if status, body := get(t, srv.URL+path); status != want || !strings.Contains(string(body), `"error":{`) {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
}

func TestRolloutsPaging(t *testing.T) {
	srv, rec, _ := setup(t, "")
	for _, rid := range []string{"a", "b", "c"} {
		if err := rec.RecordCall(context.Background(), call(rollout.Key{RolloutID: rid, AttemptID: "0"}, 1, true, exporter.StatusOK, []int64{1}, tokenids.Choice{TokenIDs: []int64{2}})); err != nil {
			t.Fatal(err)
		}
	}
	var page struct {
		Rollouts []struct {
			RolloutID string `json:"rollout_id"`
			Calls     int    `json:"calls"`
			Attempts  []struct {
				AttemptID string `json:"attempt_id"`
			} `json:"attempts"`
		} `json:"rollouts"`
		Next string `json:"next"`
	}
	_, body := get(t, srv.URL+"/api/v1/rollouts?limit=2")
	json.Unmarshal(body, &page)
	if len(page.Rollouts) != 2 || page.Next != "b" || page.Rollouts[0].Calls != 1 || page.Rollouts[0].Attempts[0].AttemptID != "0" {
		t.Fatalf("page 1 = %s", body)
	}
	_, body = get(t, srv.URL+"/api/v1/rollouts?limit=2&after="+page.Next)
	json.Unmarshal(body, &page)
	if len(page.Rollouts) != 1 || page.Rollouts[0].RolloutID != "c" || page.Next != "" {
		t.Fatalf("page 2 = %s", body)
	}
}

func TestAdminToken(t *testing.T) {
	srv, _, _ := setup(t, "s3cret")
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "s3cret"}} {
		if status, _ := get(t, srv.URL+"/api/v1/rollouts", h...); status != 401 {
			t.Errorf("%v: %d", h, status)
		}
	}
	if status, _ := get(t, srv.URL+"/api/v1/rollouts", "Authorization", "Bearer s3cret"); status != 200 {
		t.Errorf("right token: %d", status)
	}
	if status, _ := get(t, srv.URL+"/healthz"); status != 200 {
		t.Errorf("healthz needs no token: %d", status)
	}
}

func TestReadyz(t *testing.T) {
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var up atomic.Bool
	srv := httptest.NewServer(New(Config{Store: st, UpstreamReady: up.Load}))
	defer srv.Close()
	if status, body := get(t, srv.URL+"/readyz"); status != 503 || string(body) != `{"store":true,"upstream":false}` {
		t.Errorf("upstream down: %d %s", status, body)
	}
	up.Store(true)
	if status, _ := get(t, srv.URL+"/readyz"); status != 200 {
		t.Errorf("ready: %d", status)
	}
}

// A reward an agent's own tracer exports over OTLP counts like one posted to
// /reward: it is listed with the calls and matched to a call in triplets.
func TestReceivedRewardInViews(t *testing.T) {
	srv, rec, st := setup(t, "")
	key := rollout.Key{RolloutID: "otlp", AttemptID: "0"}
	if err := rec.RecordCall(context.Background(), call(key, 1, true, exporter.StatusOK, []int64{1}, tokenids.Choice{TokenIDs: []int64{2}})); err != nil {
		t.Fatal(err)
	}
	receiver := httptest.NewServer(exporter.NewReceiver(st, 1<<20, zerolog.Nop()))
	defer receiver.Close()
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"agentlightning.rollout_id","value":{"stringValue":"otlp"}},{"key":"agentlightning.attempt_id","value":{"stringValue":"0"}}]},` +
		`"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"agentlightning.annotation",` +
		`"startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":[{"key":"agentlightning.reward.0.name","value":{"stringValue":"em"}},{"key":"agentlightning.reward.0.value","value":{"doubleValue":0.5}}]}]}]}]}`
	resp, err := http.Post(receiver.URL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("receiver: %d", resp.StatusCode)
	}
	_, b := get(t, srv.URL+"/api/v1/rollouts/otlp/attempts/0/calls")
	if !strings.Contains(string(b), `"rewards":[{"sequence_id":2,"name":"em","value":0.5}]`) {
		t.Errorf("calls view: %s", b)
	}
	_, b = get(t, srv.URL+"/api/v1/rollouts/otlp/attempts/0/triplets")
	if !strings.Contains(string(b), `"reward":0.5`) {
		t.Errorf("triplets: %s", b)
	}
}
