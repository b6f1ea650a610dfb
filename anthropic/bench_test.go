package anthropic

import (
	"strconv"
	"strings"
	"testing"
)

// benchRole is a role chunk with a 4k-token prompt_token_ids, as tokentap
// receives it with return_token_ids injected.
func benchRole() string {
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = strconv.Itoa(100000 + i*37%50000)
	}
	return chunkHead + `{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[` +
		strings.Join(ids, ",") + `],"usage":{"prompt_tokens":4096,"total_tokens":4096,"completion_tokens":0}}`
}

// BenchmarkStreamEvent measures AppendEvent per chat chunk: one steady-state
// chunk kind at a time on an open stream, and a whole Claude Code-shaped
// answer (thinking, text, a tool call, finish, usage, [DONE]) averaged over
// its chunks, a new Stream each time.
func BenchmarkStreamEvent(b *testing.B) {
	steady := map[string]string{
		"text":     deltaChunk(text(" the")),
		"thinking": deltaChunk(reasoning(" Let")),
		"tool_args": chunkHead + `{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"ls -la\""}}]},"logprobs":null,"finish_reason":null,"token_ids":[5]}],` +
			`"usage":{"prompt_tokens":12,"total_tokens":13,"completion_tokens":1}}`,
	}
	for _, name := range []string{"text", "thinking", "tool_args"} {
		b.Run(name, func(b *testing.B) {
			s := testRequest().NewStream()
			dst := s.AppendEvent(nil, []byte(roleChunk(12)))
			if name == "tool_args" {
				dst = s.AppendEvent(dst, []byte(deltaChunk(tcDelta(tcOpen(0, "chatcmpl-tool-1", "Bash", `{"command": `)))))
			}
			ev := []byte(steady[name])
			b.SetBytes(int64(len(ev)))
			b.ReportAllocs()
			for b.Loop() {
				dst = s.AppendEvent(dst[:0], ev)
			}
			if len(dst) == 0 {
				b.Fatal("no output")
			}
		})
	}
	b.Run("whole_answer", func(b *testing.B) {
		chunks := []string{benchRole()}
		for range 100 {
			chunks = append(chunks, deltaChunk(reasoning(" think")))
		}
		for range 100 {
			chunks = append(chunks, deltaChunk(text(" word")))
		}
		chunks = append(chunks, deltaChunk(tcDelta(tcOpen(0, "chatcmpl-tool-1", "Bash", ""))))
		for range 20 {
			chunks = append(chunks, deltaChunk(tcDelta(tcArgs(0, `"x`))))
		}
		chunks = append(chunks, finishChunk(text(""), `"tool_calls"`, `null`), usageChunk(usage1240Chunk), "[DONE]")
		evs := make([][]byte, len(chunks))
		total := 0
		for i, c := range chunks {
			evs[i] = []byte(c)
			total += len(c)
		}
		var dst []byte
		b.ReportAllocs()
		b.SetBytes(int64(total / len(evs)))
		n := 0
		for b.Loop() {
			s := testRequest().NewStream()
			for _, ev := range evs {
				dst = s.AppendEvent(dst[:0], ev)
			}
			n++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*len(evs)), "ns/chunk")
	})
}
