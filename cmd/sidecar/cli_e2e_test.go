package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The test in this file runs the real agent CLIs, Claude Code (claude -p)
// and the Codex CLI (codex exec), installed by scripts/npm-clients.sh, each
// for a session against the built sidecar with --demo: the demo model calls
// the CLI's shell tool with the backticked command, the CLI runs it, and the
// model answers quoting its output.

// cliPrompt is what the user asks each CLI.
const cliPrompt = "Run `" + clientCommand + "` and tell me what it printed."

// agentCLI is one harness: how to run it at a rollout's base URL, and what
// its calls look like in the calls view.
type agentCLI struct {
	name      string
	dialect   string
	shellTool string // the tool the demo model must call
	requested string // the model name the CLI sends (a prefix)
	// command returns the CLI's command line for a session at base (the
	// rollout base URL, without /v1), with home as its HOME.
	command func(t *testing.T, clients, base, home string) (args []string, env []string)
}

// claudeCode runs claude -p with args added; env adds to its environment.
func claudeCode(args []string, env ...string) func(t *testing.T, clients, base, home string) ([]string, []string) {
	return func(t *testing.T, clients, base, home string) ([]string, []string) {
		return append([]string{filepath.Join(clients, "node_modules", ".bin", "claude"), "-p", cliPrompt, "--allowedTools", "Bash"}, args...),
			append([]string{
				"ANTHROPIC_BASE_URL=" + base,
				"ANTHROPIC_AUTH_TOKEN=tokentap-test",
				// Claude Code asks for 128,000 output tokens, more than the
				// served context leaves: the README's setting for a
				// 128k-context model.
				"CLAUDE_CODE_MAX_OUTPUT_TOKENS=32000",
				"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
			}, env...)
	}
}

var agentCLIs = []agentCLI{
	// Its default model, with adaptive thinking and output_config.effort.
	{name: "claude", dialect: "anthropic.messages", shellTool: "Bash", requested: "claude-", command: claudeCode(nil)},
	// A model that takes a thinking budget (thinking.type "enabled",
	// budget_tokens) and a first user message that opens with system
	// reminders quoting code in backticks.
	{name: "claude-budget", dialect: "anthropic.messages", shellTool: "Bash", requested: "claude-sonnet-4-5",
		command: claudeCode([]string{"--model", "claude-sonnet-4-5"}, "MAX_THINKING_TOKENS=8000")},
	{
		name: "codex", dialect: "openai.responses", shellTool: "exec_command", requested: "gpt-5",
		command: func(t *testing.T, clients, base, home string) ([]string, []string) {
			codexHome := filepath.Join(home, ".codex")
			config := fmt.Sprintf(`model = "gpt-5"
model_provider = "tokentap"

[model_providers.tokentap]
name = "tokentap"
base_url = %q
wire_api = "responses"
`, base+"/v1")
			if err := os.MkdirAll(codexHome, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(codexHome, "config.toml"), []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{filepath.Join(clients, "node_modules", ".bin", "codex"), "exec", "--skip-git-repo-check",
					"-c", "analytics.enabled=false", cliPrompt},
				[]string{"CODEX_HOME=" + codexHome}
		},
	},
}

// cliDrift says, per template and CLI, which cause the drift of the
// session's second call must name; a pair not listed must merge into one
// trajectory. Under Qwen3 the model samples "</think>\n\n<tool_call>",
// vLLM's parsers return the "\n\n" as the message's content, Codex sends
// that message back as history, and Qwen3's template writes "\n" before a
// tool call that follows content (reference/trajectories.md §3.7). Claude
// Code drops whitespace-only text blocks (Anthropic's API refuses them), so
// its history renders as sampled.
var cliDrift = map[string]string{
	"qwen3/codex": "tool_call_reserialized",
}

// TestAgentCLISessions runs each CLI for one shell round trip through
// sidecar --demo under each demo template, and checks what the user sees
// (exit code 0, the command's output quoted), that every call of the
// session was recorded in the CLI's dialect with valid token IDs, the
// model mapped, the shell tool called with the command and its output in
// the next prompt, and that the session's calls merged into one trajectory
// or drifted for the cause cliDrift names.
func TestAgentCLISessions(t *testing.T) {
	clients := npmClients(t)
	for _, template := range []struct{ name, model string }{
		{"qwen2.5", "Qwen/Qwen2.5-1.5B-Instruct"},
		{"qwen3", "Qwen/Qwen3-8B"},
	} {
		t.Run(template.name, func(t *testing.T) {
			sc := start(t, "--demo", "--demo-template", template.name, "--in-memory",
				"--model-map", "claude-*="+template.model, "--model-map", "gpt-*="+template.model)
			for _, cli := range agentCLIs {
				t.Run(cli.name, func(t *testing.T) {
					rollout := cli.name + "-" + strings.ReplaceAll(template.name, ".", "")
					out := runCLI(t, cli, clients, sc.url+"/rollout/"+rollout+"/attempt/0")
					if !strings.Contains(out, clientOutput) {
						t.Errorf("%s printed no %q:\n%s", cli.name, clientOutput, out)
					}
					checkCLISession(t, sc, cli, rollout, template.model, cliDrift[template.name+"/"+cli.name])
				})
			}
		})
	}
}

// runCLI runs one session of cli at base in an empty HOME and working
// directory, with none of this machine's environment but PATH, and returns
// its standard output; a non-zero exit fails the test.
func runCLI(t *testing.T, cli agentCLI, clients, base string) string {
	t.Helper()
	home, work := t.TempDir(), t.TempDir()
	args, env := cli.command(t, clients, base, home)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = work
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TERM=dumb"}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v (after %s)\nstdout:\n%s\nstderr:\n%s", cli.name, err, time.Since(began).Round(time.Millisecond), stdout.String(), stderr.String())
	}
	t.Logf("%s session took %s; it printed %q", cli.name, time.Since(began).Round(time.Millisecond), strings.TrimSpace(stdout.String()))
	return stdout.String()
}

func checkCLISession(t *testing.T, sc *sidecar, cli agentCLI, rollout, served, wantDrift string) {
	t.Helper()
	var view dialectCalls
	if status := getJSON(t, sc.url+"/api/v1/rollouts/"+rollout+"/attempts/0/calls", &view); status != http.StatusOK {
		t.Fatalf("calls view answered %d", status)
	}
	// A session is the tool call and the answer; a CLI that adds side calls
	// (titles, summaries) would show here and must be recorded alike.
	if len(view.Calls) != 2 {
		t.Fatalf("%d calls recorded, want 2 (the tool call, then the answer): %+v", len(view.Calls), view.Calls)
	}
	for i, c := range view.Calls {
		if c.SequenceID != uint64(i+1) || c.Status != "ok" || c.HTTPStatus != http.StatusOK || c.Error != nil {
			t.Errorf("call %d: sequence %d, status %q, http %d, error %v", i+1, c.SequenceID, c.Status, c.HTTPStatus, deref(c.Error))
		}
		if c.Dialect != cli.dialect || !c.Stream || c.Model != served || !strings.HasPrefix(c.RequestedModel, cli.requested) {
			t.Errorf("call %d: dialect %q, stream %v, model %q requested as %q; want %q, a stream, %q requested as %s…",
				i+1, c.Dialect, c.Stream, c.Model, c.RequestedModel, cli.dialect, served, cli.requested)
		}
		if !c.TokenIDsValid || len(c.PromptTokenIDs) == 0 || len(c.Choices) != 1 || len(c.Choices[0].TokenIDs) == 0 {
			t.Fatalf("call %d: token_ids_valid %v (problem %v), %d prompt IDs, %d choices",
				i+1, c.TokenIDsValid, deref(c.TokenIDsProblem), len(c.PromptTokenIDs), len(c.Choices))
		}
	}
	first, second := view.Calls[0], view.Calls[1]
	// The harness's own system prompt and tools reached the model whole:
	// Claude Code's first prompt is ~13k tokens, Codex's ~5k.
	if len(first.PromptTokenIDs) < 2000 {
		t.Errorf("the first prompt has %d tokens: the harness's system prompt and tools did not reach the model", len(first.PromptTokenIDs))
	}
	calls := first.Choices[0].ToolCalls
	if len(calls) != 1 || calls[0].Function.Name != cli.shellTool || !strings.Contains(calls[0].Function.Arguments, clientCommand) {
		t.Errorf("the first answer's tool calls are %+v, want one %s call running %q", calls, cli.shellTool, clientCommand)
	}
	if prompt := detokenize(t, sc, second.PromptTokenIDs); !strings.Contains(prompt, "<tool_response>") || !strings.Contains(prompt, clientOutput) {
		t.Errorf("the second prompt holds no tool response with %q (its last 600 bytes: %q)", clientOutput, prompt[max(0, len(prompt)-600):])
	}
	if !strings.Contains(second.Choices[0].Text, clientOutput) {
		t.Errorf("the recorded answer %q does not quote %q", second.Choices[0].Text, clientOutput)
	}

	var traj trajView
	if status := getJSON(t, sc.url+"/api/v1/rollouts/"+rollout+"/attempts/0/trajectories", &traj); status != http.StatusOK {
		t.Fatalf("trajectories view answered %d", status)
	}
	if wantDrift == "" {
		if len(traj.Trajectories) != 1 || !reflect.DeepEqual(traj.Trajectories[0].SequenceIDs, []uint64{1, 2}) || len(traj.Drift) != 0 {
			t.Errorf("the session did not merge into one trajectory of calls 1 and 2: %+v", traj)
		}
		return
	}
	if len(traj.Drift) != 1 {
		t.Fatalf("%d drift entries, want one (%s): %+v", len(traj.Drift), wantDrift, traj)
	}
	d := traj.Drift[0]
	if d.SequenceID != 2 || d.ParentSequenceID != 1 || d.Cause != wantDrift || d.ExpectedText == nil || d.GotText == nil {
		t.Errorf("drift %+v (expected %q, got %q), want call 2 continuing call 1 with cause %s and both texts",
			d, deref(d.ExpectedText), deref(d.GotText), wantDrift)
	}
	t.Logf("call 2 drifted (%s) at token %d: expected %q, got %q", d.Cause, d.At, deref(d.ExpectedText), deref(d.GotText))
}

// detokenize decodes ids with the demo upstream's /detokenize, which
// tokentap forwards untraced.
func detokenize(t *testing.T, sc *sidecar, ids []int64) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"tokens": ids})
	status, answer := postJSON(t, sc.url+"/detokenize", string(body))
	var out struct {
		Prompt string `json:"prompt"`
	}
	if err := json.Unmarshal(answer, &out); status != http.StatusOK || err != nil {
		t.Fatalf("detokenize: %d %s (%v)", status, answer, err)
	}
	return out.Prompt
}
