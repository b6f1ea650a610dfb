package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

// The tests in this file drive the built sidecar with the real npm clients
// agents use (the Anthropic and OpenAI TypeScript SDKs), running the agents
// of testdata/clients under node. scripts/npm-clients.sh installs the pinned
// packages and prints their directory; .ci/run exports it here.
const npmClientsEnv = "NPM_CLIENTS_DIR"

// The question both agents ask; the simulated vLLM's ShellPolicy calls the
// offered shell tool with the backticked command, then quotes its output.
const (
	clientCommand = "echo hello-tokentap"
	clientOutput  = "hello-tokentap"
)

// agentRun is what an agent script prints: one conversation held with JSON
// answers and one with streams.
type agentRun struct {
	JSON   agentConversation `json:"json"`
	Stream agentConversation `json:"stream"`
}

type agentConversation struct {
	Turns []struct {
		ID         string `json:"id"`
		Model      string `json:"model"`
		StopReason string `json:"stop_reason"`
		Content    []struct {
			Type  string         `json:"type"`
			Text  string         `json:"text"`
			ID    string         `json:"id"`
			Name  string         `json:"name"`
			Input map[string]any `json:"input"`
		} `json:"content"`
		Usage *struct {
			InputTokens  int `json:"input_tokens"`
			OutputTokens int `json:"output_tokens"`
		} `json:"usage"`
		Events []string `json:"events"`
	} `json:"turns"`
	ToolResults []struct {
		ToolUseID string `json:"tool_use_id"`
		Command   string `json:"command"`
		Output    string `json:"output"`
	} `json:"tool_results"`
	FinalText string `json:"final_text"`
}

// dialectCalls is the part of the calls view these tests read.
type dialectCalls struct {
	Calls []struct {
		SequenceID     uint64  `json:"sequence_id"`
		Dialect        string  `json:"dialect"`
		Path           string  `json:"path"`
		Model          string  `json:"model"`
		RequestedModel string  `json:"requested_model"`
		Stream         bool    `json:"stream"`
		Status         string  `json:"status"`
		HTTPStatus     int     `json:"http_status"`
		Error          *string `json:"error"`
		PromptTokenIDs []int64 `json:"prompt_token_ids"`
		Choices        []struct {
			TokenIDs     []int64 `json:"token_ids"`
			FinishReason string  `json:"finish_reason"`
			Text         string  `json:"text"`
			ToolCalls    []struct {
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"choices"`
		Usage *struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
		TokenIDsValid   bool    `json:"token_ids_valid"`
		TokenIDsProblem *string `json:"token_ids_problem"`
	} `json:"calls"`
}

// npmClients returns the directory scripts/npm-clients.sh installed the
// clients in, or skips the test when it is not set (CI always sets it).
func npmClients(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(npmClientsEnv)
	if dir == "" {
		t.Skipf("%s is unset: run %s=$(scripts/npm-clients.sh) to drive tokentap with the real npm clients (.ci/run does)", npmClientsEnv, npmClientsEnv)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		t.Fatalf("%s=%s holds no node_modules (rerun scripts/npm-clients.sh): %v", npmClientsEnv, dir, err)
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("%s is set but node is not on PATH: %v", npmClientsEnv, err)
	}
	return dir
}

// simWithShell starts a simulated vLLM whose policy plays the model of the
// demo (a shell round trip when a shell tool is offered), and returns it
// with its server so the test can decode token IDs.
func simWithShell(t *testing.T) (*vllmsim.Server, *httptest.Server) {
	t.Helper()
	s := vllmsim.New(vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy})
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// probeRoute posts body to rest (e.g. "v1/responses") under a rollout of its
// own and reports whether tokentap serves the route itself: a request it
// does not trace is forwarded, and the simulated vLLM's router answers it
// with FastAPI's 404 {"detail":"Not Found"}, which no tokentap error has.
func probeRoute(t *testing.T, sc *sidecar, rest, body string) (served bool, status int, answer string) {
	t.Helper()
	resp, err := http.Post(sc.url+"/rollout/probe/attempt/0/"+rest, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("probe %s: %v", rest, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	fromUpstreamRouter := resp.StatusCode == http.StatusNotFound && bytes.Contains(b, []byte(`"detail"`))
	return !fromUpstreamRouter, resp.StatusCode, string(b)
}

// startDialect starts a simulated vLLM playing the demo model and the
// sidecar in front of it, mapping the models that match pattern to it, and
// checks that tokentap serves rest (it answers probe itself).
func startDialect(t *testing.T, pattern, rest, probe string) (*vllmsim.Server, *sidecar) {
	t.Helper()
	sim, simSrv := simWithShell(t)
	sc := start(t, "--upstream", simSrv.URL, "--in-memory", "--model-map", pattern+"="+simModel)
	if served, status, answer := probeRoute(t, sc, rest, probe); !served {
		t.Fatalf("tokentap does not serve POST /%s: it forwarded the call untraced and the upstream answered %d %s "+
			"(DESIGN §10: intercept must translate it to chat completions)", rest, status, answer)
	}
	return sim, sc
}

// runNodeAgent runs a node agent of testdata/clients with args and decodes the
// summary line it prints. Node resolves an ES module's imports from the
// module's own directory, not NODE_PATH, so the script is copied into a
// directory whose node_modules is the installed clients'.
func runNodeAgent(t *testing.T, clients, script string, env []string, args ...string) agentRun {
	t.Helper()
	// The agents import what they share from agent.mjs beside them.
	dir := t.TempDir()
	for _, name := range []string{script, "agent.mjs"} {
		src, err := os.ReadFile(filepath.Join("testdata", "clients", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(clients, "node_modules"), filepath.Join(dir, "node_modules")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{script}, args...)...)
	cmd.Dir = dir
	// The SDKs read their base URL and key from the environment when not
	// given one; the scripts are given theirs, so none of this machine's
	// leaks in.
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		for _, p := range []string{"ANTHROPIC_", "OPENAI_", "MODEL="} {
			if strings.HasPrefix(kv, p) {
				return true
			}
		}
		return false
	}), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v (after %s)\nstderr:\n%s\nstdout:\n%s", script, err, time.Since(began).Round(time.Millisecond), stderr.String(), stdout.String())
	}
	t.Logf("node %s took %s", script, time.Since(began).Round(time.Millisecond))
	var run agentRun
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &run); err != nil {
		t.Fatalf("node %s printed no summary: %v\nstdout:\n%s\nstderr:\n%s", script, err, stdout.String(), stderr.String())
	}
	return run
}

// checkToolRoundTrip checks what the agent saw in one conversation: a first
// answer that calls run_command with the command asked for, the agent's
// result for that very call, and a final answer quoting the output.
func checkToolRoundTrip(t *testing.T, name string, c agentConversation) {
	t.Helper()
	if len(c.Turns) != 2 {
		t.Fatalf("%s: %d turns, want 2 (a tool call, then the answer): %+v", name, len(c.Turns), c)
	}
	first, last := c.Turns[0], c.Turns[1]
	var uses []int
	for i, b := range first.Content {
		if b.Type == "tool_use" {
			uses = append(uses, i)
		}
	}
	if first.StopReason != "tool_use" || len(uses) != 1 {
		t.Fatalf("%s: first turn stop_reason %q with %d tool calls, want tool_use with 1: %+v", name, first.StopReason, len(uses), first)
	}
	use := first.Content[uses[0]]
	if use.Name != "run_command" || use.Input["command"] != clientCommand || use.ID == "" {
		t.Errorf("%s: tool call %+v, want run_command {command: %q} with an id", name, use, clientCommand)
	}
	if len(c.ToolResults) != 1 || c.ToolResults[0].ToolUseID != use.ID || c.ToolResults[0].Output != clientOutput+"\n" {
		t.Errorf("%s: tool results %+v, want one for %q printing %q", name, c.ToolResults, use.ID, clientOutput)
	}
	if last.StopReason != "end_turn" || !strings.Contains(c.FinalText, clientOutput) {
		t.Errorf("%s: last turn stop_reason %q, text %q: want end_turn quoting %q", name, last.StopReason, c.FinalText, clientOutput)
	}
	for i, turn := range c.Turns {
		if turn.ID == "" || turn.Usage == nil || turn.Usage.InputTokens <= 0 || turn.Usage.OutputTokens <= 0 {
			t.Errorf("%s: turn %d has no id or usage: %+v", name, i+1, turn)
		}
	}
}

// checkConversations checks both conversations of run as tool round trips
// (named jsonName and streamName in failures) of the same shape, and reports
// whether they were.
func checkConversations(t *testing.T, jsonName, streamName string, run agentRun) bool {
	t.Helper()
	checkToolRoundTrip(t, jsonName, run.JSON)
	checkToolRoundTrip(t, streamName, run.Stream)
	if t.Failed() {
		return false
	}
	if a, b := shape(run.JSON), shape(run.Stream); !reflect.DeepEqual(a, b) {
		t.Errorf("the JSON and streamed conversations differ:\njson:   %q\nstream: %q", a, b)
		return false
	}
	return true
}

// shape is what a conversation looks like without its random ids: stop
// reasons, block kinds, tool names and inputs, texts and usage. The
// simulated vLLM generates the same tokens for the same prompt, so a JSON
// and a streamed conversation must have the same shape.
func shape(c agentConversation) []string {
	var out []string
	for _, turn := range c.Turns {
		line := turn.StopReason
		for _, b := range turn.Content {
			in, _ := json.Marshal(b.Input)
			line += " | " + b.Type + " " + b.Name + " " + string(in) + " " + b.Text
		}
		if turn.Usage != nil {
			in, _ := json.Marshal(turn.Usage)
			line += " | usage " + string(in)
		}
		out = append(out, line)
	}
	return append(out, "final "+c.FinalText)
}

// checkRecorded checks the calls view of one conversation's rollout against
// what the agent saw: one ok call per turn with valid IDs, the dialect
// named, the usage the agent got equal to the recorded IDs, and the tool's
// output inside the second prompt. It then checks the trajectories view:
// the two turns merge into one trajectory, or the drift entry of the second
// names a cause.
func checkRecorded(t *testing.T, sc *sidecar, sim *vllmsim.Server, rollout, dialect, requested string, stream bool, c agentConversation) {
	t.Helper()
	var view dialectCalls
	if status := getJSON(t, sc.url+"/api/v1/rollouts/"+rollout+"/attempts/0/calls", &view); status != http.StatusOK {
		t.Fatalf("%s: calls view answered %d", rollout, status)
	}
	if len(view.Calls) != len(c.Turns) {
		t.Fatalf("%s: %d calls recorded for %d turns: %+v", rollout, len(view.Calls), len(c.Turns), view.Calls)
	}
	for i, call := range view.Calls {
		turn := c.Turns[i]
		if call.SequenceID != uint64(i+1) || call.Status != "ok" || call.HTTPStatus != http.StatusOK || call.Error != nil {
			t.Errorf("%s call %d: sequence %d, status %q, http %d, error %v", rollout, i+1, call.SequenceID, call.Status, call.HTTPStatus, call.Error)
		}
		if call.Dialect != dialect {
			t.Errorf("%s call %d: dialect %q, want %q", rollout, i+1, call.Dialect, dialect)
		}
		if call.Stream != stream || call.Model != simModel || call.RequestedModel != requested {
			t.Errorf("%s call %d: stream %v, model %q (requested %q), want stream %v, %q (requested %q)",
				rollout, i+1, call.Stream, call.Model, call.RequestedModel, stream, simModel, requested)
		}
		if !call.TokenIDsValid || len(call.PromptTokenIDs) == 0 || len(call.Choices) != 1 || len(call.Choices[0].TokenIDs) == 0 {
			t.Errorf("%s call %d: token_ids_valid %v (problem %v), %d prompt IDs, %d choices",
				rollout, i+1, call.TokenIDsValid, call.TokenIDsProblem, len(call.PromptTokenIDs), len(call.Choices))
			continue
		}
		// What the agent was told it used is what was recorded.
		if turn.Usage == nil || turn.Usage.InputTokens != len(call.PromptTokenIDs) || turn.Usage.OutputTokens != len(call.Choices[0].TokenIDs) {
			t.Errorf("%s call %d: the agent got usage %+v, the record holds %d prompt and %d response IDs",
				rollout, i+1, turn.Usage, len(call.PromptTokenIDs), len(call.Choices[0].TokenIDs))
		}
	}
	if t.Failed() || len(view.Calls) != 2 {
		return
	}
	// The tool's output reached the model: the second prompt holds it as
	// the chat template renders a tool result.
	if prompt := sim.Detokenize(view.Calls[1].PromptTokenIDs); !strings.Contains(prompt, "<tool_response>\n"+clientOutput) {
		t.Errorf("%s: the second prompt holds no tool response with %q:\n%s", rollout, clientOutput, prompt)
	}
	if !strings.Contains(view.Calls[1].Choices[0].Text, clientOutput) {
		t.Errorf("%s: the recorded answer %q does not quote %q", rollout, view.Calls[1].Choices[0].Text, clientOutput)
	}

	var traj trajView
	if status := getJSON(t, sc.url+"/api/v1/rollouts/"+rollout+"/attempts/0/trajectories", &traj); status != http.StatusOK {
		t.Fatalf("%s: trajectories view answered %d", rollout, status)
	}
	merged := false
	for _, tr := range traj.Trajectories {
		if reflect.DeepEqual(tr.SequenceIDs, []uint64{1, 2}) && len(tr.Turns) == 2 {
			merged = true
		}
	}
	switch {
	case merged && len(traj.Drift) == 0:
		t.Logf("%s: both turns merged into one trajectory", rollout)
	case !merged && len(traj.Drift) == 1 && traj.Drift[0].SequenceID == 2 && traj.Drift[0].ParentSequenceID == 1 && knownDriftCause(traj.Drift[0].Cause):
		d := traj.Drift[0]
		t.Logf("%s: the second turn drifted (%s) at token %d: expected %v, got %v", rollout, d.Cause, d.At, deref(d.ExpectedText), deref(d.GotText))
	default:
		t.Errorf("%s: the two turns neither merged nor drifted with a cause: %+v", rollout, traj)
	}
}

func knownDriftCause(cause string) bool {
	switch cause {
	case "think_stripped", "tool_call_reserialized", "eos_rerendered", "retokenized", "other":
		return true
	}
	return false
}

// The official Anthropic TypeScript SDK, as an agent uses it against
// tokentap: two conversations through POST /v1/messages, one with JSON
// answers (messages.create) and one streamed (messages.stream), each a
// tool round trip. The agent gets what an Anthropic server would send, and
// every call is recorded with its token IDs, as dialect anthropic.messages.
func TestAnthropicSDK(t *testing.T) {
	clients := npmClients(t)
	began := time.Now()
	const requested = "claude-sonnet-4-5"
	sim, sc := startDialect(t, "claude-*", "v1/messages",
		`{"model":"claude-probe","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`)
	run := runNodeAgent(t, clients, "anthropic.mjs", []string{"MODEL=" + requested},
		sc.url+"/rollout/anthropic-json/attempt/0", sc.url+"/rollout/anthropic-stream/attempt/0")

	if !checkConversations(t, "messages.create", "messages.stream", run) {
		return
	}
	// The stream is Anthropic's event sequence, tool input as
	// input_json_delta and text as text_delta.
	wantEvents := [][]string{
		{"message_start", "content_block_start", "content_block_delta:input_json_delta", "content_block_stop", "message_delta", "message_stop"},
		{"message_start", "content_block_start", "content_block_delta:text_delta", "content_block_stop", "message_delta", "message_stop"},
	}
	for i, turn := range run.Stream.Turns {
		if !reflect.DeepEqual(turn.Events, wantEvents[i]) {
			t.Errorf("stream turn %d: events %v, want %v", i+1, turn.Events, wantEvents[i])
		}
	}
	checkRecorded(t, sc, sim, "anthropic-json", "anthropic.messages", requested, false, run.JSON)
	checkRecorded(t, sc, sim, "anthropic-stream", "anthropic.messages", requested, true, run.Stream)
	t.Logf("TestAnthropicSDK took %s", time.Since(began).Round(time.Millisecond))
}

// The official OpenAI TypeScript SDK on the Responses API, as an agent uses
// it against tokentap: a JSON conversation whose second turn names only
// previous_response_id (tokentap resolves the history from its store) and a
// streamed one that sends the whole input again (as the Codex CLI does),
// each a function-call round trip, recorded as dialect openai.responses.
func TestOpenAIResponsesSDK(t *testing.T) {
	clients := npmClients(t)
	began := time.Now()
	const requested = "gpt-5"
	sim, sc := startDialect(t, "gpt-*", "v1/responses", `{"model":"gpt-probe","input":"hi","max_output_tokens":1}`)
	run := runNodeAgent(t, clients, "responses.mjs", []string{"MODEL=" + requested},
		sc.url+"/rollout/responses-json/attempt/0/v1", sc.url+"/rollout/responses-stream/attempt/0/v1")

	if !checkConversations(t, "responses.create", "responses.create stream", run) {
		return
	}
	// The events Codex acts on: created first, the item done before
	// completed, completed last.
	for i, turn := range run.Stream.Turns {
		ev := turn.Events
		done := slices.Index(ev, "response.output_item.done")
		if len(ev) < 3 || ev[0] != "response.created" || ev[len(ev)-1] != "response.completed" || done < 0 {
			t.Errorf("stream turn %d: events %v", i+1, ev)
		}
	}
	if want := []string{"response.output_text.delta"}; !slices.Contains(run.Stream.Turns[1].Events, want[0]) {
		t.Errorf("stream turn 2: events %v, want %v among them", run.Stream.Turns[1].Events, want)
	}
	checkRecorded(t, sc, sim, "responses-json", "openai.responses", requested, false, run.JSON)
	checkRecorded(t, sc, sim, "responses-stream", "openai.responses", requested, true, run.Stream)
	t.Logf("TestOpenAIResponsesSDK took %s", time.Since(began).Round(time.Millisecond))
}
