package intercept

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/responses"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// The OpenAI Responses dialect through tokentap: what the agent gets is
// what package responses makes of the simulated vLLM's chat answer to the
// translated request, the record is that chat call with dialect
// openai.responses, and previous_response_id resolves against the store.

// randomParts matches what a Responses answer draws at random or from the
// clock: the response and item ids, and created_at.
var randomParts = regexp.MustCompile(`"(resp|rs|msg|fc)_[0-9a-f]{16}"|"created_at":[0-9]+`)

func unrandom(b []byte) []byte { return randomParts.ReplaceAll(b, []byte(`"<random>"`)) }

// newResponsesRig is newMessagesRig with the store keeping Responses
// histories, as the sidecar wires it.
func newResponsesRig(t *testing.T, o rigOptions, modelMap ...string) *rig {
	t.Helper()
	r := newMessagesRig(t, o, modelMap...)
	r.proxy.cfg.ResponseHistory = r.store
	return r
}

// responsesWant is what the agent must get for a Responses body naming the
// served model: the translator's chat request sent to the simulator
// directly, its answer translated back, and the IDs of the same request
// with return_token_ids.
func responsesWant(t *testing.T, r *rig, body, requestID string) (answer []byte, ids tokenids.Result) {
	t.Helper()
	req, err := responses.TranslateRequest([]byte(body), nil)
	if err != nil {
		t.Fatalf("translate: %v", err)
	}
	status, _, chat := post(t, r.sim.URL, chatPath, string(req.Chat()), "X-Request-Id", requestID)
	if status != http.StatusOK {
		t.Fatalf("the simulator answered the translated request %d: %s", status, chat)
	}
	if req.Stream() {
		s := req.NewStream()
		er := tokenids.NewEventReader(bytes.NewReader(chat), 1<<20)
		for {
			ev, err := er.Next()
			if err != nil {
				break
			}
			answer = s.AppendEvent(answer, ev.Data)
		}
		answer = s.AppendEnd(answer, nil)
	} else if answer, _, err = req.Answer(chat); err != nil {
		t.Fatalf("translate the answer: %v", err)
	}
	withIDs := withTokenIDs(string(req.Chat()))
	_, _, chatIDs := post(t, r.sim.URL, chatPath, withIDs, "X-Request-Id", requestID)
	return answer, parseAnswer(t, tokenids.Chat, withIDs, chatIDs)
}

const (
	shellTool  = `[{"type":"function","name":"shell","description":"Run a shell command","parameters":{"type":"object","properties":{"command":{"type":"string"}},"required":["command"]}}]`
	codexModel = "gpt-5"
)

func TestResponsesAnswers(t *testing.T) {
	tests := []struct {
		name        string
		sim         vllmsim.Options
		modelMap    []string
		agentsModel string
		body        string // with MODEL for the model the agent names
		stream      bool
		call        bool // the answer must hold a function_call item
	}{
		{name: "json", body: `{"model":MODEL,"input":"Say hi"}`},
		{name: "stream", stream: true, body: `{"model":MODEL,"stream":true,"input":"Say hi"}`},
		{name: "instructions and items", body: `{"model":MODEL,"instructions":"Be terse.","input":[{"role":"user","content":[{"type":"input_text","text":"Say hi"}]}]}`},
		{name: "model map stream", stream: true, modelMap: []string{"gpt-*=" + model}, agentsModel: codexModel,
			body: `{"model":MODEL,"stream":true,"store":false,"input":"Say hi"}`},
		{name: "function call json", sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}, call: true,
			body: `{"model":MODEL,"tools":` + shellTool + `,"input":"List the files with ` + "`ls -la`" + `"}`},
		{name: "function call stream", sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}, call: true, stream: true,
			body: `{"model":MODEL,"stream":true,"tools":` + shellTool + `,"input":"List the files with ` + "`ls -la`" + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResponsesRig(t, rigOptions{sim: tt.sim}, tt.modelMap...)
			agents := cmpOr(tt.agentsModel, model)
			want, wantIDs := responsesWant(t, r, strings.Replace(tt.body, "MODEL", `"`+model+`"`, 1), "r1")
			status, header, got := post(t, r.front.URL, "/rollout/o/attempt/0/v1/responses", strings.Replace(tt.body, "MODEL", `"`+agents+`"`, 1), "X-Request-Id", "r1")
			if status != http.StatusOK {
				t.Fatalf("status %d: %s", status, got)
			}
			if tt.stream {
				if ct := header.Get("Content-Type"); ct != "text/event-stream" {
					t.Errorf("Content-Type %q", ct)
				}
				g, w := events(unrandom(got)), events(unrandom(want))
				if len(g) != len(w) {
					t.Errorf("%d events, want %d\n got %s\nwant %s", len(g), len(w), got, want)
				}
				for i := range min(len(g), len(w)) {
					if g[i] != w[i] {
						t.Errorf("event %d\n got %q\nwant %q", i, g[i], w[i])
					}
				}
				if !strings.HasPrefix(string(got), "event: response.created\n") || !strings.Contains(events(got)[len(events(got))-1], "response.completed") {
					t.Errorf("not a whole Responses stream: %q", got)
				}
			} else if !bytes.Equal(unrandom(got), unrandom(want)) {
				t.Errorf("answer\n got %s\nwant %s", got, want)
			}
			if has := bytes.Contains(got, []byte(`"type":"function_call"`)); has != tt.call {
				t.Errorf("function_call item: %v, want %v: %s", has, tt.call, got)
			}
			// Kept for previous_response_id unless the request said store:false.
			o, _ := responseOf(t, got, tt.stream)
			in, out, stored, err := r.store.ResponseHistory(t.Context(), o.ID)
			if wantStored := !strings.Contains(tt.body, `"store":false`); err != nil || stored != wantStored || (stored && (len(in) < 2 || len(out) < 2)) {
				t.Errorf("history of %s: stored %v (%v) %s %s, want %v", o.ID, stored, err, in, out, wantStored)
			}
			if bytes.Contains(got, []byte("token_ids")) {
				t.Errorf("what tokentap asked for reached the agent: %s", got)
			}
			calls := r.calls(t, rollout.Key{RolloutID: "o", AttemptID: "0"})
			if len(calls) != 1 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			c := calls[0]
			if c.Status != exporter.StatusOK || c.HTTPStatus != 200 || !c.Valid || c.Dialect != exporter.DialectOpenAIResponses ||
				c.Path != "/v1/responses" || c.Request.Endpoint != tokenids.Chat || c.Request.Stream != tt.stream {
				t.Errorf("call = status %s http %d valid %v (%s) dialect %q path %q endpoint %v stream %v",
					c.Status, c.HTTPStatus, c.Valid, c.Problem, c.Dialect, c.Path, c.Request.Endpoint, c.Request.Stream)
			}
			if c.Request.Model != model || (tt.agentsModel != "" && c.Request.RequestedModel != tt.agentsModel) {
				t.Errorf("model %q requested %q", c.Request.Model, c.Request.RequestedModel)
			}
			if !reflect.DeepEqual(c.Response.PromptTokenIDs, wantIDs.PromptTokenIDs) || len(wantIDs.PromptTokenIDs) == 0 {
				t.Errorf("prompt IDs\n got %v\nwant %v", c.Response.PromptTokenIDs, wantIDs.PromptTokenIDs)
			}
			if len(c.Response.Choices) != 1 || !reflect.DeepEqual(c.Response.Choices[0].TokenIDs, wantIDs.Choices[0].TokenIDs) {
				t.Errorf("choices %+v, want %+v", c.Response.Choices, wantIDs.Choices)
			}
		})
	}
}

// responseOf reads the Response object of a JSON answer or of a stream's
// terminal event.
type responseObj struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Output []struct {
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
		Content   []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func responseOf(t *testing.T, got []byte, stream bool) (responseObj, json.RawMessage) {
	t.Helper()
	raw := json.RawMessage(got)
	if stream {
		evs := events(got)
		last := evs[len(evs)-1]
		_, data, _ := strings.Cut(last, "data: ")
		var ev struct {
			Response json.RawMessage `json:"response"`
		}
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			t.Fatalf("terminal event %q: %v", last, err)
		}
		raw = ev.Response
	}
	var o responseObj
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("response %s: %v", raw, err)
	}
	var full struct {
		Output json.RawMessage `json:"output"`
	}
	json.Unmarshal(raw, &full)
	return o, full.Output
}

// A function-call round trip as Codex makes it: the model calls the shell
// tool, the agent sends the function_call_output back, either naming the
// first response in previous_response_id or with the whole input; the
// model answers quoting it, and both calls are recorded with the second
// prompt continuing the first call's tokens.
func TestResponsesToolRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		stream, previous bool
	}{{false, true}, {true, true}, {false, false}, {true, false}} {
		t.Run(fmt.Sprintf("stream=%v previous=%v", tc.stream, tc.previous), func(t *testing.T) {
			r := newResponsesRig(t, rigOptions{sim: vllmsim.Options{AgentPolicy: vllmsim.DemoPolicy}}, "gpt-*="+model)
			user := `{"role":"user","content":"What is here? Run ` + "`ls`" + `."}`
			first := fmt.Sprintf(`{"model":%q,"stream":%v,"store":%v,"tools":%s,"input":[%s]}`, codexModel, tc.stream, tc.previous, shellTool, user)
			status, _, got := post(t, r.front.URL, "/rollout/tool/attempt/0/v1/responses", first)
			if status != 200 {
				t.Fatalf("first turn: %d %s", status, got)
			}
			o, output := responseOf(t, got, tc.stream)
			if o.Status != "completed" || len(o.Output) != 1 || o.Output[0].Type != "function_call" || o.Output[0].Name != "shell" || argument(o.Output[0].Arguments, "command") != "ls" {
				t.Fatalf("first turn: %s", got)
			}
			result := fmt.Sprintf(`{"type":"function_call_output","call_id":%q,"output":"a.txt\nb.txt"}`, o.Output[0].CallID)
			var second string
			if tc.previous {
				second = fmt.Sprintf(`{"model":%q,"stream":%v,"previous_response_id":%q,"tools":%s,"input":[%s]}`, codexModel, tc.stream, o.ID, shellTool, result)
			} else {
				items := strings.TrimSuffix(strings.TrimPrefix(string(output), "["), "]")
				second = fmt.Sprintf(`{"model":%q,"stream":%v,"store":false,"tools":%s,"input":[%s,%s,%s]}`, codexModel, tc.stream, shellTool, user, items, result)
			}
			status, _, got = post(t, r.front.URL, "/rollout/tool/attempt/0/v1/responses", second)
			if status != 200 {
				t.Fatalf("second turn: %d %s", status, got)
			}
			o2, _ := responseOf(t, got, tc.stream)
			if o2.Status != "completed" || len(o2.Output) != 1 || o2.Output[0].Type != "message" || len(o2.Output[0].Content) == 0 || !strings.Contains(o2.Output[0].Content[0].Text, "a.txt\nb.txt") {
				t.Fatalf("second turn: %s", got)
			}
			_, _, stored, err := r.store.ResponseHistory(t.Context(), o.ID)
			if err != nil || stored != tc.previous {
				t.Errorf("first response stored: %v (%v), want %v (store:%v)", stored, err, tc.previous, tc.previous)
			}

			calls, _ := wholeCalls(t, r, rollout.Key{RolloutID: "tool", AttemptID: "0"})
			if len(calls) != 2 {
				t.Fatalf("%d calls recorded", len(calls))
			}
			for _, c := range calls {
				if !c.Valid || c.Dialect != exporter.DialectOpenAIResponses || c.Request.RequestedModel != codexModel || c.Path != "/v1/responses" {
					t.Errorf("call %d: valid %v (%s) dialect %q requested %q path %q", c.Seq, c.Valid, c.Problem, c.Dialect, c.Request.RequestedModel, c.Path)
				}
			}
			c1, c2 := calls[0], calls[1]
			context := append(append([]int64{}, c1.Response.PromptTokenIDs...), c1.Response.Choices[0].TokenIDs...)
			if len(c2.Response.PromptTokenIDs) <= len(context) || !reflect.DeepEqual(c2.Response.PromptTokenIDs[:len(context)], context) {
				t.Errorf("the second prompt does not continue the first call's tokens\ncontext %v\n prompt %v", context, c2.Response.PromptTokenIDs)
			}
		})
	}
}

// Refusals and failures: tokentap's and the translator's errors in the
// OpenAI envelope, vLLM's passed on as on chat, and a stream that fails
// ends with response.failed rather than being cut.
func TestResponsesErrors(t *testing.T) {
	tests := []struct {
		name     string
		o        rigOptions
		body     string
		status   int
		code     string          // the error's code ("" : numeric, not checked)
		failed   bool            // a 200 stream ending in response.failed
		recorded exporter.Status // the recorded status
	}{
		{name: "unknown previous_response_id", body: `{"model":"` + model + `","previous_response_id":"resp_0123456789abcdef","input":"hi"}`,
			status: 400, code: "previous_response_not_found", recorded: exporter.StatusError},
		{name: "not json", body: `{"model":`, status: 400, recorded: exporter.StatusError},
		{name: "upstream error passes through", body: `{"model":"no-such-model","input":"hi"}`, status: 404, recorded: exporter.StatusError},
		{name: "stream cut", o: rigOptions{wrapSim: cutAfter(3)}, body: `{"model":"` + model + `","stream":true,"input":"Say hi"}`,
			status: 200, failed: true, recorded: exporter.StatusError},
		{name: "stream record fails", o: rigOptions{beforeCommit: func() error { return fmt.Errorf("disk gone") }},
			body: `{"model":"` + model + `","stream":true,"input":"Say hi"}`, status: 200, failed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newResponsesRig(t, tt.o)
			status, _, got := post(t, r.front.URL, "/rollout/e/attempt/0/v1/responses", tt.body)
			if status != tt.status {
				t.Fatalf("status %d, want %d: %s", status, tt.status, got)
			}
			if tt.failed {
				o, _ := responseOf(t, got, true)
				if o.Status != "failed" || o.Error == nil || o.Error.Message == "" || !strings.Contains(events(got)[len(events(got))-1], "event: response.failed") {
					t.Errorf("stream does not end in response.failed: %s", got)
				}
			} else {
				var e struct {
					Error struct {
						Message string          `json:"message"`
						Code    json.RawMessage `json:"code"`
					} `json:"error"`
				}
				if err := json.Unmarshal(got, &e); err != nil || e.Error.Message == "" || (tt.code != "" && string(e.Error.Code) != `"`+tt.code+`"`) {
					t.Errorf("not an OpenAI error (code %q): %s", tt.code, got)
				}
			}
			if tt.recorded == "" {
				return
			}
			calls := r.calls(t, rollout.Key{RolloutID: "e", AttemptID: "0"})
			if len(calls) != 1 || calls[0].Status != tt.recorded || calls[0].Dialect != exporter.DialectOpenAIResponses {
				t.Errorf("calls %+v, want one %s", calls, tt.recorded)
			}
		})
	}
}

// cutAfter makes the simulator break its answer's connection after n SSE
// events, as a crashed vLLM would.
func cutAfter(n int) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			h.ServeHTTP(&cuttingWriter{ResponseWriter: w, left: n}, req)
		})
	}
}

type cuttingWriter struct {
	http.ResponseWriter
	left int
}

func (c *cuttingWriter) Write(p []byte) (int, error) {
	c.left -= bytes.Count(p, []byte("\n\n"))
	if c.left < 0 {
		if f, ok := c.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		panic(http.ErrAbortHandler) // the connection is cut, no terminator
	}
	return c.ResponseWriter.Write(p)
}

func (c *cuttingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// argument is one string argument of a function call's arguments.
func argument(args, name string) string {
	var m map[string]string
	json.Unmarshal([]byte(args), &m)
	return m[name]
}
