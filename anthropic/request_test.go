package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("bad test JSON %q: %v", s, err)
	}
	return b.String()
}

// member returns the raw text of key in the JSON object doc ("" if absent).
func member(t *testing.T, doc []byte, key string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, doc)
	}
	return string(m[key])
}

func fixedClock() time.Time { return time.Unix(1760000000, 0) }

// userMsg wraps messages into a request with the given extra top-level
// members.
func req(extra, messages string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"model":"test-model","max_tokens":128,"messages":` + messages + extra + `}`
}

// The request of agent-dialects.md §1.7 and the chat body it gives there
// (without the return_token_ids tokentap adds afterwards).
const (
	example17 = `{"model":"my-model","max_tokens":1024,"stream":true,
 "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.160.bca; cc_entrypoint=cli; cch=d1d48;"},
           {"type":"text","text":"You are Claude Code.","cache_control":{"type":"ephemeral"}}],
 "tools":[{"name":"Bash","description":"Run","input_schema":{"type":"object","properties":{"command":{"type":"string"}}}}],
 "messages":[{"role":"user","content":"ls"},
  {"role":"assistant","content":[{"type":"thinking","thinking":"Run ls.","signature":"abc"},
     {"type":"tool_use","id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"Bash","input":{"command":"ls"}}]},
  {"role":"user","content":[{"type":"tool_result","tool_use_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","content":"a.txt"},
     {"type":"text","text":"<system-reminder>r</system-reminder>"}]}]}`
	example17Chat = `{"model":"my-model","max_tokens":1024,"max_completion_tokens":1024,
 "messages":[{"role":"system","content":"You are Claude Code."},
  {"role":"user","content":"ls"},
  {"role":"assistant","reasoning":"Run ls.","tool_calls":[{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","function":{"name":"Bash","arguments":"{\"command\": \"ls\"}"}}]},
  {"role":"tool","tool_call_id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","content":"a.txt"},
  {"role":"user","content":"<system-reminder>r</system-reminder>"}],
 "tools":[{"type":"function","function":{"name":"Bash","description":"Run","parameters":{"type":"object","properties":{"command":{"type":"string"}}}}}],
 "tool_choice":"auto","stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`
)

func TestMessagesExample(t *testing.T) {
	tr := Translator{}
	r, err := tr.Messages([]byte(example17))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Chat), compactJSON(t, example17Chat); got != want {
		t.Errorf("chat body\n got %s\nwant %s", got, want)
	}
	if !r.Stream || r.Model != "my-model" {
		t.Errorf("Stream %v Model %q", r.Stream, r.Model)
	}
}

const img = `{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}}`

// TestMessagesConversion checks the chat "messages" against the
// expectations of vLLM's test_anthropic_messages_conversion.py @a8c3bdb2
// (and a few of its quirks the tests do not pin).
func TestMessagesConversion(t *testing.T) {
	toolUse := func(id string) string {
		return `{"type":"tool_use","id":"` + id + `","name":"Bash","input":{"command":"ls"}}`
	}
	toolResult := func(id, content string) string {
		return `{"type":"tool_result","tool_use_id":"` + id + `","content":` + content + `}`
	}
	asstToolUse := `{"role":"assistant","content":[{"type":"tool_use","id":"call_001","name":"read_file","input":{"path":"/tmp/img.png"}}]}`
	asstChat := `{"role":"assistant","tool_calls":[{"id":"call_001","type":"function","function":{"name":"read_file","arguments":"{\"path\": \"/tmp/img.png\"}"}}]}`
	bashCall := func(id string) string {
		return `{"id":"` + id + `","type":"function","function":{"name":"Bash","arguments":"{\"command\": \"ls\"}"}}`
	}
	tests := []struct {
		name  string
		mode  InlineSystem
		extra string
		msgs  string
		want  string
	}{
		{"string content", "", "", `[{"role":"user","content":"Hello"}]`,
			`[{"role":"user","content":"Hello"}]`},
		{"empty string content is kept", "", "", `[{"role":"user","content":""}]`,
			`[{"role":"user","content":""}]`},
		{"system blocks joined with no separator", "",
			`"system":[{"type":"text","text":"You are a helpful assistant."},{"type":"text","text":" Be concise."}]`,
			`[{"role":"user","content":"Hello"}]`,
			`[{"role":"system","content":"You are a helpful assistant. Be concise."},{"role":"user","content":"Hello"}]`},
		{"billing header block stripped", "",
			`"system":[{"type":"text","text":"You are a helpful assistant."},{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.37.abc; cc_entrypoint=cli;"}]`,
			`[{"role":"user","content":"Hello"}]`,
			`[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"Hello"}]`},
		{"system string taken whole", "", `"system":"x-anthropic-billing-header: kept"`,
			`[{"role":"user","content":"Hello"}]`,
			`[{"role":"system","content":"x-anthropic-billing-header: kept"},{"role":"user","content":"Hello"}]`},
		{"billing header only: no system message", "",
			`"system":[{"type":"text","text":"x-anthropic-billing-header: a"},{"type":"text","text":""}]`,
			`[{"role":"user","content":"Hello"}]`,
			`[{"role":"user","content":"Hello"}]`},
		{"base64 image in user message", "", "",
			`[{"role":"user","content":[{"type":"text","text":"Describe this image"},{"type":"image","source":{"type":"base64","media_type":"image/jpeg","data":"iVBORw0KGgo="}}]}]`,
			`[{"role":"user","content":[{"type":"text","text":"Describe this image"},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,iVBORw0KGgo="}}]}]`},
		{"url image", "", "",
			`[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image","source":{"type":"url","url":"https://example.com/cat.png"}}]}]`,
			`[{"role":"user","content":[{"type":"text","text":"What is this?"},{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]`},
		{"image source defaults", "", "",
			`[{"role":"user","content":[{"type":"image","source":{"media_type":"image/webp","data":"UklGR"}},{"type":"image","source":{"type":"base64","data":"abc123"}},{"type":"image","source":{"type":"url"}},{"type":"image","source":{"media_type":null}},{"type":"image","source":{}}]}]`,
			`[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/webp;base64,UklGR"}},{"type":"image_url","image_url":{"url":"data:image/jpeg;base64,abc123"}},{"type":"image_url","image_url":{"url":""}},{"type":"image_url","image_url":{"url":"data:None;base64,"}}]}]`},
		{"a lone text part is a string", "", "",
			`[{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"only"}]}]`,
			`[{"role":"user","content":"only"}]`},
		{"tool_result string", "", "",
			`[` + asstToolUse + `,{"role":"user","content":[` + toolResult("call_001", `"file contents here"`) + `]}]`,
			`[` + asstChat + `,{"role":"tool","tool_call_id":"call_001","content":"file contents here"}]`},
		{"tool_result text blocks joined with newlines", "", "",
			`[` + asstToolUse + `,{"role":"user","content":[` + toolResult("call_001", `[{"type":"text","text":"line 1"},{"type":"text","text":"line 2"}]`) + `]}]`,
			`[` + asstChat + `,{"role":"tool","tool_call_id":"call_001","content":"line 1\nline 2"}]`},
		{"tool_result image becomes a user message after it", "", "",
			`[` + asstToolUse + `,{"role":"user","content":[` + toolResult("call_001", `[{"type":"text","text":"Here is the screenshot"},`+img+`]`) + `]}]`,
			`[` + asstChat + `,{"role":"tool","tool_call_id":"call_001","content":"Here is the screenshot"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]`},
		{"tool_result images, several", "", "",
			`[` + asstToolUse + `,{"role":"user","content":[` + toolResult("call_001", `[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"IMG1"}},{"type":"image","source":{"type":"url","url":"https://example.com/img2.jpg"}},{"type":"image","source":{"type":"url"}}]`) + `]}]`,
			`[` + asstChat + `,{"role":"tool","tool_call_id":"call_001","content":""},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,IMG1"}},{"type":"image_url","image_url":{"url":"https://example.com/img2.jpg"}}]}]`},
		{"tool_result null content", "", "",
			`[` + asstToolUse + `,{"role":"user","content":[` + toolResult("call_001", `null`) + `]}]`,
			`[` + asstChat + `,{"role":"tool","tool_call_id":"call_001","content":""}]`},
		{"tool_result tool_reference", "", "",
			`[{"role":"user","content":[` + toolResult("t1", `[{"type":"text","text":"a"},{"type":"tool_reference","tool_name":"Read"},{"type":"tool_reference","name":"Grep"}]`) + `]}]`,
			`[{"role":"tool","tool_call_id":"t1","content":"a"},{"role":"tool","tool_call_id":"t1","content":[{"type":"tool_reference","name":"Read"},{"type":"tool_reference","name":"Grep"}]}]`},
		{"tool messages before the user text of the same turn; images between them", "", "",
			`[{"role":"assistant","content":[` + toolUse("t1") + `,` + toolUse("t2") + `]},{"role":"user","content":[{"type":"text","text":"see"},` + toolResult("t1", `[`+img+`]`) + `,` + toolResult("t2", `"ok"`) + `]}]`,
			`[{"role":"assistant","tool_calls":[` + bashCall("t1") + `,` + bashCall("t2") + `]},{"role":"tool","tool_call_id":"t1","content":""},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"tool","tool_call_id":"t2","content":"ok"},{"role":"user","content":"see"}]`},
		{"tool_result in an assistant turn is text", "", "",
			`[{"role":"assistant","content":[` + toolResult("t1", `"out"`) + `,` + toolResult("t2", `[{"type":"text","text":"it's","n":1.0,"b":true,"z":null}]`) + `,` + toolResult("t3", `[]`) + `]}]`,
			`[{"role":"assistant","content":[{"type":"text","text":"Tool result: out"},{"type":"text","text":"Tool result: [{'type': 'text', 'text': \"it's\", 'n': 1.0, 'b': True, 'z': None}]"},{"type":"text","text":"Tool result: "}]}]`},
		{"thinking and text", "", "",
			`[{"role":"user","content":"Write me some code."},{"role":"assistant","content":[{"type":"thinking","thinking":"I should write a simple example.","signature":"sig_abc123"},{"type":"text","text":"Sure! Here is the code."}]},{"role":"user","content":"Can you fix the bug?"}]`,
			`[{"role":"user","content":"Write me some code."},{"role":"assistant","reasoning":"I should write a simple example.","content":"Sure! Here is the code."},{"role":"user","content":"Can you fix the bug?"}]`},
		{"thinking only: no content key", "", "",
			`[{"role":"assistant","content":[{"type":"thinking","thinking":"Just thinking...","signature":"sig_xyz"}]}]`,
			`[{"role":"assistant","reasoning":"Just thinking..."}]`},
		{"thinking blocks joined, redacted dropped, empty kept", "", "",
			`[{"role":"assistant","content":[{"type":"thinking","thinking":"First thought. ","signature":"s1"},{"type":"redacted_thinking","data":"BASE64"},{"type":"thinking","thinking":"Second thought.","signature":"s2"},{"type":"text","text":"Done."}]},{"role":"assistant","content":[{"type":"thinking","thinking":"","signature":""}]},{"role":"assistant","content":[{"type":"redacted_thinking","data":"x"}]}]`,
			`[{"role":"assistant","reasoning":"First thought. Second thought.","content":"Done."},{"role":"assistant","reasoning":""},{"role":"assistant"}]`},
		{"tool_use: json.dumps of the input, key order kept", "", "",
			`[{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{"z":1,"a":{"y":[1.5,1e2,-0,"é😀"],"b":null},"z":2}},{"type":"tool_use","name":"g"},{"type":"tool_use","id":"","input":null}]}]`,
			`[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"z\": 2, \"a\": {\"y\": [1.5, 100.0, 0, \"\\u00e9\\ud83d\\ude00\"], \"b\": null}}"}},{"id":"call_1760000000","type":"function","function":{"name":"g","arguments":"{}"}},{"id":"call_1760000000","type":"function","function":{"name":"","arguments":"{}"}}]}]`},
		{"user turn of tool results only leaves only tool messages", "", "",
			`[{"role":"user","content":[` + toolResult("t1", `"a"`) + `]},{"role":"user","content":[]}]`,
			`[{"role":"tool","tool_call_id":"t1","content":"a"}]`},
		// Inline system messages, preserve (the default).
		{"inline system kept in place after the system prompt", "",
			`"system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.160.bca; cc_entrypoint=cli; cch=d1d48;"},{"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude.","cache_control":{"type":"ephemeral"}},{"type":"text","text":"....","cache_control":{"type":"ephemeral"}}],"tools":[]`,
			`[{"role":"user","content":[{"type":"text","text":"<system-reminder>\n.....\n</system-reminder>\n\n"},{"type":"text","text":"help?","cache_control":{"type":"ephemeral"}}]},{"role":"system","content":"....."}]`,
			`[{"role":"system","content":"You are Claude Code, Anthropic's official CLI for Claude....."},{"role":"user","content":[{"type":"text","text":"<system-reminder>\n.....\n</system-reminder>\n\n"},{"type":"text","text":"help?"}]},{"role":"system","content":"....."}]`},
		{"preserve without a system prompt folds", "", "",
			`[{"role":"user","content":"Hello"},{"role":"system","content":"Be concise."}]`,
			`[{"role":"user","content":"Hello\n\nBe concise."}]`},
		{"inline system blocks joined", "", `"system":"Top-level prompt."`,
			`[{"role":"user","content":"Hi"},{"role":"system","content":[{"type":"text","text":"Part one. "},{"type":"text","text":"Part two."}]}]`,
			`[{"role":"system","content":"Top-level prompt."},{"role":"user","content":"Hi"},{"role":"system","content":"Part one. Part two."}]`},
		{"a leading inline system counts as the system prompt", "", "",
			`[{"role":"system","content":"First system."},{"role":"user","content":"Hello"},{"role":"system","content":"Second system."}]`,
			`[{"role":"system","content":"First system."},{"role":"user","content":"Hello"},{"role":"system","content":"Second system."}]`},
		{"leading inline system joins the system prompt", "", `"system":"Top."`,
			`[{"role":"system","content":"Lead."},{"role":"user","content":"Q"}]`,
			`[{"role":"system","content":"Top.\n\nLead."},{"role":"user","content":"Q"}]`},
		{"billing-header-only inline system dropped", "", "",
			`[{"role":"user","content":"Hello"},{"role":"system","content":"x-anthropic-billing-header: cc_version=2.1.160"},{"role":"assistant","content":"Hi there"}]`,
			`[{"role":"user","content":"Hello"},{"role":"assistant","content":"Hi there"}]`},
		{"billing header block of an inline system stripped", "", `"system":"Top-level prompt."`,
			`[{"role":"user","content":"Hello"},{"role":"system","content":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.160.bca; cch=d1d48;"},{"type":"text","text":"Real system content."}]}]`,
			`[{"role":"system","content":"Top-level prompt."},{"role":"user","content":"Hello"},{"role":"system","content":"Real system content."}]`},
		{"preserve: system between tool_use and its result moves after it", "", `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":[` + toolUse("t1") + `]},{"role":"system","content":"S"},{"role":"user","content":[` + toolResult("t1", `"out"`) + `]}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[` + bashCall("t1") + `]},{"role":"tool","tool_call_id":"t1","content":"out"},{"role":"system","content":"S"}]`},
		// fold
		{"fold: system between tool_use and its result goes into the result", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":[` + toolUse("t1") + `]},{"role":"system","content":"S"},{"role":"user","content":[` + toolResult("t1", `"out"`) + `]}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[` + bashCall("t1") + `]},{"role":"tool","tool_call_id":"t1","content":"out\n\nS"}]`},
		{"fold: appends to the last tool result, skipping images and references", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":[` + toolUse("t1") + `,` + toolUse("t2") + `]},{"role":"user","content":[` + toolResult("t1", `[{"type":"text","text":"a"},`+img+`]`) + `,` + toolResult("t2", `[{"type":"tool_reference","tool_name":"Read"}]`) + `]},{"role":"system","content":"S1"},{"role":"system","content":"S2"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[` + bashCall("t1") + `,` + bashCall("t2") + `]},{"role":"tool","tool_call_id":"t1","content":"a"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},{"role":"tool","tool_call_id":"t2","content":"S1\n\nS2"},{"role":"tool","tool_call_id":"t2","content":[{"type":"tool_reference","name":"Read"}]}]`},
		{"fold: appends to the user's text after tool results", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":[` + toolUse("t1") + `]},{"role":"user","content":[` + toolResult("t1", `"out"`) + `,{"type":"text","text":"<system-reminder>r</system-reminder>"}]},{"role":"system","content":"S"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[` + bashCall("t1") + `]},{"role":"tool","tool_call_id":"t1","content":"out"},{"role":"user","content":"<system-reminder>r</system-reminder>\n\nS"}]`},
		{"fold: extends list user content", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B"}]},{"role":"system","content":"S"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":[{"type":"text","text":"A"},{"type":"text","text":"B\n\nS"}]}]`},
		{"fold: after an assistant turn, prepended to the next user turn", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"system","content":"S"},{"role":"user","content":"Q2"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"user","content":"S\n\nQ2"}]`},
		{"fold: after an assistant turn with no user turn next", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"system","content":"S"},{"role":"assistant","content":"A2"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"user","content":"S"},{"role":"assistant","content":"A2"}]`},
		{"fold: at the end after an assistant turn", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"system","content":"S"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"user","content":"S"}]`},
		{"fold: into empty user content", InlineFold, `"system":"Top."`,
			`[{"role":"user","content":[]},{"role":"system","content":"S"}]`,
			`[{"role":"system","content":"Top."},{"role":"user","content":"S"}]`},
		{"fold: a leading system still joins the prompt", InlineFold, `"system":"Top."`,
			`[{"role":"system","content":"Lead."},{"role":"user","content":"Q"}]`,
			`[{"role":"system","content":"Top.\n\nLead."},{"role":"user","content":"Q"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := Translator{InlineSystem: tt.mode, now: fixedClock}
			r, err := tr.Messages([]byte(req(tt.extra, tt.msgs)))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := member(t, r.Chat, "messages"), compactJSON(t, tt.want); got != want {
				t.Errorf("messages\n got %s\nwant %s", got, want)
			}
		})
	}
}

// TestMessagesFields checks everything outside "messages": the body from
// "tools" on (or from the given key) is compared whole.
func TestMessagesFields(t *testing.T) {
	user := `[{"role":"user","content":"Hello"}]`
	head := `{"model":"test-model","max_tokens":128,"max_completion_tokens":128,"messages":[{"role":"user","content":"Hello"}]`
	bash := `{"name":"Bash","input_schema":{"type":"object"}}`
	bashChat := `{"type":"function","function":{"name":"Bash","parameters":{"type":"object"}}}`
	tests := []struct {
		name  string
		tr    Translator
		extra string
		want  string // the chat body after head
	}{
		{"nothing else", Translator{}, ``, `}`},
		{"ignored fields dropped", Translator{},
			`"metadata":{"user_id":"u"},"service_tier":"auto","container":null,"mcp_servers":[],"context_management":{},"return_token_ids":true,"stream":false,"Stream":true,"stop_sequences":null`,
			`}`},
		{"sampling", Translator{}, `"stop_sequences":["</a>","b"],"temperature":0.7,"top_p":1,"top_k":40.0`,
			`,"stop":["</a>","b"],"temperature":0.7,"top_p":1,"top_k":40}`},
		{"stream asks for usage on every chunk", Translator{}, `"stream":true`,
			`,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`},
		{"vLLM extras passed through", Translator{},
			`"cache_salt":"tenant-abc-secret-salt","kv_transfer_params":{"do_remote_decode":true,"do_remote_prefill":false},"ec_transfer_params":{},"vllm_xargs":{"kv_cache_report_mode":"full","existing_extension":7},"chat_template_kwargs":{"enable_thinking":false}`,
			`,"cache_salt":"tenant-abc-secret-salt","kv_transfer_params":{"do_remote_decode":true,"do_remote_prefill":false},"ec_transfer_params":{},"vllm_xargs":{"kv_cache_report_mode":"full","existing_extension":7},"chat_template_kwargs":{"enable_thinking":false}}`},
		{"output_config", Translator{}, `"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object","properties":{"b":{},"a":{}}}}}`,
			`,"response_format":{"type":"json_schema","json_schema":{"name":"json_schema","schema":{"type":"object","properties":{"b":{},"a":{}}}}},"reasoning_effort":"high"}`},
		{"output_config empty schema and json_schema key ignored", Translator{}, `"output_config":{"format":{"json_schema":{"type":"object"},"schema":{}}}`,
			`}`},
		{"thinking absent leaves reasoning untouched", Translator{}, `"thinking":null`, `}`},
		{"thinking disabled", Translator{}, `"thinking":{"type":"disabled"}`, `,"reasoning_effort":"none"}`},
		{"thinking disabled overrides output_config effort", Translator{}, `"output_config":{"effort":"high"},"thinking":{"type":"disabled"}`,
			`,"reasoning_effort":"none"}`},
		{"thinking disabled, configured effort", Translator{DisabledThinkingEffort: "low"}, `"thinking":{"type":"disabled"}`,
			`,"reasoning_effort":"low"}`},
		{"thinking adaptive keeps the effort ceiling", Translator{}, `"output_config":{"effort":"low"},"thinking":{"type":"adaptive","display":"omitted"}`,
			`,"reasoning_effort":"low"}`},
		{"Claude Code's thinking", Translator{}, `"output_config":{"effort":"high"},"thinking":{"type":"adaptive","display":"omitted"}`,
			`,"reasoning_effort":"high"}`},
		{"tools: input_schema type added last, keys in order", Translator{},
			`"tools":[{"name":"get_weather","description":"Weather","input_schema":{"properties":{"z":{"type":"string"},"a":{"type":"integer"}},"required":["z"]},"strict":true,"defer_loading":false,"cache_control":{"type":"ephemeral"},"type":"custom"}]`,
			`,"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"properties":{"z":{"type":"string"},"a":{"type":"integer"}},"required":["z"],"type":"object"},"strict":true,"defer_loading":false}}],"tool_choice":"auto"}`},
		{"tools: empty input_schema", Translator{}, `"tools":[{"name":"x","description":null,"input_schema":{}}]`,
			`,"tools":[{"type":"function","function":{"name":"x","parameters":{"type":"object"}}}],"tool_choice":"auto"}`},
		{"tool_choice any", Translator{}, `"tools":[` + bash + `],"tool_choice":{"type":"any"}`,
			`,"tools":[` + bashChat + `],"tool_choice":"required","parallel_tool_calls":true}`},
		{"tool_choice none keeps the tools", Translator{}, `"tools":[` + bash + `],"tool_choice":{"type":"none"}`,
			`,"tools":[` + bashChat + `],"tool_choice":"none","parallel_tool_calls":true}`},
		{"tool_choice tool", Translator{}, `"tools":[` + bash + `],"tool_choice":{"type":"tool","name":"Bash","disable_parallel_tool_use":true}`,
			`,"tools":[` + bashChat + `],"tool_choice":{"type":"function","function":{"name":"Bash"}},"parallel_tool_calls":false}`},
		{"tool_choice auto, parallel null", Translator{}, `"tools":[` + bash + `],"tool_choice":{"type":"auto","disable_parallel_tool_use":null}`,
			`,"tools":[` + bashChat + `],"tool_choice":"auto","parallel_tool_calls":true}`},
		{"empty tools left out", Translator{}, `"tools":[]`, `}`},
		{"tool_choice auto without tools", Translator{}, `"tool_choice":{"type":"auto"}`, `,"parallel_tool_calls":true}`},
		{"duplicate keys: the last counts", Translator{}, `"temperature":"bad","temperature":0.5`, `,"temperature":0.5}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := tt.tr.Messages([]byte(req(tt.extra, user)))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(r.Chat), head+tt.want; got != want {
				t.Errorf("chat body\n got %s\nwant %s", got, want)
			}
		})
	}
	r, err := (&Translator{}).Messages([]byte(`{"model":"m","max_tokens":4096,"messages":[],"thinking":{"type":"enabled","budget_tokens":2048,"display":"summarized"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(r.Chat), `{"model":"m","max_tokens":4096,"max_completion_tokens":4096,"messages":[],"thinking_token_budget":2048}`; got != want {
		t.Errorf("enabled thinking\n got %s\nwant %s", got, want)
	}
}

func TestMessagesRefused(t *testing.T) {
	user := `[{"role":"user","content":"Hello"}]`
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", `{"model":`, "request body is not valid JSON"},
		{"trailing data", `{"model":"m"} x`, "request body is not valid JSON"},
		{"not an object", `[]`, "Input should be a valid dictionary"},
		{"invalid UTF-8", "{\"model\":\"m\xff\",\"max_tokens\":1,\"messages\":[]}", "invalid UTF-8"},
		{"model missing", `{"max_tokens":1,"messages":[]}`, "model: Field required"},
		{"model empty", `{"model":"","max_tokens":1,"messages":[]}`, "model: Value error, Model is required"},
		{"model not a string", `{"model":5,"max_tokens":1,"messages":[]}`, "model: Input should be a valid string"},
		{"max_tokens missing", `{"model":"m","messages":[]}`, "max_tokens: Field required"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[]}`, "max_tokens: Value error, max_tokens must be positive"},
		{"max_tokens fractional", `{"model":"m","max_tokens":1.5,"messages":[]}`, "max_tokens: Input should be a valid integer"},
		{"max_tokens a string", `{"model":"m","max_tokens":"5","messages":[]}`, "max_tokens: Input should be a valid integer"},
		{"messages missing", `{"model":"m","max_tokens":1}`, "messages: Field required"},
		{"bad role", req("", `[{"role":"tool","content":"x"}]`), "messages.0.role: Input should be 'user', 'assistant' or 'system'"},
		{"content missing", req("", `[{"role":"user"}]`), "messages.0.content: Field required"},
		{"content a number", req("", `[{"role":"user","content":1}]`), "messages.0.content: Input should be a valid string or a valid list"},
		{"unknown block type", req("", `[{"role":"user","content":[{"type":"text","text":"a"},{"type":"document","source":{}}]}]`),
			"messages.0.content.1.type: Input should be 'text', 'image', 'tool_use', 'tool_result', 'tool_reference', 'thinking' or 'redacted_thinking'"},
		{"block type missing", req("", `[{"role":"user","content":[{"text":"a"}]}]`), "messages.0.content.0.type: Field required"},
		{"tool_use input not an object", req("", `[{"role":"assistant","content":[{"type":"tool_use","id":"a","name":"b","input":"{}"}]}]`),
			"messages.0.content.0.input: Input should be a valid dictionary"},
		{"tool_result list of non-dicts", req("", `[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":["x"]}]}]`),
			"messages.0.content.0.content.0: Input should be a valid dictionary"},
		{"tool_result text not a string", req("", `[{"role":"user","content":[{"type":"tool_result","tool_use_id":"a","content":[{"type":"text","text":5}]}]}]`),
			"messages.0.content.0.content.0.text: Input should be a valid string"},
		{"thinking missing type", req(`"thinking":{"budget_tokens":2048}`, user), "thinking.type: Field required"},
		{"thinking enabled missing budget", req(`"thinking":{"type":"enabled"}`, user), "thinking.budget_tokens: Field required"},
		{"thinking budget below 1024", req(`"thinking":{"type":"enabled","budget_tokens":1023}`, user), "greater than or equal to 1024"},
		{"thinking budget not below max_tokens", `{"model":"m","max_tokens":4096,"messages":[],"thinking":{"type":"enabled","budget_tokens":4096}}`,
			"thinking.budget_tokens must be less than max_tokens"},
		{"thinking bad display", req(`"thinking":{"type":"adaptive","display":"full"}`, user), "thinking.display: Input should be 'summarized', 'omitted' or 'updates'"},
		{"bad effort", req(`"output_config":{"effort":"extreme"}`, user), "output_config.effort"},
		{"cache_salt empty", req(`"cache_salt":""`, user), "cache_salt: String should have between 1 and 1024 characters"},
		{"metadata not an object", req(`"metadata":"x"`, user), "metadata: Input should be a valid dictionary"},
		{"stream not a bool", req(`"stream":"yes"`, user), "stream: Input should be a valid boolean"},
		{"stop_sequences not strings", req(`"stop_sequences":["a",1]`, user), "stop_sequences.1: Input should be a valid string"},
		{"temperature a string", req(`"temperature":"0.5"`, user), "temperature: Input should be a valid number"},
		{"tool_choice tool without name", req(`"tools":[{"name":"a","input_schema":{}}],"tool_choice":{"type":"tool"}`, user),
			"tool_choice: Value error, tool_choice.name is required when type is 'tool'"},
		{"tool_choice bad type", req(`"tool_choice":{"type":"function"}`, user), "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"},
		{"tool_choice any without tools", req(`"tool_choice":{"type":"any"}`, user), "tool_choice.type: 'any' needs at least one tool"},
		{"server tool", req(`"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}]`, user),
			"tools.0.input_schema: Field required"},
		{"tool without name", req(`"tools":[{"input_schema":{}}]`, user), "tools.0.name: Field required"},
		{"deep nesting", `{"model":"m","max_tokens":1,"messages":[],"metadata":` + strings.Repeat("[", 1001) + strings.Repeat("]", 1001) + `}`, "nesting too deep"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := (&Translator{}).Messages([]byte(tt.body))
			if err == nil {
				t.Fatalf("accepted: %s", r.Chat)
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || e.Type != "invalid_request_error" {
				t.Fatalf("error %#v, want a 400 invalid_request_error", err)
			}
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q, want it to contain %q", e.Message, tt.want)
			}
			if err := validDocument(e.Body()); err != nil {
				t.Errorf("error body is not JSON: %v", err)
			}
		})
	}
}

func TestTranslatorConfig(t *testing.T) {
	for _, tr := range []Translator{{InlineSystem: "hoist"}, {DisabledThinkingEffort: "minimal"}} {
		_, err := tr.Messages([]byte(req("", `[]`)))
		var e *Error
		if !errors.As(err, &e) || e.Status != 500 {
			t.Errorf("%+v: error %v, want a 500", tr, err)
		}
	}
}

func TestCountTokens(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"messages, system, tools, kwargs; the rest ignored",
			`{"model":"m","max_tokens":"ignored","thinking":{"type":"bogus"},"stream":true,"system":"S","tools":[{"name":"Bash","input_schema":{"properties":{}}}],"tool_choice":{"type":"any"},"chat_template_kwargs":{"enable_thinking":true},
			"messages":[{"role":"user","content":"Q"},{"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"Bash","input":{}}]},{"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"out"}]}]}`,
			`{"model":"m","messages":[{"role":"system","content":"S"},{"role":"user","content":"Q"},{"role":"assistant","tool_calls":[{"id":"t1","type":"function","function":{"name":"Bash","arguments":"{}"}}]},{"role":"tool","tool_call_id":"t1","content":"out"}],"tools":[{"type":"function","function":{"name":"Bash","parameters":{"properties":{},"type":"object"}}}],"chat_template_kwargs":{"enable_thinking":true}}`},
		{"inline system folded as for messages", `{"model":"m","messages":[{"role":"user","content":"Q"},{"role":"system","content":"S"}],"tools":[]}`,
			`{"model":"m","messages":[{"role":"user","content":"Q\n\nS"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := (&Translator{}).CountTokens([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("tokenize body\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	if _, err := (&Translator{}).CountTokens([]byte(`{"messages":[]}`)); err == nil {
		t.Error("count_tokens without a model accepted")
	}
}

func TestCountTokensAnswer(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"count":4,"max_model_len":8192,"tokens":[128000,9906,1917,0],"token_strs":null}`,
			`{"input_tokens":4,"context_management":{"original_input_tokens":4}}`},
		{`{"tokens":[1,2,3]}`, `{"input_tokens":3,"context_management":{"original_input_tokens":3}}`},
	}
	for _, tt := range tests {
		got, err := CountTokensAnswer([]byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("CountTokensAnswer(%s) = %s, %v; want %s", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{``, `{"count":"4"}`, `[1]`, `{"count":-1}`} {
		if got, err := CountTokensAnswer([]byte(bad)); err == nil {
			t.Errorf("CountTokensAnswer(%s) = %s, want an error", bad, got)
		}
	}
}
