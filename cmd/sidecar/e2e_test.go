package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
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

// binary is the sidecar built once for the end-to-end tests: they run it as
// a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sidecar-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sidecar")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sidecar:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const simModel = "Qwen/Qwen2.5-1.5B-Instruct"

// sidecar is a running sidecar process.
type sidecar struct {
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
	done chan error
}

// start runs the binary with args and waits until it serves.
func start(t *testing.T, args ...string) *sidecar {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"--listen", "127.0.0.1:0", "--log-format", "json"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sidecar{cmd: cmd, logs: &bytes.Buffer{}, done: make(chan error, 1)}
	addr := make(chan string, 1)
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			s.logs.WriteString(line + "\n")
			mu.Unlock()
			var entry struct{ Message, Listen string }
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Message == "tokentap serving" {
				addr <- entry.Listen
			}
		}
		s.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		s.url = "http://" + a
	case err := <-s.done:
		t.Fatalf("sidecar exited before serving: %v\n%s", err, s.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("sidecar did not start:\n%s", s.logs)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-s.done
		}
	})
	return s
}

func (s *sidecar) stop(t *testing.T, sig syscall.Signal) error {
	t.Helper()
	s.cmd.Process.Signal(sig)
	select {
	case err := <-s.done:
		return err
	case <-time.After(90 * time.Second):
		t.Fatal("sidecar did not exit")
		return nil
	}
}

func newSim(t *testing.T, opts vllmsim.Options) *httptest.Server {
	t.Helper()
	sim := httptest.NewServer(vllmsim.New(opts))
	t.Cleanup(sim.Close)
	return sim
}

// callsView is the part of the calls view the tests read.
type callsView struct {
	Complete bool `json:"complete"`
	Calls    []struct {
		SequenceID     uint64  `json:"sequence_id"`
		Operation      string  `json:"operation"`
		ResponseID     string  `json:"response_id"`
		Stream         bool    `json:"stream"`
		Status         string  `json:"status"`
		HTTPStatus     int     `json:"http_status"`
		PromptTokenIDs []int64 `json:"prompt_token_ids"`
		Choices        []struct {
			TokenIDs []int64 `json:"token_ids"`
			Text     string  `json:"text"`
		} `json:"choices"`
		TokenIDsValid   bool    `json:"token_ids_valid"`
		TokenIDsProblem *string `json:"token_ids_problem"`
		Upstream        string  `json:"upstream"`
	} `json:"calls"`
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == 200 {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v\n%s", url, err, b)
		}
	}
	return resp.StatusCode
}

// direct asks the simulator itself for the IDs of a request, as vLLM would
// return them to a client that asked.
func direct(t *testing.T, simURL, path, body, requestID string) map[string]any {
	t.Helper()
	body = strings.TrimSuffix(body, "}") + `,"return_token_ids":true}`
	req, _ := http.NewRequest(http.MethodPost, simURL+path, strings.NewReader(body))
	req.Header.Set("X-Request-Id", requestID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func ints(v any) []int64 {
	var out []int64
	for _, x := range v.([]any) {
		out = append(out, int64(x.(float64)))
	}
	return out
}

// The official OpenAI Go SDK drives the built binary: chat and completions,
// stream and not. The agent gets its answers, and the calls view holds the
// IDs vLLM produced, in order.
func TestOpenAIClient(t *testing.T) {
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--data", t.TempDir())
	client := openai.NewClient(
		option.WithBaseURL(sc.url+"/rollout/r1/attempt/0/v1"),
		option.WithAPIKey("token-abc123"),
		option.WithMaxRetries(0),
	)
	ctx := context.Background()
	chatBody := `{"model":"` + simModel + `","messages":[{"role":"user","content":"Say hi"}],"max_tokens":24}`
	completionBody := `{"model":"` + simModel + `","prompt":"The capital of France is","max_tokens":8}`
	chatParams := openai.ChatCompletionNewParams{
		Model:     simModel,
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
		MaxTokens: openai.Int(24),
	}
	completionParams := openai.CompletionNewParams{
		Model:     simModel,
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("The capital of France is")},
		MaxTokens: openai.Int(8),
	}

	chat, err := client.Chat.Completions.New(ctx, chatParams, option.WithHeader("X-Request-Id", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, chatParams, option.WithHeader("X-Request-Id", "c2"))
	var streamed strings.Builder
	for stream.Next() {
		if ch := stream.Current().Choices; len(ch) > 0 {
			streamed.WriteString(ch[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	completion, err := client.Completions.New(ctx, completionParams, option.WithHeader("X-Request-Id", "c3"))
	if err != nil {
		t.Fatal(err)
	}
	cstream := client.Completions.NewStreaming(ctx, completionParams, option.WithHeader("X-Request-Id", "c4"))
	var cstreamed strings.Builder
	for cstream.Next() {
		if ch := cstream.Current().Choices; len(ch) > 0 {
			cstreamed.WriteString(ch[0].Text)
		}
	}
	if err := cstream.Err(); err != nil {
		t.Fatal(err)
	}

	// What the agent saw carries no IDs it did not ask for.
	if strings.Contains(chat.RawJSON(), `"token_ids":[`) || strings.Contains(completion.RawJSON(), `"prompt_token_ids":[`) {
		t.Error("injected IDs reached the agent")
	}
	wantChat := direct(t, sim.URL, "/v1/chat/completions", chatBody, "c1")
	wantCompletion := direct(t, sim.URL, "/v1/completions", completionBody, "c3")
	chatChoice := wantChat["choices"].([]any)[0].(map[string]any)
	completionChoice := wantCompletion["choices"].([]any)[0].(map[string]any)
	if chat.Choices[0].Message.Content != chatChoice["message"].(map[string]any)["content"] || streamed.String() != chat.Choices[0].Message.Content {
		t.Errorf("chat content %q, streamed %q", chat.Choices[0].Message.Content, streamed.String())
	}
	if completion.Choices[0].Text != completionChoice["text"] || cstreamed.String() != completion.Choices[0].Text {
		t.Errorf("completion text %q, streamed %q", completion.Choices[0].Text, cstreamed.String())
	}

	var view callsView
	if status := getJSON(t, sc.url+"/api/v1/rollouts/r1/attempts/0/calls", &view); status != 200 || len(view.Calls) != 4 {
		t.Fatalf("calls view: %d, %d calls", status, len(view.Calls))
	}
	for i, c := range view.Calls {
		if c.SequenceID != uint64(i+1) || c.Status != "ok" || !c.TokenIDsValid || c.HTTPStatus != 200 || c.Stream != (i%2 == 1) {
			t.Errorf("call %d: %+v", i, c)
		}
	}
	// The same request gives the same generation, so the IDs vLLM returns
	// when asked are the ones recorded, for the streamed calls too.
	for i, want := range []struct {
		prompt, tokens []int64
	}{
		{ints(wantChat["prompt_token_ids"]), ints(chatChoice["token_ids"])},
		{ints(wantChat["prompt_token_ids"]), ints(chatChoice["token_ids"])},
		{ints(completionChoice["prompt_token_ids"]), ints(completionChoice["token_ids"])},
		{ints(completionChoice["prompt_token_ids"]), ints(completionChoice["token_ids"])},
	} {
		c := view.Calls[i]
		if !reflect.DeepEqual(c.PromptTokenIDs, want.prompt) || !reflect.DeepEqual(c.Choices[0].TokenIDs, want.tokens) {
			t.Errorf("call %d: recorded %v / %v, vLLM returned %v / %v", i+1, c.PromptTokenIDs, c.Choices[0].TokenIDs, want.prompt, want.tokens)
		}
	}
	if view.Calls[0].ResponseID != "chatcmpl-c1" || view.Calls[3].ResponseID != "cmpl-c4" {
		t.Errorf("response ids %q %q", view.Calls[0].ResponseID, view.Calls[3].ResponseID)
	}

	// Errors from vLLM reach the SDK as vLLM sent them, and are recorded.
	_, err = client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4", Messages: chatParams.Messages})
	var apiErr *openai.Error
	if !errorsAs(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.Message, "gpt-4") {
		t.Errorf("unknown model: %v", err)
	}
	getJSON(t, sc.url+"/api/v1/rollouts/r1/attempts/0/calls", &view)
	if last := view.Calls[len(view.Calls)-1]; last.Status != "error" || last.HTTPStatus != 404 {
		t.Errorf("error call recorded as %+v", last)
	}
	if err := sc.stop(t, syscall.SIGTERM); err != nil {
		t.Errorf("SIGTERM exit: %v\n%s", err, sc.logs)
	}
}

// envInt reads a positive integer knob of the long-running tests.
func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// The crash soak: agents make streaming and non-streaming calls while the
// sidecar is SIGKILLed at random moments and restarted on the same data
// directory. Every call whose answer an agent received in full must be
// stored exactly once, and each rollout's sequence ids must be unique and
// increase in the order its calls were answered, across restarts.
// TOKENTAP_SOAK_KILLS, TOKENTAP_SOAK_CALLS (answered calls between kills, at
// least) and TOKENTAP_SOAK_SEED scale and replay it; scripts/soak.sh runs a
// long one.
func TestKill9KeepsAcknowledgedCalls(t *testing.T) {
	kills := envInt(t, "TOKENTAP_SOAK_KILLS", 3)
	perKill := envInt(t, "TOKENTAP_SOAK_CALLS", 1000)
	seed := uint64(envInt(t, "TOKENTAP_SOAK_SEED", int(time.Now().UnixNano()%1e9)+1))
	rng := rand.New(rand.NewPCG(seed, seed))
	const agents = 16
	// Streams take a few milliseconds, so kills land inside them too.
	sim := newSim(t, vllmsim.Options{BeforeEvent: func(ctx context.Context, _ int) {
		select {
		case <-ctx.Done():
		case <-time.After(200 * time.Microsecond):
		}
	}})
	data := t.TempDir()
	// answered[g] lists, in the order agent g got them in full, the response
	// ids of its rollout's calls.
	answered := make([][]string, agents)
	var total atomic.Int64
	for round := range kills {
		sc := start(t, "--upstream", sim.URL, "--data", data)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range agents {
			wg.Go(func() {
				client := openai.NewClient(option.WithBaseURL(fmt.Sprintf("%s/rollout/k%d/attempt/%d/v1", sc.url, g, round)), option.WithAPIKey("x"), option.WithMaxRetries(0))
				params := openai.ChatCompletionNewParams{Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					var got string
					if i%2 == 0 {
						resp, err := client.Chat.Completions.New(context.Background(), params)
						if err != nil {
							return // the sidecar was killed
						}
						got = resp.ID
					} else {
						// A stream cut by the kill ends in an error: its
						// chunked body lacks the terminator.
						s := client.Chat.Completions.NewStreaming(context.Background(), params)
						for s.Next() {
							got = s.Current().ID
						}
						if s.Err() != nil {
							return
						}
					}
					answered[g] = append(answered[g], got)
					total.Add(1)
				}
			})
		}
		for total.Load() < int64(perKill*(round+1)) {
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.IntN(250)) * time.Millisecond) // a random moment
		sc.cmd.Process.Signal(syscall.SIGKILL)
		<-sc.done
		close(stop)
		wg.Wait()
	}

	sc := start(t, "--upstream", sim.URL, "--data", data)
	// Ready means the store opened cleanly (and the upstream answers).
	waitFor(t, func() bool { return getJSON(t, sc.url+"/readyz", nil) == 200 })
	lost, stored := 0, 0
	for g := range agents {
		seqOf := map[string][]uint64{} // response id → sequence ids of its ok calls
		seen := map[uint64]bool{}
		for round := range kills {
			var view callsView
			getJSON(t, fmt.Sprintf("%s/api/v1/rollouts/k%d/attempts/%d/calls", sc.url, g, round), &view)
			for _, c := range view.Calls {
				if seen[c.SequenceID] {
					t.Errorf("rollout k%d: sequence id %d twice", g, c.SequenceID)
				}
				seen[c.SequenceID] = true
				if c.Status == "ok" {
					seqOf[c.ResponseID] = append(seqOf[c.ResponseID], c.SequenceID)
				}
			}
		}
		stored += len(seen)
		var prev uint64
		for _, id := range answered[g] {
			seqs := seqOf[id]
			if len(seqs) != 1 {
				lost++
				t.Errorf("rollout k%d: answered call %s stored %d times", g, id, len(seqs))
				continue
			}
			if seqs[0] <= prev {
				t.Errorf("rollout k%d: call %s has sequence id %d after %d", g, id, seqs[0], prev)
			}
			prev = seqs[0]
		}
	}
	t.Logf("seed %d: %d answered calls over %d kills, %d lost; %d records in the store", seed, total.Load(), kills, lost, stored)
}

// SIGTERM lets a call in flight finish and records it before exiting.
func TestGracefulShutdown(t *testing.T) {
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	sim := newSim(t, vllmsim.Options{BeforeEvent: func(ctx context.Context, i int) {
		if i == 2 {
			once.Do(func() { close(held) })
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
	}})
	data := t.TempDir()
	sc := start(t, "--upstream", sim.URL, "--data", data)
	result := make(chan string, 1)
	go func() {
		client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/g/attempt/0/v1"), option.WithAPIKey("x"), option.WithMaxRetries(0))
		s := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
			Model: simModel, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		})
		var text strings.Builder
		for s.Next() {
			if ch := s.Current().Choices; len(ch) > 0 {
				text.WriteString(ch[0].Delta.Content)
			}
		}
		if s.Err() != nil {
			result <- "error: " + s.Err().Error()
			return
		}
		result <- text.String()
	}()
	<-held
	sc.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond) // the signal is being handled; the stream is still held
	close(release)
	if got := <-result; strings.HasPrefix(got, "error") || got == "" {
		t.Errorf("stream during shutdown: %q", got)
	}
	if err := <-sc.done; err != nil {
		t.Errorf("exit: %v\n%s", err, sc.logs)
	}
	sc = start(t, "--upstream", sim.URL, "--data", data)
	var view callsView
	getJSON(t, sc.url+"/api/v1/rollouts/g/attempts/0/calls", &view)
	if len(view.Calls) != 1 || view.Calls[0].Status != "ok" || !view.Calls[0].TokenIDsValid {
		t.Errorf("call in flight at shutdown recorded as %+v", view.Calls)
	}
}

func TestDemoMode(t *testing.T) {
	sc := start(t, "--demo", "--in-memory")
	resp, err := http.Post(sc.url+"/rollout/demo/attempt/0/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"`+simModel+`","messages":[{"role":"user","content":"hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var view callsView
	if status := getJSON(t, sc.url+"/api/v1/rollouts/demo/attempts/latest/calls", &view); status != 200 || len(view.Calls) != 1 || !view.Calls[0].TokenIDsValid {
		t.Errorf("demo call: %d %+v", status, view)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		if got := getJSON(t, sc.url+path, nil); got != want {
			t.Errorf("%s: %d", path, got)
		}
	}
	resp, err = http.Get(sc.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`tokentap_calls_total{dialect="openai.chat",http_status="200",operation="chat",status="ok",upstream=`,
		`tokentap_tokens_total{direction="completion"}`,
		"tokentap_calls_in_flight 0",
		"tokentap_store_commits_total",
		"go_memstats_mallocs_total",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// Bad flags fail at start with one clear line and exit code 2.
func TestBadFlagsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{[]string{"--upstream", "ftp://vllm"}, ""},
		{[]string{"--max-body", "lots"}, ""},
		{nil, "SIDECAR_RETENTION=forever"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = os.Environ()
		if tc.env != "" {
			cmd.Env = append(cmd.Env, tc.env)
		}
		out, err := cmd.CombinedOutput()
		exit, ok := err.(*exec.ExitError)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if !ok || exit.ExitCode() != 2 {
			t.Errorf("%v %s: exit %v, output %s", tc.args, tc.env, err, out)
		}
		if tc.args != nil && tc.args[0] == "--upstream" && (len(lines) != 1 || !strings.HasPrefix(lines[0], "sidecar: --upstream")) {
			t.Errorf("%v: output %q", tc.args, out)
		}
	}
}

func errorsAs(err error, target **openai.Error) bool {
	e, ok := err.(*openai.Error)
	if ok {
		*target = e
	}
	return ok
}
