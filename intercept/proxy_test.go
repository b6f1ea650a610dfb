package intercept

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/upstream"
)

const model = "Qwen/Qwen2.5-1.5B-Instruct"

// rig is a proxy in front of a simulated vLLM, both on real sockets.
type rig struct {
	sim       *httptest.Server
	proxy     *Proxy
	front     *httptest.Server
	store     *store.Store
	recorder  *exporter.Recorder
	upstreams *upstream.Set
}

type rigOptions struct {
	sim             vllmsim.Options
	logprobs        bool
	requireRollout  bool
	maxBody         int64
	upstream        string // overrides the simulator
	upstreamTimeout time.Duration
	bodyTimeout     time.Duration
	upstreamAPIKey  string
	observer        Observer
	wrapSim         func(http.Handler) http.Handler
	moreUpstreams   []upstream.Spec // replicas besides the simulator
	routing         upstream.Routing
	force           []tokenids.Param
	stageHook       func(stage string)
	beforeCommit    func() error // the store's commit seam
	maxResponse     int64        // read bounds, when not the defaults
	maxEvent        int
	logger          *zerolog.Logger
	accessLog       bool
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	if o.sim.Clock == nil {
		o.sim.Clock = func() time.Time { return time.Unix(1760000000, 0) }
	}
	var simHandler http.Handler = vllmsim.New(o.sim)
	if o.wrapSim != nil {
		simHandler = o.wrapSim(simHandler)
	}
	sim := httptest.NewServer(simHandler)
	t.Cleanup(sim.Close)
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop(), BeforeCommit: o.beforeCommit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	up := sim.URL
	if o.upstream != "" {
		up = o.upstream
	}
	specs := append([]upstream.Spec{{URL: up}}, o.moreUpstreams...)
	set, err := upstream.New(specs, o.routing, upstream.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	rec := exporter.NewRecorder(st, true, "test")
	logger := zerolog.Nop()
	if o.logger != nil {
		logger = *o.logger
	}
	p, err := New(Config{AccessLog: o.accessLog, Upstreams: set, Force: o.force, Recorder: rec, Logprobs: o.logprobs, RequireRollout: o.requireRollout, MaxBody: o.maxBody,
		UpstreamTimeout: o.upstreamTimeout, BodyTimeout: o.bodyTimeout, UpstreamAPIKey: o.upstreamAPIKey, Observer: o.observer, Logger: logger, stageHook: o.stageHook, maxResponse: o.maxResponse, maxEvent: o.maxEvent})
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(p)
	t.Cleanup(front.Close)
	return &rig{sim: sim, proxy: p, front: front, store: st, recorder: rec, upstreams: set}
}

// post sends a request and returns the status, headers and body.
func post(t *testing.T, base, path, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

// calls reads back what the store holds for an attempt.
func (r *rig) calls(t *testing.T, key rollout.Key) []*exporter.Call {
	t.Helper()
	calls, _ := wholeCalls(t, r, key)
	return calls
}

// withTokenIDs returns a request body that asks vLLM for the IDs itself.
func withTokenIDs(body string) string {
	return strings.TrimSuffix(body, "}") + `,"return_token_ids":true}`
}

// The heart of tokentap, for every shape: the agent receives exactly the
// bytes vLLM sends without tokentap, and the IDs recorded are exactly those
// vLLM returns when asked.
func TestTransparentAndFaithful(t *testing.T) {
	tests := []struct {
		name, path, body string
	}{
		{"chat", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hi 🐱"}],"max_tokens":16}`},
		{"chat n=3 logprobs", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"Tell me"}],"n":3,"logprobs":true,"top_logprobs":2,"temperature":0.8,"seed":7}`},
		{"chat tool call", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"What's the weather like in Paris?"}],"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"}}}}}]}`},
		{"chat stop string", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"Search"}],"stop":["the"],"max_tokens":40}`},
		{"chat stream usage", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"Say hi"}],"stream":true,"stream_options":{"include_usage":true},"max_tokens":8}`},
		{"chat stream n=2 logprobs continuous usage", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"Two"}],"n":2,"stream":true,"logprobs":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`},
		{"chat stream tool call", "/v1/chat/completions", `{"model":"` + model + `","messages":[{"role":"user","content":"weather in Paris"}],"stream":true,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]}`},
		{"completions", "/v1/completions", `{"model":"` + model + `","prompt":"The capital of France is","max_tokens":5,"logprobs":1}`},
		{"completions two prompts n=2", "/v1/completions", `{"model":"` + model + `","prompt":["The capital of France is","Hello"],"n":2,"max_tokens":3}`},
		{"completions token prompts stream", "/v1/completions", `{"model":"` + model + `","prompt":[[1,2,3],[4,5]],"stream":true,"stream_options":{"include_usage":true},"max_tokens":4}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			// Without tokentap, as the agent would see vLLM.
			_, directHeader, direct := post(t, r.sim.URL, tt.path, tt.body, "X-Request-Id", "fixed")
			// Through tokentap.
			key := rollout.Key{RolloutID: "r-" + strings.NewReplacer(" ", "_", "=", "-").Replace(tt.name), AttemptID: "0"}
			status, header, proxied := post(t, r.front.URL, "/rollout/"+key.RolloutID+"/attempt/0"+tt.path, tt.body, "X-Request-Id", "fixed")
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, proxied)
			}
			if !bytes.Equal(direct, proxied) {
				t.Errorf("the agent's view changed\ndirect:  %s\nproxied: %s", direct, proxied)
			}
			for _, h := range []string{"Content-Type", "Content-Length"} {
				if directHeader.Get(h) != header.Get(h) {
					t.Errorf("%s: direct %q, proxied %q", h, directHeader.Get(h), header.Get(h))
				}
			}
			// What vLLM returns when asked for the IDs.
			ep := tokenids.Chat
			if strings.HasSuffix(tt.path, "/v1/completions") {
				ep = tokenids.Completions
			}
			_, _, withIDs := post(t, r.sim.URL, tt.path, withTokenIDs(tt.body), "X-Request-Id", "fixed")
			want := parseAnswer(t, ep, tt.body, withIDs)

			calls := r.calls(t, key)
			if len(calls) != 1 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			c := calls[0]
			if c.Status != exporter.StatusOK || c.HTTPStatus != 200 || !c.Valid || c.Seq != 1 || c.Path != tt.path {
				t.Errorf("call = status %s http %d valid %v (%s) seq %d path %s", c.Status, c.HTTPStatus, c.Valid, c.Problem, c.Seq, c.Path)
			}
			if !reflect.DeepEqual(c.Response.Prompts, want.Prompts) || !reflect.DeepEqual(c.Response.PromptTokenIDs, want.PromptTokenIDs) {
				t.Errorf("prompts\n got %v\nwant %v", c.Response.Prompts, want.Prompts)
			}
			if len(c.Response.Choices) != len(want.Choices) {
				t.Fatalf("%d choices recorded, vLLM returned %d", len(c.Response.Choices), len(want.Choices))
			}
			for i, ch := range c.Response.Choices {
				w := want.Choices[i]
				if !reflect.DeepEqual(ch.TokenIDs, w.TokenIDs) || !reflect.DeepEqual(ch.Logprobs, w.Logprobs) ||
					ch.FinishReason != w.FinishReason || ch.Text != w.Text || ch.PromptIndex != w.PromptIndex || ch.Index != w.Index {
					t.Errorf("choice %d\n got %+v\nwant %+v", i, ch, w)
				}
				if len(w.TokenIDs) == 0 {
					t.Errorf("choice %d: vLLM returned no IDs to compare", i)
				}
			}
		})
	}
}

// parseAnswer reads a JSON or SSE answer with the package's own extractor
// (whose correctness against vLLM's bytes is tested in tokenids).
func parseAnswer(t *testing.T, ep tokenids.Endpoint, reqBody string, answer []byte) tokenids.Result {
	t.Helper()
	_, req, err := tokenids.PrepareRequest(ep, []byte(reqBody), tokenids.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(answer, []byte("data:")) {
		res, _, err := tokenids.ParseResponse(&req, answer, tokenids.Strip{})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	st := tokenids.NewStream(&req, tokenids.Strip{})
	er := tokenids.NewEventReader(bytes.NewReader(answer), 1<<20)
	for {
		ev, err := er.Next()
		if err != nil {
			break
		}
		if _, err := st.Event(ev.Data); err != nil {
			t.Fatal(err)
		}
	}
	return st.Result()
}

func TestClientThatAskedKeepsTheIDs(t *testing.T) {
	r := newRig(t, rigOptions{})
	body := withTokenIDs(`{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"logprobs":true}`)
	_, _, direct := post(t, r.sim.URL, "/v1/chat/completions", body, "X-Request-Id", "x")
	_, _, proxied := post(t, r.front.URL, "/rollout/r/attempt/0/v1/chat/completions", body, "X-Request-Id", "x")
	if !bytes.Equal(direct, proxied) || !bytes.Contains(proxied, []byte(`"token_ids":[`)) {
		t.Errorf("direct  %s\nproxied %s", direct, proxied)
	}
}

// Under --logprobs the call records logprobs the agent never sees.
func TestInjectedLogprobs(t *testing.T) {
	r := newRig(t, rigOptions{logprobs: true})
	for _, stream := range []string{"false", "true"} {
		body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"stream":` + stream + `}`
		_, _, direct := post(t, r.sim.URL, "/v1/chat/completions", body, "X-Request-Id", "x")
		_, _, proxied := post(t, r.front.URL, "/rollout/lp/attempt/0/v1/chat/completions", body, "X-Request-Id", "x")
		if !bytes.Equal(direct, proxied) {
			t.Errorf("stream=%s: logprobs leaked to the agent\ndirect  %s\nproxied %s", stream, direct, proxied)
		}
	}
	for _, c := range r.calls(t, rollout.Key{RolloutID: "lp", AttemptID: "0"}) {
		ch := c.Response.Choices[0]
		if !c.Valid || len(ch.Logprobs) != len(ch.TokenIDs) || len(ch.Logprobs) == 0 {
			t.Errorf("call %d: %d logprobs for %d IDs (%s)", c.Seq, len(ch.Logprobs), len(ch.TokenIDs), c.Problem)
		}
	}
}

// Each SSE event reaches the agent while the upstream holds the next one.
func TestStreamEventsFlushedOnArrival(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	r := newRig(t, rigOptions{sim: vllmsim.Options{BeforeEvent: func(ctx context.Context, i int) {
		if i == 3 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}}})
	defer once.Do(func() { close(release) })
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":10}`
	resp, err := http.Post(r.front.URL+"/rollout/f/attempt/0/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range 3 {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "data: {") {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		br.ReadString('\n') // the blank line
	}
	// Three events arrived while the upstream is blocked before the fourth.
	if got := r.proxy.InFlight(); got != 1 {
		t.Errorf("in flight = %d while the stream is held", got)
	}
	once.Do(func() { close(release) })
	rest, _ := io.ReadAll(br)
	if !bytes.HasSuffix(rest, []byte("data: [DONE]\n\n")) {
		t.Errorf("stream tail %q", rest)
	}
}

// The record is committed before the agent has the whole answer: the
// moment the client has read it, the store holds it.
func TestCommittedBeforeLastByte(t *testing.T) {
	r := newRig(t, rigOptions{})
	for i, body := range []string{
		`{"model":"` + model + `","messages":[{"role":"user","content":"a"}]}`,
		`{"model":"` + model + `","messages":[{"role":"user","content":"b"}],"stream":true}`,
	} {
		post(t, r.front.URL, "/rollout/d/attempt/0/v1/chat/completions", body)
		if n := len(r.calls(t, rollout.Key{RolloutID: "d", AttemptID: "0"})); n != i+1 {
			t.Errorf("after call %d the store holds %d calls", i+1, n)
		}
	}
}

func TestConcurrentSequenceIDs(t *testing.T) {
	r := newRig(t, rigOptions{})
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Go(func() {
			stream := i%2 == 0
			body := fmt.Sprintf(`{"model":"%s","messages":[{"role":"user","content":"call %d"}],"stream":%v}`, model, i, stream)
			if status, _, b := post(t, r.front.URL, "/rollout/c/attempt/0/v1/chat/completions", body); status != 200 {
				t.Errorf("status %d: %s", status, b)
			}
		})
	}
	wg.Wait()
	calls := r.calls(t, rollout.Key{RolloutID: "c", AttemptID: "0"})
	seen := map[uint64]bool{}
	for _, c := range calls {
		seen[c.Seq] = true
		if !c.Valid {
			t.Errorf("call %d invalid: %s", c.Seq, c.Problem)
		}
	}
	for i := uint64(1); i <= 32; i++ {
		if !seen[i] {
			t.Errorf("sequence %d missing; have %v", i, seen)
		}
	}
	if len(calls) != 32 {
		t.Errorf("%d calls recorded", len(calls))
	}
}

func TestUpstreamErrorPassesThrough(t *testing.T) {
	r := newRig(t, rigOptions{})
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"gpt-4","messages":[{"role":"user","content":"hi"}],"stream":%v}`, stream)
		dStatus, _, direct := post(t, r.sim.URL, "/v1/chat/completions", body)
		status, _, proxied := post(t, r.front.URL, "/rollout/e/attempt/0/v1/chat/completions", body)
		if status != dStatus || status != 404 || !bytes.Equal(direct, proxied) {
			t.Errorf("status %d/%d\ndirect  %s\nproxied %s", dStatus, status, direct, proxied)
		}
	}
	for _, c := range r.calls(t, rollout.Key{RolloutID: "e", AttemptID: "0"}) {
		if c.Status != exporter.StatusError || c.HTTPStatus != 404 || c.ErrorType != "NotFoundError" || !strings.Contains(c.Error, "gpt-4") || c.Valid {
			t.Errorf("error call recorded as %+v", c)
		}
	}
}

func TestUpstreamUnreachable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r := newRig(t, rigOptions{upstream: dead})
	status, _, body := post(t, r.front.URL, "/rollout/u/attempt/0/v1/chat/completions", `{"model":"m","messages":[]}`)
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    int    `json:"code"`
		} `json:"error"`
	}
	if status != 502 || json.Unmarshal(body, &e) != nil || e.Error.Code != 502 || e.Error.Type != "BadGatewayError" {
		t.Errorf("status %d body %s", status, body)
	}
	calls := r.calls(t, rollout.Key{RolloutID: "u", AttemptID: "0"})
	if len(calls) != 1 || calls[0].Status != exporter.StatusError || calls[0].HTTPStatus != 502 || calls[0].ErrorType != "upstream_unreachable" {
		t.Errorf("recorded %+v", calls)
	}
}

func TestErrorInsideStream(t *testing.T) {
	r := newRig(t, rigOptions{})
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":20}`
	_, _, direct := post(t, r.sim.URL, "/v1/chat/completions", body, "X-Vllmsim-Fail-After", "3", "X-Request-Id", "x")
	status, _, proxied := post(t, r.front.URL, "/rollout/s/attempt/0/v1/chat/completions", body, "X-Vllmsim-Fail-After", "3", "X-Request-Id", "x")
	if status != 200 || !bytes.Equal(direct, proxied) {
		t.Errorf("direct  %s\nproxied %s", direct, proxied)
	}
	c := r.calls(t, rollout.Key{RolloutID: "s", AttemptID: "0"})[0]
	if c.Status != exporter.StatusError || c.ErrorType != "InternalServerError" || len(c.Response.Choices) != 1 || len(c.Response.Choices[0].TokenIDs) != 3 || c.Valid {
		t.Errorf("recorded %s %s, %d tokens, valid %v", c.Status, c.ErrorType, len(c.Response.Choices[0].TokenIDs), c.Valid)
	}
}

// A client that goes away mid-stream cancels the upstream request, and the
// call is recorded as cancelled with the tokens seen so far.
func TestClientDisconnectMidStream(t *testing.T) {
	upstreamGone := make(chan struct{})
	r := newRig(t, rigOptions{sim: vllmsim.Options{BeforeEvent: func(ctx context.Context, i int) {
		if i == 4 {
			<-ctx.Done() // hold until the proxy cancels the upstream request
			close(upstreamGone)
		}
	}}})
	ctx, cancel := context.WithCancel(context.Background())
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":30}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, r.front.URL+"/rollout/x/attempt/0/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for range 4 { // role chunk and three tokens
		br.ReadString('\n')
		br.ReadString('\n')
	}
	cancel()
	resp.Body.Close()
	select {
	case <-upstreamGone:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream request was not cancelled")
	}
	waitCtx, done := context.WithTimeout(context.Background(), 10*time.Second)
	defer done()
	if err := r.proxy.Wait(waitCtx); err != nil {
		t.Fatal(err)
	}
	c := r.calls(t, rollout.Key{RolloutID: "x", AttemptID: "0"})[0]
	if c.Status != exporter.StatusCancelled || len(c.Response.PromptTokenIDs) == 0 || len(c.Response.Choices[0].TokenIDs) != 3 || c.Valid {
		t.Errorf("recorded %s with %d tokens, valid %v (%s)", c.Status, len(c.Response.Choices[0].TokenIDs), c.Valid, c.Problem)
	}
}

// A vLLM older than 0.10.2 returns no IDs: the call is still recorded,
// marked as having none.
func TestBackendWithoutTokenIDs(t *testing.T) {
	r := newRig(t, rigOptions{sim: vllmsim.Options{NoTokenIDs: true}})
	for _, stream := range []string{"false", "true"} {
		status, _, b := post(t, r.front.URL, "/rollout/old/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}],"stream":`+stream+`}`)
		if status != 200 {
			t.Fatalf("status %d: %s", status, b)
		}
	}
	for _, c := range r.calls(t, rollout.Key{RolloutID: "old", AttemptID: "0"}) {
		if c.Status != exporter.StatusOK || c.Valid || !strings.Contains(c.Problem, "no prompt_token_ids") || c.Response.Choices[0].Text == "" {
			t.Errorf("recorded %s valid %v problem %q", c.Status, c.Valid, c.Problem)
		}
	}
}

// Completions echo requests are not injected (vLLM #57996 would blank the
// echoed prompt): the agent's text keeps the prompt.
func TestCompletionsEcho(t *testing.T) {
	r := newRig(t, rigOptions{})
	body := `{"model":"` + model + `","prompt":"Echo me","echo":true,"max_tokens":4}`
	_, _, direct := post(t, r.sim.URL, "/v1/completions", body, "X-Request-Id", "e")
	_, _, proxied := post(t, r.front.URL, "/rollout/echo/attempt/0/v1/completions", body, "X-Request-Id", "e")
	if !bytes.Equal(direct, proxied) || !bytes.Contains(proxied, []byte(`"text":"Echo me`)) {
		t.Errorf("direct  %s\nproxied %s", direct, proxied)
	}
	c := r.calls(t, rollout.Key{RolloutID: "echo", AttemptID: "0"})[0]
	if c.Valid || !strings.Contains(c.Problem, "echo") {
		t.Errorf("echo call valid %v problem %q", c.Valid, c.Problem)
	}
}

func TestUntracedPassThrough(t *testing.T) {
	r := newRig(t, rigOptions{})
	for _, path := range []string{"/v1/models", "/version", "/health"} {
		dr, _ := http.Get(r.sim.URL + path)
		direct, _ := io.ReadAll(dr.Body)
		dr.Body.Close()
		pr, err := http.Get(r.front.URL + "/rollout/p/attempt/0" + path)
		if err != nil {
			t.Fatal(err)
		}
		proxied, _ := io.ReadAll(pr.Body)
		pr.Body.Close()
		if pr.StatusCode != dr.StatusCode || !bytes.Equal(direct, proxied) {
			t.Errorf("%s: %d %s, direct %d %s", path, pr.StatusCode, proxied, dr.StatusCode, direct)
		}
	}
	_, _, tok := post(t, r.front.URL, "/tokenize", `{"model":"`+model+`","prompt":"Hello world!"}`)
	if !bytes.Contains(tok, []byte(`"tokens":[`)) {
		t.Errorf("tokenize: %s", tok)
	}
	if sum, err := r.store.Rollout(context.Background(), "p"); err == nil {
		t.Errorf("untraced calls were recorded: %+v", sum)
	}
}

func TestKeys(t *testing.T) {
	r := newRig(t, rigOptions{})
	chat := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	for _, path := range []string{
		"/rollout/bad id/attempt/0/v1/chat/completions",
		"/rollout/r/attempt//v1/chat/completions",
		"/rollout/r/v1/chat/completions",
		"/rollout/" + strings.Repeat("x", 129) + "/attempt/0/v1/chat/completions",
		"/rollout/r/attempt/0/v1/../../admin",
	} {
		status, _, b := post(t, r.front.URL, strings.ReplaceAll(path, " ", "%20"), chat)
		if status != 400 || !bytes.Contains(b, []byte(`"code":400`)) {
			t.Errorf("%s: %d %s", path, status, b)
		}
	}
	// Header keying for plain /v1 calls; no key at all records under "".
	post(t, r.front.URL, "/v1/chat/completions", chat, "X-Rollout-Id", "hdr", "X-Attempt-Id", "2")
	post(t, r.front.URL, "/v1/chat/completions", chat, "X-Rollout-Id", "hdr")
	post(t, r.front.URL, "/v1/chat/completions", chat)
	if n := len(r.calls(t, rollout.Key{RolloutID: "hdr", AttemptID: "2"})); n != 1 {
		t.Errorf("header-keyed calls: %d", n)
	}
	if n := len(r.calls(t, rollout.Key{RolloutID: "hdr", AttemptID: "0"})); n != 1 {
		t.Errorf("rollout header without attempt: %d calls under attempt 0", n)
	}
	if n := len(r.calls(t, rollout.Key{})); n != 1 {
		t.Errorf("unkeyed calls: %d", n)
	}
	if status, _, _ := post(t, r.front.URL, "/v1/chat/completions", chat, "X-Attempt-Id", "1"); status != 400 {
		t.Errorf("attempt header alone: %d", status)
	}

	strict := newRig(t, rigOptions{requireRollout: true})
	if status, _, b := post(t, strict.front.URL, "/v1/chat/completions", chat); status != 400 || !bytes.Contains(b, []byte("require-rollout")) {
		t.Errorf("require-rollout: %d %s", status, b)
	}
	if status, _, _ := post(t, strict.front.URL, "/v1/models", ""); status == 400 {
		t.Error("require-rollout must not apply to untraced paths")
	}
}

// tokentap is never an open proxy.
func TestOnlyTheUpstream(t *testing.T) {
	r := newRig(t, rigOptions{})
	proxyURL, _ := url.Parse(r.front.URL)
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://example.com/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !bytes.Contains(b, []byte(`"code":403`)) {
		t.Errorf("foreign host: %d %s", resp.StatusCode, b)
	}
	// The upstream's host through HTTP_PROXY works like a direct call.
	resp, err = client.Post(r.sim.URL+"/rollout/hp/attempt/0/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || bytes.Contains(b, []byte(`"token_ids":[`)) {
		t.Errorf("proxy-form call: %d %s", resp.StatusCode, b)
	}
	if n := len(r.calls(t, rollout.Key{RolloutID: "hp", AttemptID: "0"})); n != 1 {
		t.Errorf("proxy-form call recorded %d times", n)
	}
	// A Host header never picks the destination.
	req, _ := http.NewRequest(http.MethodGet, r.front.URL+"/v1/models", nil)
	req.Host = "example.com"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(b, []byte(model)) {
		t.Errorf("Host header: %d %s", resp.StatusCode, b)
	}
	// CONNECT.
	conn, err := net.Dial("tcp", proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 405 {
		t.Errorf("CONNECT: %v %v", resp, err)
	}
}

func TestBadRequestBodies(t *testing.T) {
	r := newRig(t, rigOptions{maxBody: 1024})
	status, _, b := post(t, r.front.URL, "/rollout/b/attempt/0/v1/chat/completions", `{"messages": [`)
	if status != 400 || !bytes.Contains(b, []byte("not a JSON object")) {
		t.Errorf("malformed JSON: %d %s", status, b)
	}
	status, _, b = post(t, r.front.URL, "/rollout/b/attempt/0/v1/chat/completions", `{"x":"`+strings.Repeat("a", 2000)+`"}`)
	if status != 413 || !bytes.Contains(b, []byte(`"code":413`)) {
		t.Errorf("large body: %d %s", status, b)
	}
	calls := r.calls(t, rollout.Key{RolloutID: "b", AttemptID: "0"})
	if len(calls) != 2 || calls[0].HTTPStatus != 400 || calls[1].HTTPStatus != 413 || calls[0].Status != exporter.StatusError {
		t.Errorf("refused calls recorded as %+v", calls)
	}
}

func TestRewardAndComplete(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, rigOptions{sim: vllmsim.Options{BeforeEvent: func(ctx context.Context, i int) {
		if i == 2 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}}})
	base := r.front.URL + "/rollout/rc/attempt/0"
	chat := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	post(t, r.front.URL, "/rollout/rc/attempt/0/v1/chat/completions", chat)
	status, _, b := post(t, base, "/reward", `{"value": 0.5, "name": "em"}`)
	if status != 201 || string(b) != `{"sequence_id":2}` {
		t.Errorf("reward: %d %s", status, b)
	}
	for _, bad := range []string{`{}`, `{"value":"x"}`, `not json`, `{"value":1e999}`,
		`{"value":1,"sequence_id":0}`, `{"value":1,"choice_index":0}`, `{"value":1,"sequence_id":1,"choice_index":-1}`} {
		if status, _, _ := post(t, base, "/reward", bad); status != 400 {
			t.Errorf("reward %s: %d", bad, status)
		}
	}
	if resp, _ := http.Get(base + "/reward"); resp.StatusCode != 405 {
		t.Errorf("GET reward: %d", resp.StatusCode)
	}

	// A stream is in flight (held by the upstream) when complete is called:
	// complete waits for it and counts it.
	streamDone := make(chan []byte)
	go func() {
		_, _, b := post(t, r.front.URL, "/rollout/rc/attempt/0/v1/chat/completions", strings.TrimSuffix(chat, "}")+`,"stream":true}`)
		streamDone <- b
	}()
	for r.proxy.InFlight() == 0 {
		time.Sleep(time.Millisecond)
	}
	completed := make(chan string)
	go func() {
		_, _, b := post(t, base, "/complete", "")
		completed <- string(b)
	}()
	// While complete waits, new calls of the attempt are refused.
	for {
		status, _, _ := post(t, r.front.URL, "/rollout/rc/attempt/0/v1/chat/completions", chat)
		if status == 409 {
			break
		}
		time.Sleep(time.Millisecond) // complete has not started waiting yet
	}
	close(release)
	if b := <-streamDone; !bytes.HasSuffix(b, []byte("data: [DONE]\n\n")) {
		t.Errorf("held stream: %s", b)
	}
	if got := <-completed; got != `{"calls":3,"last_sequence_id":3}` && !strings.HasPrefix(got, `{"calls":`) {
		t.Errorf("complete: %s", got)
	} else {
		var c struct{ Calls, LastSequenceID int }
		json.Unmarshal([]byte(got), &c)
		calls := r.calls(t, rollout.Key{RolloutID: "rc", AttemptID: "0"})
		if c.Calls != len(calls) || c.Calls < 2 {
			t.Errorf("complete counted %d calls, store has %d: %s", c.Calls, len(calls), got)
		}
	}
	for _, p := range []string{"/complete", "/reward"} {
		if status, _, b := post(t, base, p, `{"value":1}`); status != 409 {
			t.Errorf("%s after complete: %d %s", p, status, b)
		}
	}
	if status, _, _ := post(t, r.front.URL, "/rollout/rc/attempt/0/v1/chat/completions", chat); status != 409 {
		t.Errorf("call after complete: %d", status)
	}
	if status, _, _ := post(t, r.front.URL, "/rollout/rc/attempt/1/v1/chat/completions", chat); status != 200 {
		t.Errorf("another attempt after complete: %d", status)
	}
}

// A traceparent from the agent's tracer makes the call's span its child.
func TestTraceparentJoinsAgentTrace(t *testing.T) {
	r := newRig(t, rigOptions{})
	post(t, r.front.URL, "/rollout/tp/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`,
		"Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	c := r.calls(t, rollout.Key{RolloutID: "tp", AttemptID: "0"})[0]
	if c.TraceID.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s", c.TraceID)
	}
}

// A call refused before it was sent upstream says why, and only that: no
// diagnosis of token IDs that were never asked for (it once read "token
// IDs not requested: completions echo requests ..." on a chat call).
func TestRefusedCallProblem(t *testing.T) {
	tests := []struct {
		name, path, body string
	}{
		{"chat, malformed body", "/v1/chat/completions", `{"model":"` + model + `","messages":[`},
		{"completions, not an object", "/v1/completions", `[1]`},
		{"messages, messages not a list", "/v1/messages", `{"model":"` + model + `","max_tokens":8,"messages":"x"}`},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, rigOptions{})
			rid := fmt.Sprintf("refused-%d", i)
			status, got, _ := rawPost(t, r.front.URL+"/rollout/"+rid+"/attempt/0"+tt.path, tt.body)
			if status != http.StatusBadRequest {
				t.Fatalf("agent got %d %s", status, got)
			}
			if err := r.proxy.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			calls := r.calls(t, rollout.Key{RolloutID: rid, AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("recorded %d calls", len(calls))
			}
			c := calls[0]
			if c.Valid || c.Problem != "call error; the request was refused before it reached the upstream" {
				t.Errorf("recorded valid %v, problem %q", c.Valid, c.Problem)
			}
		})
	}
}
