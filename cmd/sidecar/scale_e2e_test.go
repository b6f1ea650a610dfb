package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

// replica is one simulated vLLM of a replica set. It notes which rollouts
// it served, from a test header that passes through tokentap untouched.
type replica struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen map[string]int // rollout → calls served
	hold atomic.Pointer[chan struct{}]
}

const rolloutHeader = "X-Test-Rollout"

func newReplica(t *testing.T, opts vllmsim.Options) *replica {
	t.Helper()
	r := &replica{seen: map[string]int{}}
	opts.BeforeEvent = func(ctx context.Context, i int) {
		if hold := r.hold.Load(); hold != nil && i == 1 {
			select {
			case <-*hold:
			case <-ctx.Done():
			}
		}
	}
	sim := vllmsim.New(opts)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if rid := req.Header.Get(rolloutHeader); rid != "" {
			r.mu.Lock()
			r.seen[rid]++
			r.mu.Unlock()
		}
		sim.ServeHTTP(w, req)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *replica) served(rid string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[rid]
}

func (r *replica) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

// chat makes one traced chat call for rollout rid with the official client
// and returns the error, if any.
func chat(sc *sidecar, rid string, opts ...option.RequestOption) error {
	client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/"+rid+"/attempt/0/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	opts = append(opts, option.WithHeader(rolloutHeader, rid))
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, opts...)
	return err
}

// owner returns the index of the one replica that served rid, or -1.
func owner(rs []*replica, rid string) int {
	found := -1
	for i, r := range rs {
		if r.served(rid) > 0 {
			if found >= 0 {
				return -2 // split over replicas
			}
			found = i
		}
	}
	return found
}

// admin sends an admin request and decodes the JSON answer into v.
func admin(t *testing.T, method, url, body string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

type adminStateView struct {
	Paused        bool   `json:"paused"`
	InFlight      int64  `json:"in_flight"`
	PolicyVersion string `json:"policy_version"`
	Routing       string `json:"routing"`
	Upstreams     []struct {
		URL      string `json:"url"`
		Healthy  bool   `json:"healthy"`
		InFlight int64  `json:"in_flight"`
	} `json:"upstreams"`
}

func rolloutIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return ids
}

// Every call of a rollout goes to one replica; when that replica dies, only
// its rollouts move (the first call that finds it dead is retried on
// another replica before any byte reached the agent); the calls view names
// the replica of every call.
func TestReplicasStickyAndFailover(t *testing.T) {
	rs := []*replica{newReplica(t, vllmsim.Options{}), newReplica(t, vllmsim.Options{}), newReplica(t, vllmsim.Options{})}
	// The replica that dies closes each connection after its answer, so
	// its death is a refused dial. Otherwise Close races tokentap's reuse
	// of an idle keep-alive connection: a request written on a connection
	// the replica was closing gets 502, by design (written whole, it is
	// not resent), and the test would fail now and then.
	rs[1].srv.Config.SetKeepAlivesEnabled(false)
	sc := start(t, "--upstream", rs[0].srv.URL, "--upstream", rs[1].srv.URL, "--upstream", rs[2].srv.URL, "--in-memory")
	ids := rolloutIDs("s", 30)
	for round := range 3 {
		for _, rid := range ids {
			if err := chat(sc, rid); err != nil {
				t.Fatalf("round %d, %s: %v", round, rid, err)
			}
		}
	}
	before := map[string]int{}
	perReplica := make([]int, len(rs))
	for _, rid := range ids {
		o := owner(rs, rid)
		if o < 0 {
			t.Fatalf("rollout %s served by several replicas", rid)
		}
		before[rid] = o
		perReplica[o]++
		var view callsView
		getJSON(t, sc.url+"/api/v1/rollouts/"+rid+"/attempts/0/calls", &view)
		for _, c := range view.Calls {
			if c.Upstream != rs[o].host() {
				t.Errorf("%s: call %d recorded upstream %q, served by %s", rid, c.SequenceID, c.Upstream, rs[o].host())
			}
		}
	}
	for i, n := range perReplica {
		if n == 0 {
			t.Errorf("replica %d got no rollout of 30: %v", i, perReplica)
		}
	}

	// Replica 1 dies. Every call still succeeds; only its rollouts move.
	rs[1].srv.Close()
	for _, rid := range ids {
		if err := chat(sc, rid); err != nil {
			t.Errorf("after replica 1 died, %s: %v", rid, err)
		}
	}
	moved := 0
	for _, rid := range ids {
		now := -1
		for i, r := range rs {
			if i != 1 && r.served(rid) > 0 && (before[rid] != i) {
				now = i
			}
		}
		switch {
		case before[rid] != 1 && now >= 0:
			t.Errorf("%s moved from replica %d though it is alive", rid, before[rid])
		case before[rid] == 1:
			if now < 0 {
				t.Errorf("%s (was on the dead replica) is served nowhere", rid)
			}
			moved++
		}
	}
	var state adminStateView
	admin(t, http.MethodGet, sc.url+"/admin/state", "", &state)
	if len(state.Upstreams) != 3 || state.Upstreams[1].Healthy || !state.Upstreams[0].Healthy {
		t.Errorf("state after a replica died: %+v", state.Upstreams)
	}
	resp, _ := http.Get(sc.url + "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), `tokentap_upstream_retries_total{upstream="`+rs[1].host()+`"} 1`) ||
		!strings.Contains(string(metrics), `tokentap_upstream_healthy{upstream="`+rs[1].host()+`"} 0`) {
		t.Errorf("metrics:\n%s", grepLines(string(metrics), "tokentap_upstream"))
	}
	t.Logf("rollouts per replica %v; %d moved off the dead replica", perReplica, moved)
}

func grepLines(s, substr string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, substr) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// Once a replica has sent bytes, a failure is the agent's to see: the
// stream is cut, never replayed on another replica.
func TestNoRetryAfterBytes(t *testing.T) {
	rs := []*replica{newReplica(t, vllmsim.Options{}), newReplica(t, vllmsim.Options{})}
	sc := start(t, "--upstream", rs[0].srv.URL, "--upstream", rs[1].srv.URL, "--in-memory")
	client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/cut/attempt/0/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
	s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	}, option.WithHeader(rolloutHeader, "cut"), option.WithHeader("X-Vllmsim-Fault", vllmsim.FaultCloseMidway))
	chunks := 0
	for s.Next() {
		chunks++
	}
	if s.Err() == nil || chunks == 0 {
		t.Errorf("stream: %d chunks, err %v: want some chunks, then an error", chunks, s.Err())
	}
	if n := rs[0].served("cut") + rs[1].served("cut"); n != 1 {
		t.Errorf("the call reached the replicas %d times", n)
	}
}

// A config file names the replicas and models; SIGHUP reloads it without
// dropping calls, and a new replica takes only its share of rollouts.
func TestReloadOnSIGHUP(t *testing.T) {
	rs := []*replica{newReplica(t, vllmsim.Options{}), newReplica(t, vllmsim.Options{}), newReplica(t, vllmsim.Options{})}
	other := newReplica(t, vllmsim.Options{Model: "other/model"})
	file := filepath.Join(t.TempDir(), "tokentap.yaml")
	writeConfig := func(rs []*replica) {
		var b strings.Builder
		b.WriteString("routing: sticky\nupstreams:\n")
		for _, r := range rs {
			fmt.Fprintf(&b, "  - url: %s\n    models: [%s]\n", r.srv.URL, simModel)
		}
		fmt.Fprintf(&b, "  - url: %s\n    models: [other/model]\n", other.srv.URL)
		if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeConfig(rs[:2])
	sc := start(t, "--config", file, "--in-memory")
	ids := rolloutIDs("h", 30)
	for _, rid := range ids {
		if err := chat(sc, rid); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]int{}
	for _, rid := range ids {
		before[rid] = owner(rs, rid)
	}
	if other.served(ids[0]) != 0 {
		t.Error("a replica that does not serve the model got a call")
	}
	// A model no replica serves: vLLM's 404, from tokentap.
	status, body := postStatus(t, http.DefaultClient, sc.url+"/rollout/h0/attempt/0/v1/chat/completions", `{"model":"nobody/serves-this","messages":[]}`)
	if want := "{\"error\":{\"message\":\"The model `nobody/serves-this` does not exist.\",\"type\":\"NotFoundError\",\"param\":\"model\",\"code\":404}}"; status != 404 || body != want {
		t.Errorf("unknown model: %d %s", status, body)
	}
	status, _ = postStatus(t, http.DefaultClient, sc.url+"/rollout/h0/attempt/0/v1/chat/completions", `{"model":"other/model","messages":[{"role":"user","content":"hi"}]}`, rolloutHeader, "model-routed")
	if status != 200 || other.served("model-routed") != 1 {
		t.Errorf("a call for other/model: %d, served by it %d times", status, other.served("model-routed"))
	}

	// A stream held open on its replica through both reloads below.
	release := make(chan struct{})
	for _, r := range rs[:2] {
		r.hold.Store(&release)
	}
	held := make(chan error, 1)
	go func() {
		client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/held/attempt/0/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
		s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		for s.Next() {
		}
		held <- s.Err()
	}()
	waitFor(t, func() bool {
		var state adminStateView
		admin(t, http.MethodGet, sc.url+"/admin/state", "", &state)
		return state.InFlight == 1
	})

	writeConfig(rs)
	sc.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, func() bool {
		var state adminStateView
		admin(t, http.MethodGet, sc.url+"/admin/state", "", &state)
		return len(state.Upstreams) == 4
	})
	for _, rid := range ids {
		if err := chat(sc, rid); err != nil {
			t.Fatal(err)
		}
	}
	moved := 0
	for _, rid := range ids {
		if rs[2].served(rid) > 0 {
			moved++
			continue
		}
		if o := owner(rs, rid); o != before[rid] {
			t.Errorf("%s moved from replica %d to %d, not to the new one", rid, before[rid], o)
		}
	}
	if moved == 0 || moved > 20 {
		t.Errorf("%d of 30 rollouts moved to the new replica", moved)
	}
	// The same through the API.
	var state adminStateView
	if status := admin(t, http.MethodPut, sc.url+"/admin/upstreams", fmt.Sprintf(`{"upstreams":[{"url":%q}],"routing":"least-loaded"}`, rs[0].srv.URL), &state); status != 200 || len(state.Upstreams) != 1 || state.Routing != "least-loaded" {
		t.Errorf("PUT /admin/upstreams: %d %+v", status, state)
	}
	if status := admin(t, http.MethodPut, sc.url+"/admin/upstreams", `{"upstreams":[{"url":"ftp://x"}]}`, nil); status != 400 {
		t.Errorf("PUT /admin/upstreams with a bad URL: %d", status)
	}
	// The held stream's replica may be gone from the set: the call still
	// finishes there and is recorded.
	close(release)
	if err := <-held; err != nil {
		t.Errorf("a call in flight through two reloads: %v", err)
	}
	var view callsView
	getJSON(t, sc.url+"/api/v1/rollouts/held/attempts/0/calls", &view)
	if len(view.Calls) != 1 || view.Calls[0].Status != "ok" || !view.Calls[0].TokenIDsValid {
		t.Errorf("the held call: %+v", view.Calls)
	}
	t.Logf("%d of 30 rollouts moved to the added replica", moved)
}

// The weight-sync loop: pause refuses new calls with 429 + Retry-After while
// the call in flight finishes; drain tells when it has; the policy version
// changes; resume. A call straddling the change records both versions, and
// the version survives a restart.
func TestPauseDrainAndPolicyVersion(t *testing.T) {
	r := newReplica(t, vllmsim.Options{})
	data := t.TempDir()
	sc := start(t, "--upstream", r.srv.URL, "--data", data)
	if status := admin(t, http.MethodPut, sc.url+"/admin/policy-version", `{"version":"step-1"}`, nil); status != 200 {
		t.Fatalf("PUT /admin/policy-version: %d", status)
	}
	if err := chat(sc, "p"); err != nil {
		t.Fatal(err)
	}

	// A stream held open across the pause and the version change.
	release := make(chan struct{})
	r.hold.Store(&release)
	streamed := make(chan error, 1)
	go func() {
		client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/p/attempt/0/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
		s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		for s.Next() {
		}
		streamed <- s.Err()
	}()
	waitFor(t, func() bool {
		var state adminStateView
		admin(t, http.MethodGet, sc.url+"/admin/state", "", &state)
		return state.InFlight == 1 && state.Upstreams[0].InFlight == 1
	})

	var state adminStateView
	admin(t, http.MethodPost, sc.url+"/admin/pause", `{"retry_after_seconds":2,"reason":"weight sync"}`, &state)
	if !state.Paused || state.InFlight != 1 {
		t.Errorf("after pause: %+v", state)
	}
	req, _ := http.NewRequest(http.MethodPost, sc.url+"/rollout/p/attempt/0/v1/chat/completions", strings.NewReader(`{"model":"`+simModel+`","messages":[]}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || !strings.Contains(string(body), "weight sync") {
		t.Errorf("paused call: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if status, _ := postStatus(t, http.DefaultClient, sc.url+"/rollout/p/attempt/0/v1/models", ""); status == 429 {
		t.Error("untraced requests are paused too")
	}

	// Drain: the answer comes once the stream in flight has finished.
	drained := make(chan adminStateView, 1)
	go func() {
		var s adminStateView
		admin(t, http.MethodPost, sc.url+"/admin/pause", `{"retry_after_seconds":2,"drain_seconds":30}`, &s)
		drained <- s
	}()
	admin(t, http.MethodPut, sc.url+"/admin/policy-version", `{"version":"step-2"}`, nil)
	select {
	case <-drained:
		t.Fatal("drain answered with a call in flight")
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-streamed; err != nil {
		t.Errorf("the stream in flight during the pause: %v", err)
	}
	if s := <-drained; s.InFlight != 0 || !s.Paused {
		t.Errorf("drained state: %+v", s)
	}

	// An agent whose client retries (the OpenAI SDKs honour Retry-After)
	// just waits out the pause.
	r.hold.Store(nil)
	waited := make(chan error, 1)
	go func() { waited <- chat(sc, "p", option.WithMaxRetries(3)) }()
	time.Sleep(300 * time.Millisecond)
	admin(t, http.MethodPost, sc.url+"/admin/resume", "", &state)
	if state.Paused {
		t.Errorf("after resume: %+v", state)
	}
	if err := <-waited; err != nil {
		t.Errorf("a retrying client across the pause: %v", err)
	}

	var view struct {
		Calls []struct {
			SequenceID    uint64 `json:"sequence_id"`
			Stream        bool   `json:"stream"`
			PolicyVersion string `json:"policy_version"`
			PolicyEnd     string `json:"policy_version_end"`
		} `json:"calls"`
	}
	getJSON(t, sc.url+"/api/v1/rollouts/p/attempts/0/calls", &view)
	if len(view.Calls) != 3 {
		t.Fatalf("%d calls recorded, want 3 (the refused ones are not calls): %+v", len(view.Calls), view.Calls)
	}
	want := [][2]string{{"step-1", ""}, {"step-1", "step-2"}, {"step-2", ""}}
	for i, c := range view.Calls {
		if c.PolicyVersion != want[i][0] || c.PolicyEnd != want[i][1] {
			t.Errorf("call %d: policy_version %q end %q, want %q %q", c.SequenceID, c.PolicyVersion, c.PolicyEnd, want[i][0], want[i][1])
		}
	}
	var triplets struct {
		Triplets []struct {
			PolicyVersion string `json:"policy_version"`
			PolicyEnd     string `json:"policy_version_end"`
		} `json:"triplets"`
	}
	getJSON(t, sc.url+"/api/v1/rollouts/p/attempts/0/triplets", &triplets)
	if len(triplets.Triplets) != 3 || triplets.Triplets[1].PolicyEnd != "step-2" || triplets.Triplets[2].PolicyVersion != "step-2" {
		t.Errorf("triplets: %+v", triplets.Triplets)
	}

	sc.stop(t, syscall.SIGTERM)
	sc = start(t, "--upstream", r.srv.URL, "--data", data)
	admin(t, http.MethodGet, sc.url+"/admin/state", "", &state)
	if state.PolicyVersion != "step-2" {
		t.Errorf("policy version after a restart: %q", state.PolicyVersion)
	}
}

// --force-param pins sampling on every traced call; the calls view shows
// what was sent.
func TestForceParam(t *testing.T) {
	var sent atomic.Value
	sim := vllmsim.New(vllmsim.Options{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path == "/v1/chat/completions" { // not the health probes
			sent.Store(string(body))
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	sc := start(t, "--upstream", up.URL, "--in-memory", "--force-param", "temperature=1.0", "--force-param", "top_p=1")
	status, _ := postStatus(t, http.DefaultClient, sc.url+"/rollout/f/attempt/0/v1/chat/completions",
		`{"model":"`+simModel+`","messages":[{"role":"user","content":"hi"}],"temperature":0.3}`)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	if got := sent.Load().(string); !strings.Contains(got, `"temperature":1.0`) || !strings.Contains(got, `"top_p":1`) || strings.Contains(got, "0.3") {
		t.Errorf("vLLM received %s", got)
	}
	var view struct {
		Calls []struct {
			Sampling struct {
				Temperature *float64 `json:"temperature"`
				TopP        *float64 `json:"top_p"`
				Forced      []string `json:"forced"`
			} `json:"sampling"`
		} `json:"calls"`
	}
	getJSON(t, sc.url+"/api/v1/rollouts/f/attempts/0/calls", &view)
	if s := view.Calls[0].Sampling; s.Temperature == nil || *s.Temperature != 1 || s.TopP == nil || *s.TopP != 1 || len(s.Forced) != 2 {
		t.Errorf("recorded sampling %+v", s)
	}
}
