package vllmsim

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSimpleEndpoints(t *testing.T) {
	s := newSim(Options{MaxModelLen: 4096, Version: "0.12.0"})

	r := do(t, s, http.MethodGet, "/health", "")
	if r.code != 200 || len(r.body) != 0 {
		t.Errorf("/health: %d %q", r.code, r.body)
	}
	r = do(t, s, http.MethodGet, "/version", "")
	if mustOK(t, r, "application/json"); string(r.body) != `{"version":"0.12.0"}` {
		t.Errorf("/version: %s", r.body)
	}
	r = do(t, s, http.MethodGet, "/load", "")
	if mustOK(t, r, "application/json"); string(r.body) != `{"server_load":0}` {
		t.Errorf("/load: %s", r.body)
	}

	r = do(t, s, http.MethodGet, "/v1/models", "")
	mustOK(t, r, "application/json")
	n := parseNode(t, r.body)
	if got := keysAt(t, n, "data.0"); !slices.Equal(got, []string{"id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission"}) {
		t.Errorf("model keys %v", got)
	}
	if n.s(t, "data.0.id") != testModel || n.s(t, "data.0.root") != testModel || n.s(t, "data.0.owned_by") != "vllm" ||
		!n.isNull("data.0.parent") || n.i(t, "data.0.max_model_len") != 4096 || n.i(t, "data.0.created") != fixedTime.Unix() {
		t.Errorf("/v1/models: %s", r.body)
	}
	if !regexp.MustCompile(`^modelperm-[0-9a-f]{16}$`).MatchString(n.s(t, "data.0.permission.0.id")) {
		t.Errorf("permission id %q", n.s(t, "data.0.permission.0.id"))
	}

	post(t, s, chatPath, `{`+sayHi+`,"max_tokens":2}`)
	r = do(t, s, http.MethodGet, "/metrics", "")
	mustOK(t, r, "text/plain; version=0.0.4; charset=utf-8")
	for _, line := range []string{
		`vllm:num_requests_running{model_name="Qwen/Qwen2.5-1.5B-Instruct",engine="0"} 0.0`,
		`vllm:prompt_tokens_total{model_name="Qwen/Qwen2.5-1.5B-Instruct",engine="0"} 21.0`,
		`vllm:generation_tokens_total{model_name="Qwen/Qwen2.5-1.5B-Instruct",engine="0"} 2.0`,
		"# TYPE vllm:num_requests_running gauge",
	} {
		if !strings.Contains(string(r.body), line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, r.body)
		}
	}
}

func TestTokenizeEndpoints(t *testing.T) {
	s := newSim(Options{MaxModelLen: 8192})
	r := post(t, s, "/tokenize", `{"model":"`+testModel+`","prompt":"Hello world!","add_special_tokens":true,"return_token_strs":true}`)
	mustOK(t, r, "application/json")
	n := parseNode(t, r.body)
	if got := keysAt(t, n, ""); !slices.Equal(got, []string{"count", "max_model_len", "tokens", "token_strs"}) {
		t.Errorf("keys %v", got)
	}
	ids := n.ids(t, "tokens")
	if !slices.Equal(ids, s.Tokenize("Hello world!")) || n.i(t, "count") != 3 || n.i(t, "max_model_len") != 8192 {
		t.Errorf("/tokenize: %s", r.body)
	}
	if n.s(t, "token_strs.1") != " world" {
		t.Errorf("token_strs %s", r.body)
	}

	// The messages form renders the chat template, as chat requests do.
	chat := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"return_token_ids":true}`).body)
	r = post(t, s, "/tokenize", `{`+sayHi+`}`)
	n = parseNode(t, r.body)
	if !slices.Equal(n.ids(t, "tokens"), chat.ids(t, "prompt_token_ids")) || !n.isNull("token_strs") {
		t.Errorf("/tokenize messages: %s", r.body)
	}

	r = post(t, s, "/detokenize", `{"model":"`+testModel+`","tokens":`+string(appendInts(nil, ids))+`}`)
	if mustOK(t, r, "application/json"); string(r.body) != `{"prompt":"Hello world!"}` {
		t.Errorf("/detokenize: %s", r.body)
	}
}

func TestResponseIDs(t *testing.T) {
	s := newSim(Options{})
	for _, tc := range []struct {
		path, body string
		hdr        []string
		want       string
	}{
		{chatPath, `{` + sayHi + `}`, []string{"X-Request-Id", "req-7"}, `^chatcmpl-req-7$`},
		{complPath, `{"prompt":"x"}`, []string{"X-Request-Id", "req-7"}, `^cmpl-req-7$`},
		{chatPath, `{` + sayHi + `,"request_id":"body-1"}`, nil, `^chatcmpl-body-1$`},
		{chatPath, `{` + sayHi + `,"request_id":"body-1"}`, []string{"X-Request-Id", "hdr"}, `^chatcmpl-hdr$`},
		{chatPath, `{` + sayHi + `}`, nil, `^chatcmpl-[0-9a-f]{16}$`},
		{complPath, `{"prompt":"x"}`, nil, `^cmpl-[0-9a-f]{16}$`},
	} {
		id := parseNode(t, post(t, s, tc.path, tc.body, tc.hdr...).body).s(t, "id")
		if !regexp.MustCompile(tc.want).MatchString(id) {
			t.Errorf("%s %v: id %q, want %s", tc.body, tc.hdr, id, tc.want)
		}
	}
}

func TestNoTokenIDsChat(t *testing.T) {
	s := newSim(Options{NoTokenIDs: true})
	tools := `"tools":[{"type":"function","function":{"name":"get_weather"}}]`
	n := parseNode(t, post(t, s, chatPath, `{`+sayHi+`,"return_token_ids":true}`).body)
	if got := keysAt(t, n, ""); !slices.Equal(got, []string{"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage", "prompt_logprobs", "kv_transfer_params"}) {
		t.Errorf("keys %v", got)
	}
	if got := keysAt(t, n, "choices.0"); !slices.Equal(got, []string{"index", "message", "logprobs", "finish_reason", "stop_reason"}) {
		t.Errorf("choice keys %v", got)
	}
	// Old servers drop the tool parser's swallowed tokens even when the
	// client asked for IDs (issue #27482).
	cs := chunks(t, post(t, s, chatPath, `{"messages":[{"role":"user","content":"weather?"}],`+tools+`,"stream":true,"return_token_ids":true,"logprobs":true}`).body)
	if len(cs) != 2 {
		t.Errorf("%d chunks, want role + finish", len(cs))
	}
	for _, c := range cs {
		if c.has("prompt_token_ids") || c.has("choices.0.token_ids") {
			t.Errorf("ID key in %s", r(c))
		}
	}
}

// TestBeforeEvent checks the hook sees every event in order, [DONE] included.
func TestBeforeEvent(t *testing.T) {
	var mu sync.Mutex
	var seen []int
	s := newSim(Options{Policy: hiPolicy, BeforeEvent: func(ctx context.Context, i int) {
		mu.Lock()
		seen = append(seen, i)
		mu.Unlock()
	}})
	r := post(t, s, chatPath, `{`+sayHi+`,"stream":true,"stream_options":{}}`)
	events := sseEvents(t, r.body)
	if want := []int{0, 1, 2, 3, 4, 5}; !slices.Equal(seen, want) || len(events) != 6 {
		t.Fatalf("hook saw %v for %d events", seen, len(events))
	}
	seen = nil
	post(t, s, chatPath, `{`+sayHi+`}`)
	if len(seen) != 0 {
		t.Errorf("hook called for a non-stream request")
	}
}

// TestStreamHeldOpen holds a stream before its third event and checks that
// the client has already received (flushed) the first two.
func TestStreamHeldOpen(t *testing.T) {
	release := make(chan struct{})
	s := newSim(Options{Policy: hiPolicy, BeforeEvent: func(ctx context.Context, i int) {
		if i == 2 {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}})
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, err := http.Post(ts.URL+chatPath, "application/json", strings.NewReader(`{`+sayHi+`,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != eventType {
		t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
	}
	br := bufio.NewReader(resp.Body)
	for i := 0; i < 2; i++ {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "data: {") {
			t.Fatalf("event %d: %q %v", i, line, err)
		}
		if blank, _ := br.ReadString('\n'); blank != "\n" {
			t.Fatalf("event %d not followed by a blank line", i)
		}
	}
	close(release)
	rest, _ := io.ReadAll(br)
	if !strings.HasSuffix(string(rest), "data: [DONE]\n\n") {
		t.Fatalf("rest of stream %q", rest)
	}
}

// TestStreamCancellation: when the client goes away the hook's context is
// cancelled, the stream stops without writing another event, and the
// handler returns.
func TestStreamCancellation(t *testing.T) {
	var mu sync.Mutex
	var calls []int
	s := newSim(Options{Policy: func([]Message, int) string { return strings.Repeat("word ", 50) }, BeforeEvent: func(ctx context.Context, i int) {
		mu.Lock()
		calls = append(calls, i)
		mu.Unlock()
		if i == 1 {
			// Event 0 has been flushed; hold here until the client leaves.
			<-ctx.Done()
		}
	}})
	finished := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(finished)
		s.ServeHTTP(w, r)
	}))
	defer ts.Close()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+chatPath, strings.NewReader(`{`+sayHi+`,"stream":true}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: {") {
		t.Fatalf("first event %q %v", line, err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-finished:
	case <-time.After(10 * time.Second):
		t.Fatal("handler still running after the client left")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(calls, []int{0, 1}) {
		t.Errorf("hook calls %v: the stream must stop at the held event", calls)
	}
}

func TestTokenDelay(t *testing.T) {
	s := newSim(Options{Policy: hiPolicy, TokenDelay: 20 * time.Millisecond})
	start := time.Now()
	post(t, s, chatPath, `{`+sayHi+`,"stream":true}`)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Errorf("3 token chunks took %v", d)
	}
}

// TestConcurrent runs mixed requests in parallel (meaningful under -race)
// and checks that answers do not depend on interleaving.
func TestConcurrent(t *testing.T) {
	s := newSim(Options{})
	want := string(post(t, s, chatPath, `{`+sayHi+`,"return_token_ids":true}`, "X-Request-Id", "c").body)
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			switch i % 4 {
			case 0:
				if got := string(post(t, s, chatPath, `{`+sayHi+`,"return_token_ids":true}`, "X-Request-Id", "c").body); got != want {
					errs <- "chat answer changed under concurrency"
				}
			case 1:
				post(t, s, chatPath, `{"messages":[{"role":"user","content":"unique text `+strings.Repeat("x", i)+`"}],"stream":true}`)
			case 2:
				post(t, s, complPath, `{"prompt":["a b c","d e"],"n":3,"stream":true}`)
			default:
				post(t, s, "/tokenize", `{"prompt":"concurrent `+strings.Repeat("y", i)+`"}`)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
