package anthropic

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// sigBytes are the random bytes behind the signature of the reference's
// reconstructed examples, 3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e (a valid uuid4).
func sigBytes(n int) []byte {
	one, _ := hex.DecodeString("3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e")
	return bytes.Repeat(one, n)
}

func testRequest() *Request { return &Request{random: bytes.NewReader(sigBytes(8))} }

// chatAnswer is a vLLM chat completion (serialization as in vllm-wire.md
// §1.3/§3.1) around the given message, finish and usage.
func chatAnswer(message, finish, stop, usage string) string {
	return `{"id":"chatcmpl-9f2c1e0b7a6d5c4b","object":"chat.completion","created":1760000000,"model":"my-model","choices":[{"index":0,"message":` +
		message + `,"logprobs":null,"finish_reason":` + finish + `,"stop_reason":` + stop + `,"token_ids":[1,2,3]}],"service_tier":null,"system_fingerprint":null,"usage":` +
		usage + `,"prompt_logprobs":null,"prompt_token_ids":[9,8,7],"kv_transfer_params":null}`
}

func msg(content, reasoning, toolCalls string) string {
	return `{"role":"assistant","content":` + content + `,"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":` + toolCalls + `,"reasoning":` + reasoning + `}`
}

const usage1240 = `{"prompt_tokens":12,"total_tokens":52,"completion_tokens":40,"prompt_tokens_details":null}`

func TestAnswer(t *testing.T) {
	weather := `[{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]`
	head := `{"id":"chatcmpl-9f2c1e0b7a6d5c4b","type":"message","role":"assistant","content":`
	tests := []struct {
		name, chat, want string
	}{
		{"reference §2: thinking, text, tool_use",
			chatAnswer(msg(`"Checking."`, `"Need the weather."`, weather), `"tool_calls"`, `null`, usage1240),
			// vLLM drops "stop_sequence":null (exclude_none); it is kept here.
			head + `[{"type":"thinking","thinking":"Need the weather.","signature":"3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e"},{"type":"text","text":"Checking."},{"type":"tool_use","id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"get_weather","input":{"city":"Paris"}}],"model":"my-model","stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"empty completion: one empty text block",
			chatAnswer(msg(`null`, `null`, `[]`), `"stop"`, `null`, `{"prompt_tokens":10,"total_tokens":10,"completion_tokens":0}`),
			head + `[{"type":"text","text":""}],"model":"my-model","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":0}}`},
		{"empty strings give no blocks",
			chatAnswer(msg(`""`, `""`, `[]`), `"stop"`, `null`, usage1240),
			head + `[{"type":"text","text":""}],"model":"my-model","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"length stop",
			chatAnswer(msg(`"Once upon"`, `null`, `[]`), `"length"`, `null`, usage1240),
			head + `[{"type":"text","text":"Once upon"}],"model":"my-model","stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"matched stop string",
			chatAnswer(msg(`"hello"`, `null`, `[]`), `"stop"`, `"</tool>"`, usage1240),
			head + `[{"type":"text","text":"hello"}],"model":"my-model","stop_reason":"stop_sequence","stop_sequence":"</tool>","usage":{"input_tokens":12,"output_tokens":40}}`},
		{"stop token id is end_turn",
			chatAnswer(msg(`"hello"`, `null`, `[]`), `"stop"`, `128009`, usage1240),
			head + `[{"type":"text","text":"hello"}],"model":"my-model","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"abort has no stop_reason",
			chatAnswer(msg(`"hel"`, `null`, `[]`), `"abort"`, `null`, usage1240),
			head + `[{"type":"text","text":"hel"}],"model":"my-model","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"cache usage",
			chatAnswer(msg(`"x"`, `null`, `[]`), `"stop"`, `null`, `{"prompt_tokens":100,"total_tokens":110,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":80,"created_cache_tokens":10}}`),
			head + `[{"type":"text","text":"x"}],"model":"my-model","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":10,"cache_creation_input_tokens":10,"cache_read_input_tokens":80}}`},
		{"cache reads only, all cached",
			chatAnswer(msg(`"x"`, `null`, `[]`), `"stop"`, `null`, `{"prompt_tokens":100,"total_tokens":110,"completion_tokens":null,"prompt_tokens_details":{"cached_tokens":120}}`),
			head + `[{"type":"text","text":"x"}],"model":"my-model","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0,"cache_read_input_tokens":120}}`},
		{"several tool calls, key order and escapes",
			chatAnswer(msg(`null`, `null`, `[{"id":"chatcmpl-tool-1","type":"function","function":{"name":"Read","arguments":"{\"z\": 1, \"a\": {\"y\": [1.5, 1e2], \"n\": null}, \"s\": \"\\u00e9\\n\\u003c\"}"}},{"id":"chatcmpl-tool-2","type":"function","function":{"name":"Ls","arguments":""}}]`), `"tool_calls"`, `null`, usage1240),
			head + `[{"type":"tool_use","id":"chatcmpl-tool-1","name":"Read","input":{"z":1,"a":{"y":[1.5,100.0],"n":null},"s":"é\n<"}},{"type":"tool_use","id":"chatcmpl-tool-2","name":"Ls","input":{}}],"model":"my-model","stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":40}}`},
		{"older reasoning_content, absent finish_reason, vLLM extras kept",
			`{"id":"chatcmpl-a","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hi","reasoning_content":"think"}}],"usage":{"prompt_tokens":3,"completion_tokens":2},"kv_transfer_params":{"remote":"x","b":null}}`,
			`{"id":"chatcmpl-a","type":"message","role":"assistant","content":[{"type":"thinking","thinking":"think","signature":"3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e"},{"type":"text","text":"Hi"}],"model":"m","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2},"kv_transfer_params":{"remote":"x","b":null}}`},
		{"no usage",
			`{"id":"chatcmpl-a","model":"m","choices":[{"message":{"content":"Hi"},"finish_reason":"stop"}],"usage":null}`,
			`{"id":"chatcmpl-a","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],"model":"m","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testRequest().Answer([]byte(tt.chat))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("answer\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAnswerIDs(t *testing.T) {
	got, err := testRequest().Answer([]byte(`{"id":"","model":"m","choices":[{"message":{"content":"a"}}]}`))
	if err != nil || !strings.HasPrefix(string(got), `{"id":"msg_`) {
		t.Errorf("empty id: %s, %v; want msg_<ms>", got, err)
	}
	got, err = testRequest().Answer([]byte(`{"model":"m","choices":[{"message":{"tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"chatcmpl-3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e","type":"message","role":"assistant","content":[{"type":"tool_use","id":"chatcmpl-tool-3f1c0a9e8b7d4c2a","name":"f","input":{}}],"model":"m","stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":0,"output_tokens":0}}`
	if string(got) != want {
		t.Errorf("default ids\n got %s\nwant %s", got, want)
	}
}

func TestAnswerErrors(t *testing.T) {
	tc := func(args string) string {
		return chatAnswer(msg(`null`, `null`, `[{"id":"c","type":"function","function":{"name":"f","arguments":`+args+`}}]`), `"tool_calls"`, `null`, usage1240)
	}
	tests := []struct {
		name, chat string
		status     int
		want       string
	}{
		{"not JSON", `{"id":`, 502, "not JSON"},
		{"no choices", `{"id":"a","model":"m","choices":[]}`, 502, "no choices"},
		{"no model", `{"id":"a","choices":[{"message":{}}]}`, 502, "not a chat completion"},
		{"content not a string", `{"model":"m","choices":[{"message":{"content":1}}]}`, 502, "not a string"},
		{"arguments not JSON", tc(`"{\"a\": "`), 500, `tool call "f" has arguments that are not JSON`},
		{"arguments not an object", tc(`"[1]"`), 500, "not a JSON object"},
		{"arguments overflow", tc(`"{\"a\": 1e999}"`), 500, "out of float range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := testRequest().Answer([]byte(tt.chat))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("answer %s, error %v; want an *Error", got, err)
			}
			if e.Status != tt.status || !strings.Contains(e.Message, tt.want) {
				t.Errorf("error %d %q, want %d containing %q", e.Status, e.Message, tt.status, tt.want)
			}
		})
	}
}
