package tokenids

import (
	"bytes"
	"testing"
)

// stripInPieces feeds body to a StreamStripper cut at every step bytes.
func stripInPieces(strip Strip, body []byte, step int) []byte {
	s := NewStreamStripper(strip)
	var out []byte
	for off := 0; off < len(body); off += step {
		out = s.Append(out, body[off:min(off+step, len(body))])
	}
	return out
}

func TestStreamStripper(t *testing.T) {
	all := Strip{TokenIDs: true, Logprobs: true}
	tests := []struct {
		name  string
		strip Strip
		in    string
		want  string
	}{
		{"chat JSON", all,
			`{"id":"c","choices":[{"index":0,"message":{"content":"token_ids"},"logprobs":{"content":[{"token":"a","logprob":-1}]},"finish_reason":"stop","token_ids":[1,2]}],"usage":{"prompt_tokens":1},"prompt_token_ids":[5, 6]}`,
			`{"id":"c","choices":[{"index":0,"message":{"content":"token_ids"},"logprobs":null,"finish_reason":"stop","token_ids":null}],"usage":{"prompt_tokens":1},"prompt_token_ids":null}`},
		{"only ids", Strip{TokenIDs: true},
			`{"choices":[{"logprobs":{"a":1},"token_ids":[1]}],"prompt_token_ids":[2]}`,
			`{"choices":[{"logprobs":{"a":1},"token_ids":null}],"prompt_token_ids":null}`},
		{"completions prompt per choice", all,
			`{"choices":[{"text":"x","prompt_token_ids":[1,2],"token_ids":[3]},{"text":"y","prompt_token_ids":[4],"token_ids":[]}]}`,
			`{"choices":[{"text":"x","prompt_token_ids":null,"token_ids":null},{"text":"y","prompt_token_ids":null,"token_ids":null}]}`},
		{"nested look-alikes stay", all,
			`{"choices":[{"delta":{"token_ids":[1],"logprobs":{}},"x":{"choices":[{"token_ids":[2]}]}}],"other":{"prompt_token_ids":[3]}}`,
			`{"choices":[{"delta":{"token_ids":[1],"logprobs":{}},"x":{"choices":[{"token_ids":[2]}]}}],"other":{"prompt_token_ids":[3]}}`},
		{"strings with quotes and brackets", all,
			`{"choices":[{"text":"a\"]}{\\","token_ids":[1]}],"prompt_token_ids":[2]}`,
			`{"choices":[{"text":"a\"]}{\\","token_ids":null}],"prompt_token_ids":null}`},
		{"null and odd shapes kept", all,
			`{"choices":[{"token_ids":null,"logprobs":null}],"prompt_token_ids":null}`,
			`{"choices":[{"token_ids":null,"logprobs":null}],"prompt_token_ids":null}`},
		{"nothing to strip", Strip{},
			`{"choices":[{"token_ids":[1]}]}`,
			`{"choices":[{"token_ids":[1]}]}`},
		{"number-like bytes read as ParseResponse skips them", all,
			`{"choices":[{"index":e,"token_ids":[1]},{"n":+.5E,"logprobs":{"a":1}}],"prompt_token_ids":[2]}`,
			`{"choices":[{"index":e,"token_ids":null},{"n":+.5E,"logprobs":null}],"prompt_token_ids":null}`},
		{"not JSON passes verbatim", all,
			`{"choices":[{"token_ids":[1]}]} trailing {"prompt_token_ids":[1]}`,
			`{"choices":[{"token_ids":null}]} trailing {"prompt_token_ids":[1]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for step := 1; step <= len(tt.in); step++ {
				if got := stripInPieces(tt.strip, []byte(tt.in), step); string(got) != tt.want {
					t.Fatalf("pieces of %d bytes:\n got %s\nwant %s", step, got, tt.want)
				}
			}
		})
	}
}

// FuzzStreamStripper holds the stripper equal to ParseResponse's stripping
// on every answer ParseResponse reads, however the answer is cut.
func FuzzStreamStripper(f *testing.F) {
	addSeeds(f, "chat_logprobs.json", "completions_two_prompts_n2.json", "chat_no_return.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, strip := range []Strip{{TokenIDs: true, Logprobs: true}, {TokenIDs: true}, {Logprobs: true}} {
			for _, ep := range []Endpoint{Chat, Completions} {
				req := Request{Endpoint: ep, N: 2, Prompts: 2, TokenIDs: true, Logprobs: true}
				_, want, err := ParseResponse(&req, bytes.Clone(body), strip)
				if err != nil {
					continue
				}
				for _, step := range []int{1, 3, 64, len(body) + 1} {
					if got := stripInPieces(strip, body, step); !bytes.Equal(got, want) {
						t.Fatalf("%+v, pieces of %d:\n  in %s\n got %s\nwant %s", strip, step, body, got, want)
					}
				}
			}
		}
	})
}
