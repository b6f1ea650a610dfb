package responses

import (
	"fmt"
	"strings"
	"testing"
)

// benchRequest is a Codex-sized request: a shell tool, reasoning asked for.
const benchRequest = `{"model":"Qwen/Qwen3-8B","instructions":"You are Codex.","input":"list the files","stream":true,
	"tools":[{"type":"function","name":"shell","description":"Runs a shell command","strict":false,"parameters":{"type":"object","properties":{"command":{"type":"array","items":{"type":"string"}}},"required":["command"]}}],
	"reasoning":{"effort":"medium","summary":"auto"},"include":["reasoning.encrypted_content"],"store":false}`

// vLLM chunks as tokentap receives them: return_token_ids on, one token each.
func benchChunk(delta string) []byte {
	return []byte(`{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":` +
		delta + `,"logprobs":null,"finish_reason":null,"token_ids":[13048]}]}`)
}

// BenchmarkStreamEvent measures the translation of one chat SSE event into
// its Responses events, per kind of chunk, once the stream is in that item
// (the steady state of a long answer), and over a whole realistic stream.
func BenchmarkStreamEvent(b *testing.B) {
	r, err := TranslateRequest([]byte(benchRequest), nil)
	if err != nil {
		b.Fatal(err)
	}
	role := []byte(roleChunk)
	for _, bc := range []struct {
		name  string
		open  []byte // puts the stream in the item
		chunk []byte
	}{
		{"content", benchChunk(`{"content":" word"}`), benchChunk(`{"content":" word"}`)},
		{"reasoning", benchChunk(`{"reasoning":" think"}`), benchChunk(`{"reasoning":" think"}`)},
		{"tool_args", benchChunk(`{"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","index":0,"function":{"name":"shell","arguments":""}}]}`),
			benchChunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"ls\", "}}]}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := r.NewStream()
			dst := st.AppendEvent(nil, role)
			dst = st.AppendEvent(dst[:0], bc.open)
			b.SetBytes(int64(len(bc.chunk)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				dst = st.AppendEvent(dst[:0], bc.chunk)
			}
		})
	}

	// A whole answer: 200 reasoning tokens, 300 content tokens, a call with
	// 40 argument chunks, finish, usage, [DONE]; reported per chat event.
	var events [][]byte
	events = append(events, role)
	for i := range 200 {
		events = append(events, benchChunk(fmt.Sprintf(`{"reasoning":" t%d"}`, i)))
	}
	for i := range 300 {
		events = append(events, benchChunk(fmt.Sprintf(`{"content":" w%d"}`, i)))
	}
	events = append(events, benchChunk(`{"tool_calls":[{"id":"chatcmpl-tool-1","type":"function","index":0,"function":{"name":"shell","arguments":""}}]}`))
	for range 40 {
		events = append(events, benchChunk(`{"tool_calls":[{"index":0,"function":{"arguments":"\"ls\", "}}]}`))
	}
	events = append(events, []byte(chunk(`{"content":""}`, `"finish_reason":"tool_calls"`)), []byte(usageChunk), []byte("[DONE]"))
	b.Run("whole_stream", func(b *testing.B) {
		var dst []byte
		b.ReportAllocs()
		for b.Loop() {
			st := r.NewStream()
			for _, ev := range events {
				dst = st.AppendEvent(dst[:0], ev)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(events)), "ns/event")
	})
}

// BenchmarkTranslateRequest measures a Codex turn deep into a session: the
// full history resent, 60 items.
func BenchmarkTranslateRequest(b *testing.B) {
	var items []string
	for i := range 20 {
		items = append(items,
			fmt.Sprintf(`{"type":"reasoning","id":"rs_%d","summary":[],"encrypted_content":"%sVXNlIGxzLg"}`, i, carrierPrefix),
			fmt.Sprintf(`{"type":"function_call","name":"shell","arguments":"{\"command\":[\"cat\",\"f%d\"]}","call_id":"chatcmpl-tool-%d"}`, i, i),
			fmt.Sprintf(`{"type":"function_call_output","call_id":"chatcmpl-tool-%d","output":"%s"}`, i, strings.Repeat("line of output ", 40)))
	}
	body := []byte(strings.Replace(benchRequest, `"input":"list the files"`, `"input":[`+strings.Join(items, ",")+`]`, 1))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := TranslateRequest(body, nil); err != nil {
			b.Fatal(err)
		}
	}
}
