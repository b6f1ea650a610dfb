package anthropic

import (
	"strconv"
	"strings"
	"testing"
)

// Chat chunks as vLLM serializes them (model_dump_json(exclude_unset=True),
// vllm-wire.md §2.2), with return_token_ids and continuous usage on.
const chunkHead = `{"id":"chatcmpl-9f2c1e0b7a6d5c4b","object":"chat.completion.chunk","created":1760000000,"model":"my-model","choices":[`

func roleChunk(prompt int) string {
	return chunkHead + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[151644,8948,198],"usage":{"prompt_tokens":` +
		strconv.Itoa(prompt) + `,"total_tokens":` + strconv.Itoa(prompt) + `,"completion_tokens":0}}`
}

func deltaChunk(delta string) string {
	return chunkHead + `{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":null,"token_ids":[13048]}],"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}`
}

func finishChunk(delta, finish, stop string) string {
	return chunkHead + `{"index":0,"delta":` + delta + `,"logprobs":null,"finish_reason":` + finish + `,"stop_reason":` + stop + `,"token_ids":[151645]}],"usage":{"prompt_tokens":12,"total_tokens":52,"completion_tokens":40}}`
}

func usageChunk(usage string) string {
	return `{"id":"chatcmpl-9f2c1e0b7a6d5c4b","object":"chat.completion.chunk","created":1760000000,"model":"my-model","choices":[],"usage":` + usage + `,"system_fingerprint":"vllm-0.25.1-9f2c1e0b"}`
}

const usage1240Chunk = `{"prompt_tokens":12,"total_tokens":52,"completion_tokens":40}`

func text(s string) string      { return `{"content":` + strconv.Quote(s) + `}` }
func reasoning(s string) string { return `{"reasoning":` + strconv.Quote(s) + `}` }
func tcDelta(calls ...string) string {
	return `{"tool_calls":[` + strings.Join(calls, ",") + `]}`
}
func tcOpen(index int, id, name, args string) string {
	return `{"id":"` + id + `","type":"function","index":` + strconv.Itoa(index) + `,"function":{"name":"` + name + `","arguments":` + strconv.Quote(args) + `}}`
}
func tcArgs(index int, args string) string {
	return `{"index":` + strconv.Itoa(index) + `,"function":{"arguments":` + strconv.Quote(args) + `}}`
}

// Expected Anthropic events.
func evMessageStart(input int) string {
	return "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"chatcmpl-9f2c1e0b7a6d5c4b\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"my-model\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":" +
		strconv.Itoa(input) + ",\"output_tokens\":0}}}\n\n"
}
func evStart(block string, i int) string {
	return "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"content_block\":" + block + ",\"index\":" + strconv.Itoa(i) + "}\n\n"
}
func evDelta(delta string, i int) string {
	return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":" + delta + ",\"index\":" + strconv.Itoa(i) + "}\n\n"
}
func evStop(i int) string {
	return "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":" + strconv.Itoa(i) + "}\n\n"
}
func evText(i int, parts ...string) string {
	s := evStart(`{"type":"text","text":""}`, i)
	for _, p := range parts {
		s += evDelta(`{"type":"text_delta","text":`+strconv.Quote(p)+`}`, i)
	}
	return s + evStop(i)
}
func evThinking(i int, parts ...string) string {
	s := evStart(`{"type":"thinking","thinking":""}`, i)
	for _, p := range parts {
		s += evDelta(`{"type":"thinking_delta","thinking":`+strconv.Quote(p)+`}`, i)
	}
	return s + evDelta(`{"type":"signature_delta","signature":"3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e"}`, i) + evStop(i)
}
func evTool(i int, id, name string, args ...string) string {
	s := evStart(`{"type":"tool_use","id":"`+id+`","name":"`+name+`","input":{}}`, i)
	for _, a := range args {
		s += evDelta(`{"type":"input_json_delta","partial_json":`+strconv.Quote(a)+`}`, i)
	}
	return s + evStop(i)
}
func evMessageDelta(delta, usage string) string {
	return "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":" + delta + ",\"usage\":" + usage + "}\n\n"
}

const evMessageStop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"

func runStream(chunks []string) string {
	s := testRequest().NewStream()
	var out []byte
	for _, c := range chunks {
		out = s.AppendEvent(out, []byte(c))
	}
	return string(out)
}

// reference33 is agent-dialects.md §3.3, byte for byte.
const reference33 = `event: message_start
data: {"type":"message_start","message":{"id":"chatcmpl-9f2c1e0b7a6d5c4b","type":"message","role":"assistant","content":[],"model":"my-model","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":0}}}

event: content_block_start
data: {"type":"content_block_start","content_block":{"type":"thinking","thinking":""},"index":0}

event: content_block_delta
data: {"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"Need the weather."},"index":0}

event: content_block_delta
data: {"type":"content_block_delta","delta":{"type":"signature_delta","signature":"3f1c0a9e8b7d4c2a9e1f0b6d5c4a3b2e"},"index":0}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","content_block":{"type":"text","text":""},"index":1}

event: content_block_delta
data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"Checking."},"index":1}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","content_block":{"type":"tool_use","id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","name":"get_weather","input":{}},"index":2}

event: content_block_delta
data: {"type":"content_block_delta","delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Paris\"}"},"index":2}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":12,"output_tokens":40}}

event: message_stop
data: {"type":"message_stop"}

`

func TestStreamReference(t *testing.T) {
	chunks := []string{
		roleChunk(12),
		deltaChunk(reasoning("Need the weather.")),
		deltaChunk(text("Checking.")),
		deltaChunk(tcDelta(`{"id":"chatcmpl-tool-8a7b6c5d4e3f2a1b","type":"function","index":0,"function":{"name":"get_weather"}}`)),
		deltaChunk(tcDelta(tcArgs(0, `{"city": "Paris"}`))),
		finishChunk(text(""), `"tool_calls"`, `null`),
		usageChunk(usage1240Chunk),
		"[DONE]",
	}
	if got := runStream(chunks); got != reference33 {
		t.Errorf("stream\n got %q\nwant %q", got, reference33)
	}
}

func TestStream(t *testing.T) {
	end := func(stop string) string {
		return evMessageDelta(`{"stop_reason":`+stop+`,"stop_sequence":null}`, `{"input_tokens":12,"output_tokens":40}`) + evMessageStop
	}
	tail := func(finish string) []string {
		return []string{finishChunk(text(""), finish, `null`), usageChunk(usage1240Chunk), "[DONE]"}
	}
	tests := []struct {
		name   string
		chunks []string
		want   string
	}{
		{"text only, empty deltas skipped",
			append([]string{roleChunk(12), deltaChunk(text("Hi")), deltaChunk(text("")), deltaChunk(`{}`), deltaChunk(text(" there"))}, tail(`"stop"`)...),
			evMessageStart(12) + evText(0, "Hi", " there") + end(`"end_turn"`)},
		{"empty completion: no block at all",
			append([]string{roleChunk(12)}, tail(`"stop"`)...),
			evMessageStart(12) + end(`"end_turn"`)},
		{"the first chunk's delta is discarded",
			append([]string{deltaChunk(text("lost"))}, tail(`"stop"`)...),
			strings.Replace(evMessageStart(12), `"output_tokens":0`, `"output_tokens":1`, 1) + end(`"end_turn"`)},
		{"length stop",
			append([]string{roleChunk(12), deltaChunk(text("Once"))}, tail(`"length"`)...),
			evMessageStart(12) + evText(0, "Once") + end(`"max_tokens"`)},
		{"abort: stop_reason null",
			append([]string{roleChunk(12), deltaChunk(text("Once"))}, tail(`"abort"`)...),
			evMessageStart(12) + evText(0, "Once") + end(`null`)},
		{"matched stop string",
			[]string{roleChunk(5), deltaChunk(text("hi")), finishChunk(text(""), `"stop"`, `"</tool>"`), usageChunk(usage1240Chunk), "[DONE]"},
			evMessageStart(5) + evText(0, "hi") + evMessageDelta(`{"stop_reason":"stop_sequence","stop_sequence":"</tool>"}`, `{"input_tokens":12,"output_tokens":40}`) + evMessageStop},
		{"stop token id: end_turn",
			[]string{roleChunk(5), deltaChunk(text("hi")), finishChunk(text(""), `"stop"`, `50`), usageChunk(usage1240Chunk), "[DONE]"},
			evMessageStart(5) + evText(0, "hi") + end(`"end_turn"`)},
		{"cache usage on message_delta only",
			[]string{roleChunk(100), deltaChunk(text("hi")), finishChunk(text(""), `"stop"`, `null`),
				usageChunk(`{"prompt_tokens":100,"total_tokens":105,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":80,"created_cache_tokens":10}}`), "[DONE]"},
			evMessageStart(100) + evText(0, "hi") +
				evMessageDelta(`{"stop_reason":"end_turn","stop_sequence":null}`, `{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":10,"cache_read_input_tokens":80}`) + evMessageStop},
		{"thinking, then text, then tool_use",
			append([]string{roleChunk(12), deltaChunk(reasoning("Let me")), deltaChunk(reasoning(" look.")),
				deltaChunk(`{"content":"Sure, let me check. ","tool_calls":[` + tcOpen(0, "call_1", "Read", `{"path": "/a"}`) + `]}`)}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evThinking(0, "Let me", " look.") + evText(1, "Sure, let me check. ") + evTool(2, "call_1", "Read", `{"path": "/a"}`) + end(`"tool_use"`)},
		{"older servers' reasoning_content",
			append([]string{roleChunk(12), deltaChunk(`{"reasoning_content":"hm"}`), deltaChunk(`{"reasoning":"a","reasoning_content":"a"}`)}, tail(`"stop"`)...),
			evMessageStart(12) + evThinking(0, "hm", "a") + end(`"end_turn"`)},
		{"whitespace before a tool call still opens a text block",
			append([]string{roleChunk(12), deltaChunk(text("\n")), deltaChunk(text("   ")), deltaChunk(tcDelta(tcOpen(0, "c1", "Bash", ""))), deltaChunk(tcDelta(tcArgs(0, `{"command": "ls"}`)))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evText(0, "\n", "   ") + evTool(1, "c1", "Bash", `{"command": "ls"}`) + end(`"tool_use"`)},
		{"text with the last argument fragment goes after the tool block",
			append([]string{roleChunk(10), deltaChunk(tcDelta(tcOpen(0, "call_abc123", "read_file", ""))), deltaChunk(tcDelta(tcArgs(0, `{"path":"/tmp/f"`))),
				deltaChunk(`{"content":"\nOkay","tool_calls":[` + tcArgs(0, "}") + `]}`)}, tail(`"tool_calls"`)...),
			evMessageStart(10) + evTool(0, "call_abc123", "read_file", `{"path":"/tmp/f"`, "}") + evText(1, "\nOkay") + end(`"tool_use"`)},
		{"multiple tool calls, one after the other",
			append([]string{roleChunk(12),
				deltaChunk(tcDelta(tcOpen(0, "t0", "Read", ""))), deltaChunk(tcDelta(tcArgs(0, `{"de`))), deltaChunk(tcDelta(tcArgs(0, `sc":1}`))),
				deltaChunk(tcDelta(tcOpen(1, "t1", "Grep", `{"q":`))), deltaChunk(tcDelta(tcArgs(1, `"x"}`)))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evTool(0, "t0", "Read", `{"de`, `sc":1}`) + evTool(1, "t1", "Grep", `{"q":`, `"x"}`) + end(`"tool_use"`)},
		{"all calls whole in one chunk, with content first",
			append([]string{roleChunk(12), deltaChunk(`{"content":"ok","tool_calls":[` + tcOpen(0, "t0", "A", `{"a": 1}`) + `,` + tcOpen(1, "t1", "B", `{"b": [2, "}"]}`) + `]}`)}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evText(0, "ok") + evTool(1, "t0", "A", `{"a": 1}`) + evTool(2, "t1", "B", `{"b": [2, "}"]}`) + end(`"tool_use"`)},
		{"interleaved tool-call deltas are kept, in their own blocks",
			append([]string{roleChunk(12),
				deltaChunk(tcDelta(tcOpen(0, "t0", "A", `{"a":`))),
				deltaChunk(tcDelta(tcOpen(1, "t1", "B", `{"b":`))),
				deltaChunk(tcDelta(tcArgs(0, ` 1`), tcArgs(1, ` 2}`))),
				deltaChunk(tcDelta(tcArgs(0, `}`))),
				deltaChunk(text("after"))}, tail(`"tool_calls"`)...),
			// vLLM closes t0 when t1 opens and drops " 1", "}" and nothing of t1's.
			evMessageStart(12) + evTool(0, "t0", "A", `{"a":`, ` 1`, `}`) + evTool(1, "t1", "B", `{"b": 2}`) + evText(2, "after") + end(`"tool_use"`)},
		{"arguments before the name are kept",
			append([]string{roleChunk(12),
				deltaChunk(tcDelta(`{"id":"t0","index":0,"function":{"arguments":"{\"x\""}}`)),
				deltaChunk(tcDelta(`{"index":0,"function":{"name":"Late","arguments":":1}"}}`))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evTool(0, "t0", "Late", `{"x":1}`) + end(`"tool_use"`)},
		{"a call never named is dropped; one with a name but no id gets one",
			append([]string{roleChunk(12),
				deltaChunk(tcDelta(`{"id":"t0","index":0,"function":{"arguments":"{}"}}`)),
				deltaChunk(tcDelta(`{"index":1,"function":{"name":"NoID","arguments":"{}"}}`))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evTool(0, "chatcmpl-tool-3f1c0a9e8b7d4c2a", "NoID", `{}`) + end(`"tool_use"`)},
		{"a tool call with an unfinished argument text waits until the end",
			append([]string{roleChunk(12),
				deltaChunk(tcDelta(tcOpen(0, "t0", "A", `{"a": "`))),
				deltaChunk(tcDelta(tcOpen(1, "t1", "B", `{}`)))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evTool(0, "t0", "A", `{"a": "`) + evTool(1, "t1", "B", `{}`) + end(`"tool_use"`)},
		{"reasoning after a tool block closes it",
			append([]string{roleChunk(12), deltaChunk(tcDelta(tcOpen(0, "t0", "A", `{`))), deltaChunk(reasoning("hm")), deltaChunk(tcDelta(tcArgs(0, `}`)))}, tail(`"tool_calls"`)...),
			evMessageStart(12) + evTool(0, "t0", "A", `{`) + evThinking(1, "hm") + end(`"tool_use"`)},
		{"[DONE] without a usage chunk still sends message_delta (vLLM sends none)",
			[]string{roleChunk(10), deltaChunk(tcDelta(tcOpen(0, "call_xyz", "get_weather", ""))), deltaChunk(tcDelta(tcArgs(0, `{"city":"NYC"}`))),
				finishChunk(text("\nDone"), `"tool_calls"`, `null`), "[DONE]"},
			evMessageStart(10) + evTool(0, "call_xyz", "get_weather", `{"city":"NYC"}`) + evText(1, "\nDone") +
				evMessageDelta(`{"stop_reason":"tool_use","stop_sequence":null}`, `{"input_tokens":12,"output_tokens":40}`) + evMessageStop},
		{"a usage chunk without usage reports zeros",
			[]string{roleChunk(10), deltaChunk(text("a")), finishChunk(text(""), `"stop"`, `null`), usageChunk(`null`), "[DONE]"},
			evMessageStart(10) + evText(0, "a") + evMessageDelta(`{"stop_reason":"end_turn","stop_sequence":null}`, `{"input_tokens":0,"output_tokens":0}`) + evMessageStop},
		{"SSE framing: data: prefix, whitespace, comments",
			[]string{"data: " + roleChunk(12), "", "  ", "data:" + deltaChunk(text("x")) + "\n", "data: [DONE]"},
			evMessageStart(12) + evText(0, "x") + evMessageDelta(`{"stop_reason":"end_turn","stop_sequence":null}`, `{"input_tokens":12,"output_tokens":1}`) + evMessageStop},
		{"escapes copied verbatim",
			append([]string{roleChunk(12), deltaChunk(`{"content":"a\"b\\c\n\u00e9é\ud83d\ude00"}`)}, tail(`"stop"`)...),
			evMessageStart(12) + evStart(`{"type":"text","text":""}`, 0) + evDelta(`{"type":"text_delta","text":"a\"b\\c\n\u00e9é\ud83d\ude00"}`, 0) + evStop(0) + end(`"end_turn"`)},
		{"chat error event mid-stream",
			[]string{roleChunk(12), deltaChunk(text("a")), `{"error": {"message": "Internal server error", "type": "InternalServerError", "param": null, "code": 500}}`, "[DONE]"},
			evMessageStart(12) + evStart(`{"type":"text","text":""}`, 0) + evDelta(`{"type":"text_delta","text":"a"}`, 0) +
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}\n\n"},
		{"an unreadable chunk ends the stream with an error",
			[]string{roleChunk(12), `{"model":"m","choices":[{"delta":{"content":5}}]}`, deltaChunk(text("a"))},
			evMessageStart(12) + "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"upstream sent an unreadable chunk: delta content or reasoning is not a string\"}}\n\n"},
		{"nothing after message_stop",
			[]string{roleChunk(12), usageChunk(usage1240Chunk), "[DONE]", deltaChunk(text("late")), "[DONE]"},
			evMessageStart(12) + end(`"end_turn"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := runStream(tt.chunks)
			if got != tt.want {
				t.Errorf("stream\n got %q\nwant %q", got, tt.want)
			}
			if err := checkSSE(got); err != "" {
				t.Error(err)
			}
		})
	}
}

func TestStreamEnd(t *testing.T) {
	errEv := func(msg string) string {
		return "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"" + msg + "\"}}\n\n"
	}
	tests := []struct {
		name   string
		chunks []string
		want   string // what AppendEnd appends
	}{
		{"nothing received", nil, errEv("upstream stream ended before the answer began")},
		{"cut mid-answer", []string{roleChunk(12), deltaChunk(text("a"))}, errEv("upstream stream ended before the answer was complete")},
		{"finished but no usage chunk and no [DONE]", []string{roleChunk(12), deltaChunk(text("a")), finishChunk(text(""), `"stop"`, `null`)},
			evStop(0) + evMessageDelta(`{"stop_reason":"end_turn","stop_sequence":null}`, `{"input_tokens":12,"output_tokens":40}`) + evMessageStop},
		{"usage chunk but no [DONE]", []string{roleChunk(12), usageChunk(usage1240Chunk)}, evMessageStop},
		{"complete stream", []string{roleChunk(12), usageChunk(usage1240Chunk), "[DONE]"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testRequest().NewStream()
			var out []byte
			for _, c := range tt.chunks {
				out = s.AppendEvent(out, []byte(c))
			}
			n := len(out)
			out = s.AppendEnd(out)
			if got := string(out[n:]); got != tt.want {
				t.Errorf("AppendEnd\n got %q\nwant %q", got, tt.want)
			}
			if !s.Done() {
				t.Error("not Done after AppendEnd")
			}
			if more := s.AppendEnd(nil); len(more) != 0 {
				t.Errorf("second AppendEnd appended %q", more)
			}
		})
	}
	s := testRequest().NewStream()
	out := s.AppendEvent(nil, []byte(roleChunk(1)))
	n := len(out)
	out = s.AppendError(out, NewError(504, "upstream timed out"))
	if got, want := string(out[n:]), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":\"upstream timed out\"}}\n\n"; got != want {
		t.Errorf("AppendError %q, want %q", got, want)
	}
	if got := s.AppendEvent(nil, []byte("[DONE]")); len(got) != 0 {
		t.Errorf("events after an error: %q", got)
	}
}

// checkSSE says what is wrong with an Anthropic event stream, or "": every
// event is "event: NAME\ndata: JSON\n\n" with one JSON object whose type is
// NAME, blocks open and close in order with increasing indexes, and nothing
// follows message_stop or error.
func checkSSE(s string) string {
	if s == "" {
		return ""
	}
	if !strings.HasSuffix(s, "\n\n") {
		return "stream does not end with a blank line"
	}
	open := -1
	next := 0
	ended := false
	for _, ev := range strings.Split(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		if ended {
			return "event after the end: " + ev
		}
		name, data, ok := strings.Cut(ev, "\ndata: ")
		if !ok || !strings.HasPrefix(name, "event: ") || strings.Contains(data, "\n") {
			return "malformed event " + strconv.Quote(ev)
		}
		name = strings.TrimPrefix(name, "event: ")
		if err := validDocument([]byte(data)); err != nil {
			return "invalid JSON in " + strconv.Quote(ev) + ": " + err.Error()
		}
		f, _ := fields([]byte(data), "", "type", "index")
		if f == nil || !isString(f[0]) || str(f[0]) != name {
			return "event name and type differ: " + ev
		}
		idx, _ := intValue(f[1])
		switch name {
		case "content_block_start":
			if open >= 0 || int(idx) != next {
				return "block start out of order: " + ev
			}
			open = next
		case "content_block_delta":
			if int(idx) != open {
				return "delta for a block not open: " + ev
			}
		case "content_block_stop":
			if int(idx) != open {
				return "stop for a block not open: " + ev
			}
			open = -1
			next++
		case "message_stop", "error":
			ended = true
		}
	}
	return ""
}
