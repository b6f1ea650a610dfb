package tokenids

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestPrepareRequest(t *testing.T) {
	tests := []struct {
		name    string
		ep      Endpoint
		opts    Options
		body    string
		want    string // "" means: out is body, unchanged
		strip   Strip
		prompts int
		check   func(t *testing.T, r Request)
	}{
		{
			name:  "chat, nothing asked",
			ep:    Chat,
			body:  `{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"user","content":"Say hi"}]}`,
			want:  `{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"user","content":"Say hi"}],"return_token_ids":true}`,
			strip: Strip{TokenIDs: true},
			check: func(t *testing.T, r Request) {
				if r.Model != "Qwen/Qwen2.5-1.5B-Instruct" || r.Stream || r.N != 1 || r.Prompts != 1 {
					t.Errorf("request = %+v", r)
				}
				if string(r.Input) != `[{"role":"user","content":"Say hi"}]` {
					t.Errorf("input = %s", r.Input)
				}
			},
		},
		{
			name: "client asked itself",
			ep:   Chat,
			body: `{"messages":[],"return_token_ids":true}`,
		},
		{
			name:  "client said false",
			ep:    Chat,
			body:  `{"return_token_ids":false,"messages":[]}`,
			want:  `{"return_token_ids":true,"messages":[]}`,
			strip: Strip{TokenIDs: true},
		},
		{
			name:  "null, and duplicate keys all fixed",
			ep:    Chat,
			body:  `{"return_token_ids":null,"messages":[],"return_token_ids" : false}`,
			want:  `{"return_token_ids":true,"messages":[],"return_token_ids" : true}`,
			strip: Strip{TokenIDs: true},
		},
		{
			name:  "empty object",
			ep:    Chat,
			body:  ` { } `,
			want:  ` {"return_token_ids":true } `,
			strip: Strip{TokenIDs: true},
		},
		{
			name:  "pretty printed",
			ep:    Chat,
			body:  "{\n  \"messages\": [],\n  \"stream\": true\n}\n",
			want:  "{\n  \"messages\": [],\n  \"stream\": true,\"return_token_ids\":true,\"stream_options\":{\"include_usage\":true}\n}\n",
			strip: Strip{TokenIDs: true, Usage: true},
			check: func(t *testing.T, r Request) {
				if !r.Stream || !r.IncludeUsage || r.ClientUsage {
					t.Errorf("stream=%v include_usage=%v client=%v", r.Stream, r.IncludeUsage, r.ClientUsage)
				}
			},
		},
		{
			name:  "logprobs injected for chat",
			ep:    Chat,
			opts:  Options{Logprobs: true},
			body:  `{"messages":[]}`,
			want:  `{"messages":[],"return_token_ids":true,"logprobs":true}`,
			strip: Strip{TokenIDs: true, Logprobs: true},
		},
		{
			name:  "logprobs into empty chat object",
			ep:    Chat,
			opts:  Options{Logprobs: true},
			body:  `{}`,
			want:  `{"return_token_ids":true,"logprobs":true}`,
			strip: Strip{TokenIDs: true, Logprobs: true},
		},
		{
			name:  "chat logprobs false replaced",
			ep:    Chat,
			opts:  Options{Logprobs: true},
			body:  `{"logprobs":false,"messages":[],"return_token_ids":true}`,
			want:  `{"logprobs":true,"messages":[],"return_token_ids":true}`,
			strip: Strip{Logprobs: true},
		},
		{
			name: "chat logprobs asked by client",
			ep:   Chat,
			opts: Options{Logprobs: true},
			body: `{"logprobs":true,"top_logprobs":2,"messages":[],"return_token_ids":true}`,
		},
		{
			name:  "completions logprobs injected as 0",
			ep:    Completions,
			opts:  Options{Logprobs: true},
			body:  `{"prompt":"Hello","logprobs":null}`,
			want:  `{"prompt":"Hello","logprobs":0,"return_token_ids":true}`,
			strip: Strip{TokenIDs: true, Logprobs: true},
		},
		{
			name: "completions logprobs asked by client",
			ep:   Completions,
			opts: Options{Logprobs: true},
			body: `{"prompt":"Hello","logprobs":1,"return_token_ids":true}`,
		},
		{
			name:    "completions echo is left alone",
			ep:      Completions,
			opts:    Options{Logprobs: true},
			body:    `{"prompt":["a","b"],"echo":true}`,
			prompts: 2,
			check: func(t *testing.T, r Request) {
				if r.TokenIDs || r.Logprobs || !r.Echo {
					t.Errorf("echo request: %+v", r)
				}
			},
		},
		{
			name:  "chat echo still injected",
			ep:    Chat,
			body:  `{"messages":[],"echo":true}`,
			want:  `{"messages":[],"echo":true,"return_token_ids":true}`,
			strip: Strip{TokenIDs: true},
		},
		{name: "completions one string prompt", ep: Completions, body: `{"prompt":"x","return_token_ids":true}`, prompts: 1},
		{name: "completions string prompts", ep: Completions, body: `{"prompt":["x","y","z"],"return_token_ids":true}`, prompts: 3},
		{name: "completions token prompt", ep: Completions, body: `{"prompt":[1,2,3],"return_token_ids":true}`, prompts: 1},
		{name: "completions token prompts", ep: Completions, body: `{"prompt":[[1],[2]],"return_token_ids":true}`, prompts: 2},
		{
			name: "sampling parameters",
			ep:   Chat,
			body: `{"messages":[],"n":3,"temperature":0.7,"top_p":1,"max_completion_tokens":64,"seed":-5,"stream":true,"stream_options":{},"return_token_ids":true}`,
			check: func(t *testing.T, r Request) {
				if r.N != 3 || *r.Temperature != 0.7 || *r.TopP != 1 || *r.MaxTokens != 64 || *r.Seed != -5 || !r.IncludeUsage {
					t.Errorf("request = %+v", r)
				}
			},
		},
		{
			name:  "include_usage null is turned on",
			ep:    Chat,
			body:  `{"stream":true,"stream_options":{"include_usage":null},"return_token_ids":true}`,
			want:  `{"stream":true,"stream_options":{"include_usage":true},"return_token_ids":true}`,
			strip: Strip{Usage: true},
			check: func(t *testing.T, r Request) {
				if !r.IncludeUsage || r.ClientUsage {
					t.Error("include_usage null: the client asked for no usage chunk, tokentap asks for one")
				}
			},
		},
		{
			name: "fields of the wrong type are ignored, vLLM will judge them",
			ep:   Chat,
			body: `{"model":7,"n":"two","temperature":"hot","stream":"yes","return_token_ids":true}`,
			check: func(t *testing.T, r Request) {
				if r.Model != "" || r.N != 1 || r.Temperature != nil || r.Stream {
					t.Errorf("request = %+v", r)
				}
			},
		},
		{
			name:  "escaped keys are keys",
			ep:    Chat,
			body:  `{"return_token_\u0069ds":true,"str\u0065am":true}`,
			want:  `{"return_token_\u0069ds":true,"str\u0065am":true,"stream_options":{"include_usage":true}}`,
			strip: Strip{Usage: true},
			check: func(t *testing.T, r Request) {
				if !r.ClientTokenIDs || !r.Stream {
					t.Errorf("request = %+v", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			out, req, err := PrepareRequest(tt.ep, body, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.body
				if &out[0] != &body[0] {
					t.Error("unchanged body was copied")
				}
			}
			if string(out) != want {
				t.Errorf("body\n got %s\nwant %s", out, want)
			}
			if got := req.Strip(); got != tt.strip {
				t.Errorf("strip = %+v, want %+v", got, tt.strip)
			}
			if tt.prompts != 0 && req.Prompts != tt.prompts {
				t.Errorf("prompts = %d, want %d", req.Prompts, tt.prompts)
			}
			if tt.check != nil {
				tt.check(t, req)
			}
			if json.Valid(body) && !json.Valid(out) {
				t.Errorf("valid JSON became invalid: %s", out)
			}
		})
	}
}

func TestPrepareRequestRejectsNonObjects(t *testing.T) {
	for _, body := range []string{``, ` `, `[]`, `"x"`, `null`, `{"a":}`, `{"a":1`, `{"a":1} x`, `{"a" 1}`, `{a:1}`, `{"a":1,}`, `{"a":"\`} {
		_, _, err := PrepareRequest(Chat, []byte(body), Options{Logprobs: true})
		if !errors.Is(err, ErrNotObject) {
			t.Errorf("%q: err = %v, want ErrNotObject", body, err)
		}
	}
}

// The injected body decodes to the original object plus the injected
// members: nothing else moved.
func TestPrepareRequestKeepsEverythingElse(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":"a \"quoted\" \u00e9 line\n"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"n":2,"logprobs":false,"extra":{"nested":[1,2,{"x":null}]}}`
	out, _, err := PrepareRequest(Chat, []byte(body), Options{Logprobs: true})
	if err != nil {
		t.Fatal(err)
	}
	var in, got map[string]any
	if err := json.Unmarshal([]byte(body), &in); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	in["return_token_ids"] = true
	in["logprobs"] = true
	if !reflect.DeepEqual(in, got) {
		t.Errorf("got %v\nwant %v", got, in)
	}
}

func TestForcedParams(t *testing.T) {
	force := func(kv ...string) []Param {
		var ps []Param
		for _, s := range kv {
			p, err := ParseParam(s)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		return ps
	}
	tests := []struct {
		name  string
		force []Param
		body  string
		want  string
		temp  float64
		seed  int64
	}{
		{
			name:  "replaces what the client sent",
			force: force("temperature=1.0"),
			body:  `{"model":"m","temperature":0.2,"messages":[]}`,
			want:  `{"model":"m","temperature":1.0,"messages":[],"return_token_ids":true}`,
			temp:  1,
		},
		{
			name:  "adds what the client did not send",
			force: force("temperature=1", "seed=7", `stop=["</answer>"]`),
			body:  `{"model":"m","messages":[]}`,
			want:  `{"model":"m","messages":[],"temperature":1,"seed":7,"stop":["</answer>"],"return_token_ids":true}`,
			temp:  1, seed: 7,
		},
		{
			name:  "every duplicate is replaced",
			force: force("temperature=1.0"),
			body:  `{"temperature":0,"model":"m","messages":[],"temperature":null}`,
			want:  `{"temperature":1.0,"model":"m","messages":[],"temperature":1.0,"return_token_ids":true}`,
			temp:  1,
		},
		{
			name:  "an empty object",
			force: force("top_k=-1"),
			body:  `{}`,
			want:  `{"top_k":-1,"return_token_ids":true}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, req, err := PrepareRequest(Chat, []byte(tt.body), Options{Force: tt.force})
			if err != nil {
				t.Fatal(err)
			}
			if string(out) != tt.want {
				t.Errorf("out  %s\nwant %s", out, tt.want)
			}
			if !json.Valid(out) {
				t.Errorf("invalid JSON: %s", out)
			}
			if tt.temp != 0 && (req.Temperature == nil || *req.Temperature != tt.temp) {
				t.Errorf("recorded temperature %v, want %v", req.Temperature, tt.temp)
			}
			if tt.seed != 0 && (req.Seed == nil || *req.Seed != tt.seed) {
				t.Errorf("recorded seed %v, want %v", req.Seed, tt.seed)
			}
			if len(req.Forced) != len(tt.force) {
				t.Errorf("forced %v", req.Forced)
			}
		})
	}
}

func TestParseParamRejects(t *testing.T) {
	for _, s := range []string{"temperature", "=1", "model=\"x\"", "stream=false", "logprobs=true", "stop=</answer>", "temperature=\"hot\"", "seed=1.5x"} {
		if _, err := ParseParam(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
