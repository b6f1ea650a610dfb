package intercept

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/upstream"
)

// The Anthropic Messages dialect through tokentap: what the agent gets is
// exactly what package anthropic makes of the simulated vLLM's chat answer
// to the translated request, and the record is that chat call, IDs and
// all, with dialect anthropic.messages.

// signature matches the random signature of a thinking block (uuid4 hex),
// the one part of a Messages answer drawn at random.
var signature = regexp.MustCompile(`"signature":"[0-9a-f]{32}"`)

func unsign(b []byte) []byte { return signature.ReplaceAll(b, []byte(`"signature":"<sig>"`)) }

// newMessagesRig is newRig with --model-map rules.
func newMessagesRig(t *testing.T, o rigOptions, modelMap ...string) *rig {
	t.Helper()
	r := newRig(t, o)
	for _, m := range modelMap {
		rule, err := tokenids.ParseModelRule(m)
		if err != nil {
			t.Fatal(err)
		}
		r.proxy.cfg.ModelMap = append(r.proxy.cfg.ModelMap, rule) // before any request
	}
	return r
}

// messagesWant is what the agent must get for an Anthropic body, and the
// IDs the record must hold: the translator's chat request sent to the
// simulator directly (body must name the served model), its answer
// translated back, and the same request with return_token_ids (and
// logprobs) read by the extractor.
func messagesWant(t *testing.T, r *rig, body, requestID string, logprobs bool) (answer []byte, ids tokenids.Result) {
	t.Helper()
	var tr anthropic.Translator
	areq, err := tr.Messages([]byte(body))
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	status, _, chat := post(t, r.sim.URL, chatPath, string(areq.Chat), "X-Request-Id", requestID)
	if status != http.StatusOK {
		t.Fatalf("the simulator answered the translated request %d: %s", status, chat)
	}
	if areq.Stream {
		s := areq.NewStream()
		er := tokenids.NewEventReader(bytes.NewReader(chat), 1<<20)
		for {
			ev, err := er.Next()
			if err != nil {
				break
			}
			answer = s.AppendEvent(answer, ev.Data)
		}
		answer = s.AppendEnd(answer)
	} else if answer, err = areq.Answer(chat); err != nil {
		t.Fatalf("translate the answer: %v", err)
	}
	withIDs := withTokenIDs(string(areq.Chat))
	if logprobs {
		withIDs = strings.TrimSuffix(withIDs, "}") + `,"logprobs":true}`
	}
	_, _, chatIDs := post(t, r.sim.URL, chatPath, withIDs, "X-Request-Id", requestID)
	return answer, parseAnswer(t, tokenids.Chat, withIDs, chatIDs)
}

// events splits an SSE stream into its events.
func events(b []byte) []string {
	var out []string
	for _, ev := range strings.Split(string(b), "\n\n") {
		if ev != "" {
			out = append(out, ev+"\n\n")
		}
	}
	return out
}

// isAnthropicError reports whether body is {"type":"error","error":{"type":typ,"message":...}}.
func isAnthropicError(body []byte, typ string) bool {
	var e struct {
		Type  string `json:"type"`
		Error struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Type == "error" && e.Error.Type == typ && e.Error.Message != ""
}

const (
	bashTool    = `[{"name":"Bash","description":"Run a shell command","input_schema":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}]`
	claudeModel = "claude-sonnet-4-5"
)

func TestMessagesAnswers(t *testing.T) {
	ask := `"messages":[{"role":"user","content":"Say hi"}]`
	tests := []struct {
		name        string
		sim         vllmsim.Options
		logprobs    bool
		path        string // after /rollout/<rid>/attempt/0, or the whole path for headers
		headers     []string
		modelMap    []string
		body        string // with MODEL for the model the agent names
		agentsModel string
		// thinking: the answer must hold a thinking block.
		thinking, toolUse bool
	}{
		{name: "json", path: "/v1/messages", body: `{"model":MODEL,"max_tokens":64,` + ask + `}`},
		{name: "stream", path: "/v1/messages", body: `{"model":MODEL,"max_tokens":64,"stream":true,` + ask + `}`},
		{name: "stream beta query", path: "/v1/messages?beta=true", body: `{"model":MODEL,"max_tokens":64,"stream":true,` + ask + `}`},
		{name: "json logprobs", logprobs: true, path: "/v1/messages", body: `{"model":MODEL,"max_tokens":64,"system":[{"type":"text","text":"You are terse."}],` + ask + `}`},
		{name: "stream logprobs", logprobs: true, path: "/v1/messages", body: `{"model":MODEL,"max_tokens":64,"stream":true,` + ask + `}`},
		{name: "header fallback", path: "/v1/messages?beta=true", headers: []string{"X-Rollout-Id", "hdr"}, body: `{"model":MODEL,"max_tokens":32,"stream":true,` + ask + `}`},
		{name: "model map and x-api-key", path: "/v1/messages?beta=true", modelMap: []string{"claude-*=" + model}, agentsModel: claudeModel,
			headers: []string{"X-Api-Key", "sk-ant-agent", "Anthropic-Version", "2023-06-01", "Anthropic-Beta", "claude-code-20250219"},
			body:    `{"model":MODEL,"max_tokens":32,"stream":true,` + ask + `}`},
		{name: "stop sequence", path: "/v1/messages", body: `{"model":MODEL,"max_tokens":40,"stop_sequences":["the"],"messages":[{"role":"user","content":"Search"}]}`},
		{name: "max tokens", path: "/v1/messages", body: `{"model":MODEL,"max_tokens":2,"stream":true,` + ask + `}`},
		{name: "tool use json", sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}, toolUse: true, path: "/v1/messages",
			body: `{"model":MODEL,"max_tokens":256,"tools":` + bashTool + `,"messages":[{"role":"user","content":"List the files with ` + "`ls -la`" + `"}]}`},
		{name: "tool use stream", sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}, toolUse: true, path: "/v1/messages?beta=true",
			body: `{"model":MODEL,"max_tokens":256,"stream":true,"tools":` + bashTool + `,"messages":[{"role":"user","content":"List the files with ` + "`ls -la`" + `"}]}`},
		{name: "qwen3 thinking json", sim: vllmsim.Options{Template: vllmsim.TemplateQwen3, Model: "Qwen/Qwen3-8B"}, thinking: true, path: "/v1/messages",
			body: `{"model":MODEL,"max_tokens":256,` + ask + `}`},
		{name: "qwen3 thinking stream", sim: vllmsim.Options{Template: vllmsim.TemplateQwen3, Model: "Qwen/Qwen3-8B"}, thinking: true, logprobs: true, path: "/v1/messages",
			body: `{"model":MODEL,"max_tokens":256,"stream":true,` + ask + `}`},
		// What Claude Code sends on every request: effort high, adaptive thinking.
		{name: "qwen3 claude code thinking and tool stream", sim: vllmsim.Options{Template: vllmsim.TemplateQwen3, Model: "Qwen/Qwen3-8B", AgentPolicy: vllmsim.DemoPolicy},
			thinking: true, toolUse: true, path: "/v1/messages?beta=true",
			body: `{"model":MODEL,"max_tokens":1024,"stream":true,"output_config":{"effort":"high"},"thinking":{"type":"adaptive","display":"omitted"},` +
				`"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.160; cch=1;"},{"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],` +
				`"tools":` + bashTool + `,"messages":[{"role":"user","content":"Run ` + "`pwd`" + ` please"}]}`},
		{name: "qwen3 thinking disabled", sim: vllmsim.Options{Template: vllmsim.TemplateQwen3, Model: "Qwen/Qwen3-8B"}, path: "/v1/messages",
			body: `{"model":MODEL,"max_tokens":256,"thinking":{"type":"disabled"},` + ask + `}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newMessagesRig(t, rigOptions{sim: tt.sim, logprobs: tt.logprobs}, tt.modelMap...)
			served := tt.sim.Model
			if served == "" {
				served = model
			}
			agents := tt.agentsModel
			if agents == "" {
				agents = served
			}
			body := strings.Replace(tt.body, "MODEL", `"`+agents+`"`, 1)
			want, wantIDs := messagesWant(t, r, strings.Replace(tt.body, "MODEL", `"`+served+`"`, 1), "m1", tt.logprobs)

			key := rollout.Key{RolloutID: "m", AttemptID: "0"}
			path := "/rollout/m/attempt/0" + tt.path
			if len(tt.headers) > 0 && tt.headers[0] == "X-Rollout-Id" {
				key, path = rollout.Key{RolloutID: tt.headers[1], AttemptID: "0"}, tt.path
			}
			status, header, got := post(t, r.front.URL, path, body, append([]string{"X-Request-Id", "m1"}, tt.headers...)...)
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, got)
			}
			stream := strings.Contains(tt.body, `"stream":true`)
			if stream {
				if ct, cl := header.Get("Content-Type"), header.Get("Content-Length"); ct != "text/event-stream" || cl != "" {
					t.Errorf("stream headers: Content-Type %q Content-Length %q", ct, cl)
				}
				g, w := events(unsign(got)), events(unsign(want))
				if len(g) != len(w) {
					t.Errorf("%d events, want %d\n got %s\nwant %s", len(g), len(w), got, want)
				}
				for i := range min(len(g), len(w)) {
					if g[i] != w[i] {
						t.Errorf("event %d\n got %q\nwant %q", i, g[i], w[i])
					}
				}
				if !strings.HasPrefix(string(got), "event: message_start\n") || !strings.HasSuffix(string(got), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n") || bytes.Contains(got, []byte("[DONE]")) {
					t.Errorf("not a whole Messages stream: %q", got)
				}
			} else {
				if ct, cl := header.Get("Content-Type"), header.Get("Content-Length"); ct != "application/json" || cl != fmt.Sprint(len(got)) {
					t.Errorf("JSON headers: Content-Type %q Content-Length %q for %d bytes", ct, cl, len(got))
				}
				if !bytes.Equal(unsign(got), unsign(want)) {
					t.Errorf("answer\n got %s\nwant %s", got, want)
				}
			}
			if has := bytes.Contains(got, []byte(`"type":"thinking"`)); has != tt.thinking {
				t.Errorf("thinking block: %v, want %v: %s", has, tt.thinking, got)
			}
			if has := bytes.Contains(got, []byte(`"type":"tool_use"`)); has != tt.toolUse {
				t.Errorf("tool_use block: %v, want %v: %s", has, tt.toolUse, got)
			}
			if bytes.Contains(got, []byte("token_ids")) || bytes.Contains(got, []byte("logprobs")) {
				t.Errorf("what tokentap asked for reached the agent: %s", got)
			}

			calls := r.calls(t, key)
			if len(calls) != 1 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			c := calls[0]
			if c.Status != exporter.StatusOK || c.HTTPStatus != 200 || !c.Valid || c.Dialect != exporter.DialectAnthropicMessages ||
				c.Path != "/v1/messages" || c.Request.Endpoint != tokenids.Chat || c.Request.Stream != stream {
				t.Errorf("call = status %s http %d valid %v (%s) dialect %q path %q endpoint %v stream %v",
					c.Status, c.HTTPStatus, c.Valid, c.Problem, c.Dialect, c.Path, c.Request.Endpoint, c.Request.Stream)
			}
			if c.Request.Model != served || (tt.agentsModel != "" && c.Request.RequestedModel != tt.agentsModel) {
				t.Errorf("model %q requested %q", c.Request.Model, c.Request.RequestedModel)
			}
			if !reflect.DeepEqual(c.Response.PromptTokenIDs, wantIDs.PromptTokenIDs) || len(wantIDs.PromptTokenIDs) == 0 {
				t.Errorf("prompt IDs\n got %v\nwant %v", c.Response.PromptTokenIDs, wantIDs.PromptTokenIDs)
			}
			if len(c.Response.Choices) != 1 || len(wantIDs.Choices) != 1 {
				t.Fatalf("%d choices recorded, %d returned", len(c.Response.Choices), len(wantIDs.Choices))
			}
			ch, w := c.Response.Choices[0], wantIDs.Choices[0]
			if !reflect.DeepEqual(ch.TokenIDs, w.TokenIDs) || len(w.TokenIDs) == 0 || ch.FinishReason != w.FinishReason || ch.Text != w.Text {
				t.Errorf("choice\n got %+v\nwant %+v", ch, w)
			}
			if !reflect.DeepEqual(ch.Logprobs, w.Logprobs) || (tt.logprobs && len(ch.Logprobs) != len(ch.TokenIDs)) || (!tt.logprobs && ch.Logprobs != nil) {
				t.Errorf("logprobs %v, want %v (--logprobs %v)", ch.Logprobs, w.Logprobs, tt.logprobs)
			}
		})
	}
}

// A tool round trip as Claude Code makes it: the model calls the Bash tool
// with the backticked command, the agent sends the tool_result back, the
// model answers quoting it. Both calls are recorded, and the second one's
// prompt continues the first one's tokens exactly (the translated history
// renders back as sampled), so they merge into one trajectory.
func TestMessagesToolRoundTrip(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			r := newMessagesRig(t, rigOptions{sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}}, "claude-*="+model)
			user := `{"role":"user","content":"What is here? Run ` + "`ls`" + `."}`
			first := fmt.Sprintf(`{"model":%q,"max_tokens":512,"stream":%v,"tools":%s,"messages":[%s]}`, claudeModel, stream, bashTool, user)
			status, _, got := post(t, r.front.URL, "/rollout/tool/attempt/0/v1/messages?beta=true", first)
			if status != 200 {
				t.Fatalf("first turn: %d %s", status, got)
			}
			msg := messageOf(t, got, stream)
			if msg.StopReason != "tool_use" || len(msg.Content) != 1 || msg.Content[0].Type != "tool_use" || msg.Content[0].Name != "Bash" ||
				string(msg.Content[0].Input) != `{"command":"ls"}` || !strings.HasPrefix(msg.Content[0].ID, "chatcmpl-tool-") {
				t.Fatalf("first turn: %s", got)
			}
			assistant, _ := json.Marshal(map[string]any{"role": "assistant", "content": []any{map[string]any{
				"type": "tool_use", "id": msg.Content[0].ID, "name": "Bash", "input": json.RawMessage(msg.Content[0].Input)}}})
			result := fmt.Sprintf(`{"role":"user","content":[{"type":"tool_result","tool_use_id":%q,"content":"a.txt\nb.txt"}]}`, msg.Content[0].ID)
			second := fmt.Sprintf(`{"model":%q,"max_tokens":512,"stream":%v,"tools":%s,"messages":[%s,%s,%s]}`, claudeModel, stream, bashTool, user, assistant, result)
			status, _, got = post(t, r.front.URL, "/rollout/tool/attempt/0/v1/messages?beta=true", second)
			if status != 200 {
				t.Fatalf("second turn: %d %s", status, got)
			}
			msg = messageOf(t, got, stream)
			if msg.StopReason != "end_turn" || len(msg.Content) != 1 || msg.Content[0].Type != "text" || !strings.Contains(msg.Content[0].Text, "a.txt\nb.txt") {
				t.Fatalf("second turn: %s", got)
			}

			calls, deltas := wholeCalls(t, r, rollout.Key{RolloutID: "tool", AttemptID: "0"})
			if len(calls) != 2 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			if deltas[0] || !deltas[1] {
				t.Errorf("stored as deltas: %v; the second call extends the first", deltas)
			}
			c1, c2 := calls[0], calls[1]
			for _, c := range calls {
				if !c.Valid || c.Dialect != exporter.DialectAnthropicMessages || c.Request.RequestedModel != claudeModel {
					t.Errorf("call %d: valid %v (%s) dialect %q requested %q", c.Seq, c.Valid, c.Problem, c.Dialect, c.Request.RequestedModel)
				}
			}
			if c1.Response.Choices[0].FinishReason != "tool_calls" || !bytes.Contains(c1.Response.Choices[0].ToolCalls, []byte(`Bash`)) {
				t.Errorf("first call: finish %q tool calls %s", c1.Response.Choices[0].FinishReason, c1.Response.Choices[0].ToolCalls)
			}
			context := append(append([]int64{}, c1.Response.PromptTokenIDs...), c1.Response.Choices[0].TokenIDs...)
			if len(c2.Response.PromptTokenIDs) <= len(context) || !reflect.DeepEqual(c2.Response.PromptTokenIDs[:len(context)], context) {
				t.Errorf("the second prompt does not continue the first call's tokens\ncontext %v\n prompt %v", context, c2.Response.PromptTokenIDs)
			}
		})
	}
}

// wholeCalls reads back an attempt's calls with their prompts put back
// together (a call that extends an earlier one is stored as a delta), and
// which of them were deltas.
func wholeCalls(t *testing.T, r *rig, key rollout.Key) ([]*exporter.Call, []bool) {
	t.Helper()
	recs, err := r.store.Records(context.Background(), key.RolloutID, key.AttemptID)
	if err != nil {
		t.Fatal(err)
	}
	res := exporter.NewResolver(r.store)
	res.Add(recs...)
	var calls []*exporter.Call
	var deltas []bool
	for _, rec := range recs {
		if rec.Kind != store.KindCall {
			continue
		}
		data, err := res.Full(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		_, sp, err := exporter.DecodeRecord(data)
		if err != nil {
			t.Fatal(err)
		}
		calls = append(calls, exporter.CallFromSpan(sp))
		deltas = append(deltas, exporter.IsDelta(rec))
	}
	return calls, deltas
}

// message is the part of an Anthropic Message the tests read.
type message struct {
	ID         string  `json:"id"`
	StopReason string  `json:"stop_reason"`
	Content    []block `json:"content"`
	Usage      struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
}

type block struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// messageOf reads a Message from a JSON answer, or assembles it from a
// Messages stream as the SDKs do.
func messageOf(t *testing.T, b []byte, stream bool) message {
	t.Helper()
	var m message
	if !stream {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return m
	}
	var args []string
	for _, ev := range events(b) {
		_, data, ok := strings.Cut(ev, "\ndata: ")
		if !ok {
			t.Fatalf("event %q", ev)
		}
		var e struct {
			Type         string          `json:"type"`
			Message      json.RawMessage `json:"message"`
			ContentBlock block           `json:"content_block"`
			Delta        struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			t.Fatalf("%v: %s", err, data)
		}
		switch e.Type {
		case "message_start":
			json.Unmarshal(e.Message, &m)
		case "content_block_start":
			m.Content = append(m.Content, e.ContentBlock)
			args = append(args, "")
		case "content_block_delta":
			i := len(m.Content) - 1
			m.Content[i].Text += e.Delta.Text
			args[i] += e.Delta.PartialJSON
		case "message_delta":
			m.StopReason = e.Delta.StopReason
		case "error":
			t.Fatalf("error event: %s", data)
		}
	}
	for i := range m.Content {
		if m.Content[i].Type == "tool_use" {
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(args[i])); err != nil {
				t.Fatalf("tool input %q: %v", args[i], err)
			}
			m.Content[i].Input = compact.Bytes()
		}
	}
	return m
}

// Every error on /v1/messages is in Anthropic's shape, with the status the
// agent's SDK classifies by; traced ones are recorded with that status.
func TestMessagesErrors(t *testing.T) {
	ok := `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name    string
		opts    rigOptions
		setup   func(t *testing.T, r *rig)
		path    string // default /rollout/e/attempt/0/v1/messages
		body    string
		headers []string
		status  int
		errType string
		// recorded: the HTTP status the call is recorded with (0: not recorded).
		recorded   int
		retryAfter string
	}{
		{name: "not JSON", body: `{"model":`, status: 400, errType: "invalid_request_error", recorded: 400},
		{name: "no max_tokens", body: `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`, status: 400, errType: "invalid_request_error", recorded: 400},
		{name: "unknown block type", body: `{"model":"` + model + `","max_tokens":8,"messages":[{"role":"user","content":[{"type":"document","source":{}}]}]}`, status: 400, errType: "invalid_request_error", recorded: 400},
		{name: "unknown model", body: `{"model":"claude-x","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, status: 404, errType: "not_found_error", recorded: 404},
		{name: "context too long", body: `{"model":"` + model + `","max_tokens":99999999,"messages":[{"role":"user","content":"hi"}]}`, status: 400, errType: "invalid_request_error", recorded: 400},
		{name: "paused", setup: func(t *testing.T, r *rig) { r.proxy.Pause(3*time.Second, "weight sync") }, body: ok, status: 429, errType: "rate_limit_error", retryAfter: "3"},
		{name: "attempt complete", setup: func(t *testing.T, r *rig) {
			if s, _, b := post(t, r.front.URL, "/rollout/e/attempt/0/complete", ""); s != 200 {
				t.Fatalf("complete: %d %s", s, b)
			}
		}, body: ok, status: 409, errType: "invalid_request_error"},
		{name: "body too large", opts: rigOptions{maxBody: 64}, body: ok, status: 413, errType: "request_too_large", recorded: 413},
		{name: "no rollout key", opts: rigOptions{requireRollout: true}, path: "/v1/messages", body: ok, status: 400, errType: "invalid_request_error"},
		{name: "bad rollout key", path: "/rollout/b%20d/attempt/0/v1/messages", body: ok, status: 400, errType: "invalid_request_error"},
		{name: "bad header key", path: "/v1/messages", headers: []string{"X-Rollout-Id", "a/b"}, body: ok, status: 400, errType: "invalid_request_error"},
		{name: "upstream unreachable", opts: rigOptions{upstream: deadURL()}, body: ok, status: 502, errType: "api_error", recorded: 502},
		{name: "upstream timeout", opts: rigOptions{upstreamTimeout: 200 * time.Millisecond}, headers: []string{"X-Vllmsim-Fault", vllmsim.FaultHang}, body: ok, status: 504, errType: "timeout_error", recorded: 504},
		{name: "upstream 500", headers: []string{"X-Vllmsim-Fail-After", "2"}, body: ok, status: 500, errType: "api_error", recorded: 500},
		{name: "upstream broken JSON", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultMalformedJSON}, body: ok, status: 502, errType: "api_error", recorded: 502},
		{name: "upstream redirect", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultRedirect}, body: ok, status: 502, errType: "api_error", recorded: 502},
		{name: "answer over the bound", opts: rigOptions{maxResponse: 300}, body: ok, status: 502, errType: "api_error", recorded: 502},
		{name: "upstream 401", opts: rigOptions{sim: vllmsim.Options{APIKey: "vllm-key"}}, body: ok, status: 401, errType: "authentication_error", recorded: 401},
		{name: "store full", opts: rigOptions{beforeCommit: func() error { return errors.New("injected commit failure") }}, body: ok, status: 503, errType: "overloaded_error"},
		{name: "panic", opts: rigOptions{stageHook: func(s string) {
			if s == stageForward {
				panic("injected")
			}
		}}, body: ok, status: 500, errType: "api_error", recorded: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.opts)
			if tt.setup != nil {
				tt.setup(t, r)
			}
			path := cmpOr(tt.path, "/rollout/e/attempt/0/v1/messages")
			status, header, got := post(t, r.front.URL, path, tt.body, tt.headers...)
			if status != tt.status || !isAnthropicError(got, tt.errType) {
				t.Errorf("agent got %d %s, want %d %s", status, got, tt.status, tt.errType)
			}
			if ct, cl := header.Get("Content-Type"), header.Get("Content-Length"); ct != "application/json" || cl != fmt.Sprint(len(got)) {
				t.Errorf("Content-Type %q Content-Length %q for %d bytes", ct, cl, len(got))
			}
			if got := header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if err := r.proxy.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			calls := r.calls(t, rollout.Key{RolloutID: "e", AttemptID: "0"})
			if tt.recorded == 0 {
				if len(calls) != 0 {
					t.Errorf("recorded %d calls", len(calls))
				}
				return
			}
			if len(calls) != 1 {
				t.Fatalf("recorded %d calls", len(calls))
			}
			if c := calls[0]; c.Status != exporter.StatusError || c.HTTPStatus != tt.recorded || c.Valid || c.Dialect != exporter.DialectAnthropicMessages || c.Error == "" {
				t.Errorf("recorded status %s http %d valid %v dialect %q error %q", c.Status, c.HTTPStatus, c.Valid, c.Dialect, c.Error)
			}
		})
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// deadURL is an address nothing listens on.
func deadURL() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ln.Close()
	return "http://" + ln.Addr().String()
}

// A stream that fails after its 200 ends with an "event: error" (never a
// stream that just stops, never a chat error frame), and the call is
// recorded with what went wrong.
func TestMessagesStreamFailures(t *testing.T) {
	body := `{"model":"` + model + `","max_tokens":24,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name    string
		opts    rigOptions
		headers []string
		// last: the stream's last event is an error of this type, or
		// message_stop when "".
		last    string
		status  exporter.Status
		errType string
	}{
		{name: "vLLM error frame", headers: []string{"X-Vllmsim-Fail-After", "3"}, last: "api_error", status: exporter.StatusError, errType: "InternalServerError"},
		{name: "upstream drops the connection", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultCloseMidway}, last: "api_error", status: exporter.StatusError, errType: "upstream_broken"},
		{name: "malformed event", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultMalformedJSON}, last: "api_error", status: exporter.StatusError, errType: "upstream_malformed"},
		// Every token and the finish reason came: the answer is whole, the
		// record says the upstream did not end properly.
		{name: "no [DONE]", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultNoDone}, last: "", status: exporter.StatusError, errType: "stream_incomplete"},
		{name: "event over the bound", opts: rigOptions{maxEvent: 1 << 20}, headers: []string{"X-Vllmsim-Fault", vllmsim.FaultBigEvent}, last: "api_error", status: exporter.StatusError, errType: "event_too_large"},
		{name: "commit fails", opts: rigOptions{beforeCommit: func() error { return errors.New("injected commit failure") }}, last: "overloaded_error", status: exporter.StatusOK},
		{name: "split and CRLF events", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultCRLF}, last: "", status: exporter.StatusOK},
		{name: "comments", headers: []string{"X-Vllmsim-Fault", vllmsim.FaultComments}, last: "", status: exporter.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, tt.opts)
			status, got, readErr := rawPost(t, r.front.URL+"/rollout/sf/attempt/0/v1/messages", body, tt.headers...)
			if status != 200 || readErr != nil {
				t.Fatalf("agent got %d (%v) %s", status, readErr, got)
			}
			evs := events(got)
			if len(evs) == 0 || !strings.HasPrefix(evs[0], "event: message_start\n") && !strings.HasPrefix(evs[0], "event: error\n") {
				t.Fatalf("stream %q", got)
			}
			last := evs[len(evs)-1]
			if tt.last == "" {
				if last != "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n" {
					t.Errorf("last event %q, want message_stop", last)
				}
			} else if _, data, _ := strings.Cut(last, "event: error\ndata: "); !strings.HasPrefix(last, "event: error\n") || !isAnthropicError([]byte(strings.TrimSpace(data)), tt.last) {
				t.Errorf("last event %q, want an error event of type %s", last, tt.last)
			}
			for _, ev := range evs[:len(evs)-1] {
				if strings.HasPrefix(ev, "event: error") || strings.HasPrefix(ev, "event: message_stop") {
					t.Errorf("the stream went on after %q", ev)
				}
			}
			if bytes.Contains(got, []byte("data: {\"error\"")) || bytes.Contains(got, []byte("[DONE]")) || bytes.Contains(got, []byte("\n: ")) {
				t.Errorf("chat bytes reached the agent: %q", got)
			}
			if err := r.proxy.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			if tt.status == exporter.StatusOK && tt.opts.beforeCommit != nil {
				if calls := r.calls(t, rollout.Key{RolloutID: "sf", AttemptID: "0"}); len(calls) != 0 {
					t.Errorf("a failed commit left %d calls", len(calls))
				}
				return
			}
			calls := r.calls(t, rollout.Key{RolloutID: "sf", AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("recorded %d calls", len(calls))
			}
			if c := calls[0]; c.Status != tt.status || c.ErrorType != tt.errType || c.Dialect != exporter.DialectAnthropicMessages || c.HTTPStatus != 200 {
				t.Errorf("recorded %s %q http %d dialect %q (%s), want %s %q", c.Status, c.ErrorType, c.HTTPStatus, c.Dialect, c.Problem, tt.status, tt.errType)
			}
		})
	}
}

// A panic in the middle of a Messages stream costs the call as on the chat
// path: recorded as an internal error, the connection cut (no answer that
// looks whole).
func TestMessagesPanicMidStream(t *testing.T) {
	r := newRig(t, rigOptions{stageHook: func(s string) {
		if s == stageEvent {
			panic("injected")
		}
	}})
	_, got, readErr := rawPost(t, r.front.URL+"/rollout/p/attempt/0/v1/messages", `{"model":"`+model+`","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if readErr == nil || bytes.Contains(got, []byte("message_stop")) {
		t.Errorf("the agent read a whole answer after a panic: %q (%v)", got, readErr)
	}
	if err := r.proxy.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := r.calls(t, rollout.Key{RolloutID: "p", AttemptID: "0"}); len(c) != 1 || c[0].HTTPStatus != 500 || c[0].ErrorType != "internal_error" {
		t.Errorf("recorded %+v", c)
	}
}

// While the call's commit is pending the agent has no byte of a JSON
// Message and no message_stop of a stream, whose earlier events it has.
func TestMessagesPendingCommitHoldsTheLastByte(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			gate := newCommitGate(nil)
			r := newRig(t, rigOptions{beforeCommit: gate.beforeCommit})
			gate.armed.Store(true)
			body := fmt.Sprintf(`{"model":"%s","max_tokens":16,"stream":%v,"messages":[{"role":"user","content":"hold"}]}`, model, stream)
			conn, br := sendRaw(t, r.front.URL, "/rollout/hold/attempt/0/v1/messages?beta=true", body)
			select {
			case <-gate.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the call never reached the store")
			}
			early := readFor(conn, br, 300*time.Millisecond)
			if !stream && len(early) != 0 {
				t.Errorf("the agent got %q of a JSON answer while its commit was pending", early)
			}
			if stream && (bytes.Contains(early, []byte("message_stop")) || !bytes.Contains(early, []byte("event: content_block_delta"))) {
				t.Errorf("while the commit was pending the agent got %q", early)
			}
			gate.armed.Store(false)
			close(gate.release)
			rest, _ := io.ReadAll(br)
			all := string(early) + string(rest)
			if stream && !strings.Contains(all, "event: message_stop\n") || !stream && !strings.Contains(all, `"type":"message"`) {
				t.Errorf("answer %q", all)
			}
		})
	}
}

// count_tokens is answered from the upstream's /tokenize, rendering the
// prompt /v1/messages would (the count equals the prompt_token_ids of that
// call), --model-map applied; it is not traced; its errors are Anthropic's.
func TestMessagesCountTokens(t *testing.T) {
	r := newMessagesRig(t, rigOptions{sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}}, "claude-*="+model)
	msgs := `"system":"You are terse.","tools":` + bashTool + `,"messages":[{"role":"user","content":"Say hi"},{"role":"assistant","content":"Hi."},{"role":"user","content":"Again"}]`
	status, header, got := post(t, r.front.URL, "/rollout/ct/attempt/0/v1/messages/count_tokens?beta=true", `{"model":"`+claudeModel+`",`+msgs+`}`, "X-Api-Key", "sk-ant")
	if status != 200 || header.Get("Content-Type") != "application/json" || header.Get("Content-Length") != fmt.Sprint(len(got)) {
		t.Fatalf("count_tokens: %d %v %s", status, header, got)
	}
	var count struct {
		InputTokens int `json:"input_tokens"`
		Context     struct {
			Original int `json:"original_input_tokens"`
		} `json:"context_management"`
	}
	if err := json.Unmarshal(got, &count); err != nil || count.InputTokens == 0 || count.Context.Original != count.InputTokens {
		t.Fatalf("count_tokens answered %s (%v)", got, err)
	}
	if n := len(r.calls(t, rollout.Key{RolloutID: "ct", AttemptID: "0"})); n != 0 {
		t.Errorf("count_tokens was recorded (%d calls)", n)
	}
	if s, _, b := post(t, r.front.URL, "/rollout/ct/attempt/0/v1/messages", `{"model":"`+claudeModel+`","max_tokens":8,`+msgs+`}`); s != 200 {
		t.Fatalf("messages: %d %s", s, b)
	}
	calls := r.calls(t, rollout.Key{RolloutID: "ct", AttemptID: "0"})
	if len(calls) != 1 || len(calls[0].Response.PromptTokenIDs) != count.InputTokens {
		t.Errorf("count_tokens says %d, the call's prompt has %d IDs", count.InputTokens, len(calls[0].Response.PromptTokenIDs))
	}

	for _, tt := range []struct {
		name, body string
		status     int
		errType    string
	}{
		{"not JSON", `{`, 400, "invalid_request_error"},
		{"no messages", `{"model":"` + model + `"}`, 400, "invalid_request_error"},
		{"unknown model", `{"model":"gpt-4","messages":[{"role":"user","content":"hi"}]}`, 404, "not_found_error"},
	} {
		status, _, got := post(t, r.front.URL, "/rollout/ct/attempt/0/v1/messages/count_tokens", tt.body)
		if status != tt.status || !isAnthropicError(got, tt.errType) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, status, got, tt.status, tt.errType)
		}
	}
	r.proxy.Pause(time.Second, "")
	if status, _, got := post(t, r.front.URL, "/rollout/ct/attempt/0/v1/messages/count_tokens", `{"model":"`+model+`",`+msgs+`}`); status != 200 {
		t.Errorf("count_tokens while paused (it generates nothing): %d %s", status, got)
	}
}

// What reaches vLLM of a Messages call: the chat request on
// /v1/chat/completions without the query, credentials as Bearer (the
// agent's x-api-key, or --upstream-api-key in place of anything the agent
// sent), no anthropic-* fields; and no credential reaches the log.
func TestMessagesUpstreamRequest(t *testing.T) {
	tests := []struct {
		name, upstreamKey string
		headers           []string
		wantAuth          string
	}{
		{name: "x-api-key becomes Bearer", headers: []string{"X-Api-Key", "vllm-key"}, wantAuth: "Bearer vllm-key"},
		{name: "Bearer kept", headers: []string{"Authorization", "Bearer vllm-key"}, wantAuth: "Bearer vllm-key"},
		{name: "upstream key replaces x-api-key", upstreamKey: "vllm-key", headers: []string{"X-Api-Key", "sk-ant-agent-secret"}, wantAuth: "Bearer vllm-key"},
		{name: "upstream key replaces both", upstreamKey: "vllm-key", headers: []string{"X-Api-Key", "sk-ant-agent-secret", "Authorization", "Bearer agent-token-secret"}, wantAuth: "Bearer vllm-key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []*http.Request
			var logs lockedBuffer
			logger := zerolog.New(&logs).Level(zerolog.TraceLevel)
			r := newRig(t, rigOptions{sim: vllmsim.Options{APIKey: "vllm-key"}, upstreamAPIKey: tt.upstreamKey, logger: &logger, accessLog: true,
				wrapSim: func(h http.Handler) http.Handler {
					return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
						mu.Lock()
						seen = append(seen, req.Clone(context.Background()))
						mu.Unlock()
						h.ServeHTTP(w, req)
					})
				}})
			headers := append([]string{"Anthropic-Version", "2023-06-01", "Anthropic-Beta", "interleaved-thinking-2025-05-14"}, tt.headers...)
			body := `{"model":"` + model + `","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`
			for _, path := range []string{"/rollout/u/attempt/0/v1/messages?beta=true", "/rollout/u/attempt/0/v1/messages/count_tokens?beta=true"} {
				if status, _, got := post(t, r.front.URL, path, body, headers...); status != 200 {
					t.Errorf("%s: %d %s", path, status, got)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != 2 {
				t.Fatalf("the upstream saw %d requests", len(seen))
			}
			for i, want := range []string{chatPath, tokenizePath} {
				req := seen[i]
				if req.URL.Path != want || req.URL.RawQuery != "" || req.Header.Get("Authorization") != tt.wantAuth || req.Header.Get("X-Api-Key") != "" {
					t.Errorf("upstream got %s?%s Authorization %q X-Api-Key %q", req.URL.Path, req.URL.RawQuery, req.Header.Get("Authorization"), req.Header.Get("X-Api-Key"))
				}
				for name := range req.Header {
					if strings.HasPrefix(name, "Anthropic-") {
						t.Errorf("upstream got %s", name)
					}
				}
			}
			for _, secret := range []string{"vllm-key", "sk-ant-agent-secret", "agent-token-secret"} {
				if strings.Contains(logText(&logs), secret) {
					t.Errorf("the log holds %q", secret)
				}
			}
			if !strings.Contains(logText(&logs), `"dialect":"anthropic.messages"`) {
				t.Errorf("the access log does not name the dialect:\n%s", logText(&logs))
			}
		})
	}
}

// Routes other than the two Messages ones are what they were: chat and
// completions traced as openai.*, everything else under /v1/messages…
// (another method, batches) and elsewhere forwarded untouched.
func TestMessagesOtherRoutesUnchanged(t *testing.T) {
	r := newRig(t, rigOptions{})
	for _, tt := range []struct {
		method, path, body string
	}{
		{http.MethodGet, "/v1/messages", ""},
		{http.MethodPost, "/v1/messages/batches", `{}`},
		{http.MethodPost, "/v1/message", `{}`},
		{http.MethodGet, "/v1/models", ""},
		{http.MethodPost, "/tokenize", `{"model":"` + model + `","prompt":"hi"}`},
	} {
		do := func(base string) (int, []byte) {
			req, _ := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		ds, direct := do(r.sim.URL)
		ps, proxied := do(r.front.URL + "/rollout/o/attempt/0")
		if ds != ps || !bytes.Equal(direct, proxied) {
			t.Errorf("%s %s: %d %s, direct %d %s", tt.method, tt.path, ps, proxied, ds, direct)
		}
	}
	post(t, r.front.URL, "/rollout/o/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[{"role":"user","content":"hi"}]}`)
	post(t, r.front.URL, "/rollout/o/attempt/0/v1/completions", `{"model":"`+model+`","prompt":"hi","max_tokens":3}`)
	calls := r.calls(t, rollout.Key{RolloutID: "o", AttemptID: "0"})
	if len(calls) != 2 || calls[0].Dialect != exporter.DialectOpenAIChat || calls[1].Dialect != exporter.DialectOpenAICompletions {
		t.Errorf("recorded %d calls: %+v", len(calls), calls)
	}
}

// logText is what a lockedBuffer holds.
func logText(b *lockedBuffer) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// BenchmarkStreamedCall compares one streamed /v1/messages call with one
// streamed chat call through the proxy: the same chat request upstream,
// the same 128 generated tokens (one SSE event each, plus the role,
// finish, usage and [DONE] events), the store in memory, the simulated
// vLLM on a real socket (its own cost is in both). ns/op and allocs/op are per call; ns/event
// and allocs/event divide them by the upstream's events.
func BenchmarkStreamedCall(b *testing.B) {
	const tokens = 128
	words := strings.TrimSpace(strings.Repeat(" word", tokens))
	sim := vllmsim.Options{Policy: func([]vllmsim.Message, int) string { return words }, Clock: func() time.Time { return time.Unix(1760000000, 0) }}
	messages := `{"model":"` + model + `","max_tokens":` + fmt.Sprint(tokens) + `,"stream":true,"messages":[{"role":"user","content":"Tell me a story"}]}`
	// The chat call is the one the Messages call becomes (continuous usage
	// stats and all), so both put the same load on the upstream and the
	// difference is the translation.
	areq, err := (&anthropic.Translator{}).Messages([]byte(messages))
	if err != nil {
		b.Fatal(err)
	}
	for _, tt := range []struct{ name, path, body string }{
		{"chat", chatPath, string(areq.Chat)},
		{"messages", "/v1/messages", messages},
	} {
		b.Run(tt.name, func(b *testing.B) {
			front, simURL := benchProxy(b, sim)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			call := func(url, body string) int {
				resp, err := client.Post(url, "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				br := bufio.NewReader(resp.Body)
				for {
					line, err := br.ReadSlice('\n')
					if len(line) == 1 {
						n++
					}
					if err != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
				return n
			}
			// The events vLLM sends for this call (the chat request as
			// tokentap sends it, with return_token_ids).
			upstreamEvents := call(simURL+chatPath, withTokenIDs(string(areq.Chat)))
			url := front + "/rollout/bench/attempt/0" + tt.path
			call(url, tt.body) // warm the connections
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				call(url, tt.body)
			}
			b.StopTimer()
			runtime.ReadMemStats(&after)
			perCall := float64(after.Mallocs-before.Mallocs) / float64(b.N)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(upstreamEvents), "ns/event")
			b.ReportMetric(perCall/float64(upstreamEvents), "allocs/event")
			b.ReportMetric(float64(upstreamEvents), "events/call")
		})
	}
}

// benchProxy is a proxy over a simulated vLLM with an in-memory store, for
// benchmarks (newRig wants a *testing.T).
func benchProxy(b *testing.B, simOpts vllmsim.Options) (front, sim string) {
	b.Helper()
	simSrv := httptest.NewServer(vllmsim.New(simOpts))
	b.Cleanup(simSrv.Close)
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	set, err := upstream.New([]upstream.Spec{{URL: simSrv.URL}}, "", upstream.Options{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	p, err := New(Config{Upstreams: set, Recorder: exporter.NewRecorder(st, true, "bench"), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	frontSrv := httptest.NewServer(p)
	b.Cleanup(frontSrv.Close)
	return frontSrv.URL, simSrv.URL
}
