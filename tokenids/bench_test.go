package tokenids

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// chatBody builds a vLLM chat answer with prompt and response IDs and
// logprobs, the shape and size a real call has.
func chatBody(prompt, response int, logprobs bool) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"message":{"role":"assistant","content":"`)
	for i := range response - 1 {
		fmt.Fprintf(&b, " word%d", i%97)
	}
	b.WriteString(`","refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[],"reasoning":null},"logprobs":`)
	if logprobs {
		b.WriteString(`{"content":[`)
		for i := range response {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"token":" word%d","logprob":-0.%04d,"bytes":[32,119,111,114,100],"top_logprobs":[]}`, i%97, i%9973+1)
		}
		b.WriteString(`]}`)
	} else {
		b.WriteString("null")
	}
	b.WriteString(`,"finish_reason":"stop","stop_reason":null,"token_ids":`)
	writeIDs(&b, response, 1000)
	fmt.Fprintf(&b, `}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":`, prompt, prompt+response, response)
	writeIDs(&b, prompt, 0) // spread over a vocabulary: 1 to 6 digits
	b.WriteString(`,"kv_transfer_params":null}`)
	return b.Bytes()
}

func writeIDs(b *bytes.Buffer, n, base int) {
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(base + i*7919%151000))
	}
	b.WriteByte(']')
}

func BenchmarkPrepareRequest(b *testing.B) {
	for _, words := range []int{1500, 24000} { // about 2k and 32k prompt tokens
		body := []byte(`{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"system","content":"You are a helpful assistant."},{"role":"user","content":"` +
			strings.Repeat("lorem ipsum ", words/2) + `"}],"max_tokens":256,"temperature":1.0,"stream":false}`)
		// No spare capacity: PrepareRequest would otherwise rewrite body in
		// place on the first iteration and read its own output afterwards.
		body = body[:len(body):len(body)]
		b.Run(fmt.Sprintf("%dB", len(body)), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := PrepareRequest(Chat, body, Options{Logprobs: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseResponse(b *testing.B) {
	for _, size := range []struct{ prompt, response int }{{2048, 256}, {32768, 4096}} {
		body := chatBody(size.prompt, size.response, true)
		req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true, Logprobs: true}
		for _, strip := range []Strip{{}, {TokenIDs: true, Logprobs: true}} {
			name := fmt.Sprintf("prompt=%d/response=%d/strip=%v", size.prompt, size.response, strip.Any())
			b.Run(name, func(b *testing.B) {
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				// Stripping rewrites the body in place: each round reads a
				// fresh copy (one memmove, a small part of the cost).
				in := make([]byte, len(body))
				for b.Loop() {
					copy(in, body)
					res, _, err := ParseResponse(&req, in, strip)
					if err != nil || len(res.Choices[0].TokenIDs) != size.response {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStreamEvent measures one token chunk of a chat stream, the unit
// of work per SSE event; its steady state must not allocate.
func BenchmarkStreamEvent(b *testing.B) {
	req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true, Logprobs: true}
	role := []byte(`{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":[151644,8948,198]}`)
	token := []byte(`{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":" word"},"logprobs":{"content":[{"token":" word","logprob":-0.0123,"bytes":[32,119,111,114,100],"top_logprobs":[]}]},"finish_reason":null,"token_ids":[13048]}]}`)
	for _, strip := range []Strip{{}, {TokenIDs: true, Logprobs: true}} {
		b.Run(fmt.Sprintf("strip=%v", strip.Any()), func(b *testing.B) {
			st := NewStream(&req, strip)
			if _, err := st.Event(role); err != nil {
				b.Fatal(err)
			}
			// Grow the accumulators past what the loop will need, so the
			// figure is the steady state of a long stream.
			for range 1 << 16 {
				st.Event(token)
			}
			st = resetTokens(st)
			b.SetBytes(int64(len(token)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := st.Event(token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// resetTokens empties the accumulated arrays of st, keeping their capacity.
func resetTokens(st *Stream) *Stream {
	for _, c := range st.p.choices {
		if c != nil {
			c.c.TokenIDs = c.c.TokenIDs[:0]
			c.c.Logprobs = c.c.Logprobs[:0]
			c.text = c.text[:0]
		}
	}
	return st
}

func BenchmarkEventReader(b *testing.B) {
	event := "data: " + `{"id":"chatcmpl-5d2f8c0e9b7a4e21","object":"chat.completion.chunk","created":1760000000,"model":"Qwen/Qwen2.5-1.5B-Instruct","choices":[{"index":0,"delta":{"content":" word"},"logprobs":null,"finish_reason":null,"token_ids":[13048]}]}` + "\n\n"
	stream := []byte(strings.Repeat(event, 4096))
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	r := bytes.NewReader(stream)
	for b.Loop() {
		r.Reset(stream)
		er := NewEventReader(r, 1<<20)
		for {
			if _, err := er.Next(); err != nil {
				break
			}
		}
	}
}
