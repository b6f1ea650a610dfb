package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tokentap/tokentap/internal/qwen3"
	"github.com/tokentap/tokentap/internal/vllmsim"
)

// The trajectories view against the simulator in real mode: the real Qwen3
// tokenizer and chat template (internal/qwen3), vLLM's qwen3 reasoning and
// hermes tool parsers, served as Qwen/Qwen3-8B. The sim's Model is the
// Qwen3 name rather than simModel (Qwen2.5's), so that what the agent asks
// for, what the calls record and what the sidecar's /detokenize requests
// name is the model these IDs belong to; runAgent hardwires simModel, hence
// realAgent below.

const realModel = "Qwen/Qwen3-8B"

var loadQwen3 = sync.OnceValues(func() (*qwen3.Model, error) {
	return qwen3.Load(os.Getenv("QWEN3_TOKENIZER_DIR"))
})

// qwen3Model is the tokenizer scripts/qwen3-tokenizer.sh dumps. As in
// internal/qwen3's tests, the test skips when QWEN3_TOKENIZER_DIR is unset
// (.ci/run sets it, so CI runs these) and fails when it cannot be loaded.
func qwen3Model(t *testing.T) *qwen3.Model {
	t.Helper()
	if os.Getenv("QWEN3_TOKENIZER_DIR") == "" {
		t.Skip("QWEN3_TOKENIZER_DIR unset: run QWEN3_TOKENIZER_DIR=$(scripts/qwen3-tokenizer.sh)")
	}
	m, err := loadQwen3()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newRealSim(t *testing.T) (*httptest.Server, *qwen3.Model) {
	t.Helper()
	m := qwen3Model(t)
	return newSim(t, vllmsim.Options{Model: realModel, Template: "qwen3", Tokenizer: m, ChatTemplate: m, AgentPolicy: vllmsim.DemoPolicy}), m
}

// realAgent is a tool-using agent on the official OpenAI Go SDK. Its
// history is what ToParam makes of each answer (which drops the reasoning
// vLLM returned), unless it echoes the reasoning back in vLLM's
// "reasoning" field or leaves out content that is only whitespace.
type realAgent struct {
	echoReasoning bool
	dropBlank     bool
}

// run asks each question in turn in one conversation, runs the tool calls
// the model makes and sends the results back until it answers; every
// second call streams. It returns the number of calls.
func (a realAgent) run(t *testing.T, base string, questions ...string) int {
	t.Helper()
	client := openai.NewClient(option.WithBaseURL(base), option.WithAPIKey("sk-agent"), option.WithMaxRetries(0))
	ctx := context.Background()
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You are a helpful assistant.")}
	calls := 0
	for _, q := range questions {
		msgs = append(msgs, openai.UserMessage(q))
		for turn := 0; ; turn++ {
			params := openai.ChatCompletionNewParams{Model: realModel, Messages: msgs, Tools: []openai.ChatCompletionToolUnionParam{searchTool}, MaxTokens: openai.Int(200), Logprobs: openai.Bool(true)}
			var msg openai.ChatCompletionMessage
			var reasoning string
			if calls%2 == 1 {
				stream := client.Chat.Completions.NewStreaming(ctx, params)
				var acc openai.ChatCompletionAccumulator
				for stream.Next() {
					ch := stream.Current()
					acc.AddChunk(ch)
					if len(ch.Choices) > 0 {
						reasoning += extraString(t, ch.Choices[0].Delta.JSON.ExtraFields["reasoning"].Raw())
					}
				}
				if err := stream.Err(); err != nil {
					t.Fatalf("call %d: %v", calls+1, err)
				}
				msg = acc.Choices[0].Message
			} else {
				resp, err := client.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatalf("call %d: %v", calls+1, err)
				}
				msg = resp.Choices[0].Message
				reasoning = extraString(t, msg.JSON.ExtraFields["reasoning"].Raw())
			}
			calls++
			if reasoning == "" {
				t.Fatalf("call %d: no reasoning: the model thinks before it answers", calls)
			}
			p := msg.ToAssistantMessageParam()
			if a.dropBlank && strings.TrimSpace(msg.Content) == "" {
				p.Content = openai.ChatCompletionAssistantMessageParamContentUnion{}
			}
			if a.echoReasoning {
				p.SetExtraFields(map[string]any{"reasoning": reasoning})
			}
			msgs = append(msgs, openai.ChatCompletionMessageParamUnion{OfAssistant: &p})
			if len(msg.ToolCalls) == 0 || turn >= 3 {
				break
			}
			for _, tc := range msg.ToolCalls {
				msgs = append(msgs, openai.ToolMessage("Paris is the capital of France.", tc.ID))
			}
		}
	}
	return calls
}

// extraString reads a string field the SDK does not declare ("" when
// absent or null).
func extraString(t *testing.T, raw string) string {
	t.Helper()
	if raw == "" || raw == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf("reasoning %s: %v", raw, err)
	}
	return s
}

// oneToken is the single Qwen3 token of text.
func oneToken(t *testing.T, m *qwen3.Model, text string) int64 {
	t.Helper()
	ids := m.Encode(text)
	if len(ids) != 1 {
		t.Fatalf("%q is %v, not one token", text, ids)
	}
	return ids[0]
}

// realCall is what the calls view says of one call.
type realCall struct {
	callIDs
	Model string `json:"model"`
}

// Through the built binary, agents on the official OpenAI SDK run
// multi-turn tool calls against the real-mode Qwen3 simulator. Each case
// names where every call's prompt leaves the previous call's context
// C = prompt ++ token_ids with the real BPE, and the cause the drift
// diagnosis gives it; the drift entry's at is that first differing index,
// and its windows are decoded by the simulator's /detokenize.
func TestTrajectoriesRealQwen3(t *testing.T) {
	sim, m := newRealSim(t)
	sc := start(t, "--upstream", sim.URL, "--in-memory")

	nl, nl4 := oneToken(t, m, "\n"), oneToken(t, m, "\n\n\n\n")
	endThink := oneToken(t, m, "</think>")
	// breaks says where call k+1's prompt leaves call k's context: at is
	// at offset into call k's response (-1: the last prompt token), with
	// C[at] = ctx and P[at] = got.
	type brk struct {
		offset   func(resp []int64) int
		ctx, got int64
		cause    string
	}
	// The SDK's history has no reasoning, and the assistant turn is
	// rendered "<|im_start|>assistant\n" + content "\n\n" (what the hermes
	// parser left before <tool_call>) + "\n" before the call: "\n\n\n\n",
	// one BPE token that swallows the prompt's own last "\n" (198). So the
	// prompts part one token before the response: a re-split at the
	// boundary, diagnosed think_stripped since the context's text from
	// there is "\n<think>…" (trajectories.md §3.3 with §3.6a).
	toolLoopDropped := brk{func([]int64) int { return -1 }, nl, nl4, "think_stripped"}
	// A new user query: the template drops the reasoning of the answer
	// before it (§3.2). That answer's content is what the reasoning parser
	// left after </think>: "\n\nThe answer is …", so the turn renders as
	// "assistant\n" + "\n\nThe…" and "\n\n\n" is again one token with the
	// prompt's last "\n": one token earlier than §3.2's d = len(P1), whose
	// client sent the content without the newlines.
	newQuery := brk{func([]int64) int { return -1 }, nl, oneToken(t, m, "\n\n\n"), "think_stripped"}
	cases := []struct {
		name      string
		agent     realAgent
		questions []string
		breaks    []brk // one per call after the first; nil entry: it extends
	}{
		{
			name:      "the SDK drops reasoning",
			questions: []string{"What is the capital of France?", "Who wrote Hamlet?"},
			breaks:    []brk{toolLoopDropped, newQuery, toolLoopDropped},
		},
		{
			// With the reasoning back the think block renders as sampled,
			// but content "\n\n" is still there: the template writes it
			// lstripped after "</think>\n\n" and then "\n" before the call
			// (the content is not empty), so "\n\n" (271) after </think>
			// comes back as "\n\n\n" (1406). The reasoning is intact and
			// both sides go on with <tool_call>: the diagnosis calls it
			// tool_call_reserialized, the "(loop.first and content)" of
			// trajectories.md §3.7 (Codex sessions drift so under Qwen3).
			name:      "reasoning echoed, whitespace content kept",
			agent:     realAgent{echoReasoning: true},
			questions: []string{"Who wrote Hamlet?"},
			breaks: []brk{{func(r []int64) int { return slices.Index(r, endThink) + 1 },
				oneToken(t, m, "\n\n"), oneToken(t, m, "\n\n\n"), "tool_call_reserialized"}},
		},
		{
			// Nothing is lost: the next prompt is C plus what the template
			// and the tool added.
			name:      "reasoning echoed, blank content left out",
			agent:     realAgent{echoReasoning: true, dropBlank: true},
			questions: []string{"Who wrote Hamlet?"},
			breaks:    []brk{{}},
		},
		{
			// DemoPolicy samples this question's call in compact JSON
			// ({"name":"search",…}); hermes returns json.dumps of the
			// arguments and the template writes {"name": "search", …}
			// with tojson's spacing: the prompts part inside the call, at
			// `":"` (3252) against `":` (788) (trajectories.md §3.7).
			name:      "reasoning echoed, compact tool call",
			agent:     realAgent{echoReasoning: true, dropBlank: true},
			questions: []string{"What is the capital of France?"},
			breaks: []brk{{func(r []int64) int { return slices.Index(r, oneToken(t, m, `":"`)) },
				oneToken(t, m, `":"`), oneToken(t, m, `":`), "tool_call_reserialized"}},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rid := "real-" + string(rune('a'+i))
			base := sc.url + "/rollout/" + rid + "/attempt/0"
			n := tc.agent.run(t, base+"/v1", tc.questions...)
			if n != len(tc.breaks)+1 {
				t.Fatalf("%d calls, want %d", n, len(tc.breaks)+1)
			}
			if status, b := postJSON(t, base+"/complete", ""); status != 200 {
				t.Fatalf("complete: %d %s", status, b)
			}
			var calls struct {
				Calls []realCall `json:"calls"`
			}
			getJSON(t, sc.url+"/api/v1/rollouts/"+rid+"/attempts/0/calls", &calls)
			var v trajView
			if status := getJSON(t, sc.url+"/api/v1/rollouts/"+rid+"/attempts/0/trajectories", &v); status != 200 || !v.Complete {
				t.Fatalf("trajectories view: %d, complete %v", status, v.Complete)
			}
			if len(calls.Calls) != n {
				t.Fatalf("%d calls recorded, %d made", len(calls.Calls), n)
			}
			drifts := 0
			for k, b := range tc.breaks {
				prev, next := calls.Calls[k], calls.Calls[k+1]
				resp := prev.Choices[0].TokenIDs
				ctx := slices.Concat(prev.PromptTokenIDs, resp)
				at := 0
				for at < min(len(ctx), len(next.PromptTokenIDs)) && ctx[at] == next.PromptTokenIDs[at] {
					at++
				}
				if b.offset == nil {
					if at != len(ctx) {
						t.Errorf("call %d does not extend call %d: they part at %d of %d", next.SequenceID, prev.SequenceID, at, len(ctx))
					}
					continue
				}
				if want := len(prev.PromptTokenIDs) + b.offset(resp); at != want || ctx[at] != b.ctx || next.PromptTokenIDs[at] != b.got {
					t.Fatalf("call %d leaves call %d's context at %d (C %d, P %d), want %d (C %d, P %d)",
						next.SequenceID, prev.SequenceID, at, ctx[at], next.PromptTokenIDs[at], want, b.ctx, b.got)
				}
				if drifts >= len(v.Drift) {
					t.Fatalf("no drift entry for call %d: %+v", next.SequenceID, v.Drift)
				}
				d := v.Drift[drifts]
				drifts++
				if d.SequenceID != next.SequenceID || d.ParentSequenceID != prev.SequenceID || d.At != at || d.Cause != b.cause {
					t.Errorf("drift of call %d: parent %d at %d cause %s; want parent %d at %d cause %s",
						d.SequenceID, d.ParentSequenceID, d.At, d.Cause, prev.SequenceID, at, b.cause)
				}
				ws := max(0, at-8)
				if !slices.Equal(d.Expected, ctx[ws:min(len(ctx), at+8)]) || !slices.Equal(d.Got, next.PromptTokenIDs[ws:min(len(next.PromptTokenIDs), at+8)]) {
					t.Errorf("drift of call %d: windows %v / %v", d.SequenceID, d.Expected, d.Got)
				}
				if d.ExpectedText == nil || *d.ExpectedText != m.Decode(d.Expected) || d.GotText == nil || *d.GotText != m.Decode(d.Got) {
					t.Errorf("drift of call %d: texts %q / %q, want the Qwen3 decoding %q / %q", d.SequenceID, deref(d.ExpectedText), deref(d.GotText), m.Decode(d.Expected), m.Decode(d.Got))
				}
			}
			if drifts != len(v.Drift) {
				t.Errorf("%d drift entries, want %d: %+v", len(v.Drift), drifts, v.Drift)
			}
			for _, c := range calls.Calls {
				if c.Model != realModel {
					t.Errorf("call %d recorded model %q", c.SequenceID, c.Model)
				}
			}
			// Every drifted call starts a trajectory; the others extend one.
			if len(v.Trajectories) != drifts+1 {
				t.Fatalf("%d trajectories for %d drifted calls", len(v.Trajectories), drifts)
			}
			if drifts == 0 {
				tr := v.Trajectories[0]
				first, second := calls.Calls[0], calls.Calls[1]
				ctxLen := len(first.PromptTokenIDs) + len(first.Choices[0].TokenIDs)
				want := slices.Concat(first.Choices[0].TokenIDs, second.PromptTokenIDs[ctxLen:], second.Choices[0].TokenIDs)
				if !slices.Equal(tr.PromptIDs, first.PromptTokenIDs) || !slices.Equal(tr.ResponseIDs, want) || len(tr.Turns) != 2 {
					t.Errorf("merged trajectory: %d prompt ids, %d response ids (want %d), %d turns", len(tr.PromptIDs), len(tr.ResponseIDs), len(want), len(tr.Turns))
				}
				// What lies between the turns: <|im_end|>'s "\n", the tool
				// result in a user turn, the generation prompt.
				obs := second.PromptTokenIDs[ctxLen:]
				if obs[0] != nl || !slices.Contains(obs, oneToken(t, m, "<tool_response>")) || !slices.Equal(obs[len(obs)-3:], m.Encode("<|im_start|>assistant\n")) {
					t.Errorf("observation %q", m.Decode(obs))
				}
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
