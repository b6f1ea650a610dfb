package tokenids

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
	"testing/iotest"
)

// Seeds: every vLLM shape of vllm-wire.md that the testdata holds, and a few
// hostile ones.
func addSeeds(f *testing.F, files ...string) {
	for _, name := range files {
		f.Add(readFile(f, name))
	}
	f.Add([]byte(`{"a":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}`))
	f.Add([]byte(`{"choices":[{"index":99999999999,"token_ids":[1]}]}`))
	f.Add([]byte(`{"choices":[{"token_ids":[1e400,-0,1.5]}],"prompt_token_ids":[9223372036854775807]}`))
	f.Add([]byte("{\"\\ud800\":\"\\u00\"}"))
}

func FuzzPrepareRequest(f *testing.F) {
	addSeeds(f, "chat_logprobs.request.json", "completions_two_prompts_n2.request.json", "chat_stream.request.json", "completions_stream.request.json")
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"return_token_ids":false,"return_token_ids":null,"logprobs":7,"echo":true,"prompt":[[1],[2]]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []Endpoint{Chat, Completions} {
			// With and without spare capacity: in place and copied.
			spare := append(bytes.Clone(body), make([]byte, 64)...)[:len(body)]
			if inPlace, _, err := PrepareRequest(ep, spare, Options{Logprobs: true}); err == nil {
				if copied, _, _ := PrepareRequest(ep, bytes.Clone(body), Options{Logprobs: true}); !bytes.Equal(inPlace, copied) {
					t.Fatalf("in place %s, copied %s", inPlace, copied)
				}
			}
			out, req, err := PrepareRequest(ep, body, Options{Logprobs: true})
			if err != nil || !json.Valid(body) {
				continue
			}
			if !json.Valid(out) {
				t.Fatalf("valid body became invalid:\n in %s\nout %s", body, out)
			}
			var got map[string]any
			if json.Unmarshal(out, &got) != nil {
				continue // valid JSON that is not an object of strings keys: cannot happen, err was nil
			}
			// A value the client sent and pydantic reads as true (1, 2.5) is
			// kept; anything else must have become true.
			v := got["return_token_ids"]
			if num, isNum := v.(float64); req.TokenIDs && v != true && !(req.ClientTokenIDs && isNum && num != 0) {
				t.Fatalf("return_token_ids not true in %s", out)
			}
			// Forced fields reach the upstream as forced, whatever was sent.
			forced, _, err := PrepareRequest(ep, bytes.Clone(body), Options{Force: []Param{{Key: "temperature", Value: []byte("1.0")}}})
			if err != nil {
				t.Fatalf("forcing failed on a body that prepared: %v", err)
			}
			var withForce map[string]any
			if err := json.Unmarshal(forced, &withForce); err != nil || withForce["temperature"] != 1.0 {
				t.Fatalf("temperature not forced in %s (%v)", forced, err)
			}
			// A mapped model reaches the upstream as the served name, and
			// nothing else changes.
			mapped, mreq, err := PrepareRequest(ep, bytes.Clone(body), Options{ModelMap: []ModelRule{{Pattern: "*", Model: "served/model"}}})
			if err != nil {
				t.Fatalf("mapping failed on a body that prepared: %v", err)
			}
			var withMap map[string]any
			if err := json.Unmarshal(mapped, &withMap); err != nil {
				t.Fatalf("mapped body invalid: %s (%v)", mapped, err)
			}
			if m, isString := got["model"].(string); isString && m != "" && (withMap["model"] != "served/model" || mreq.Model != "served/model" || mreq.RequestedModel != req.Model) {
				t.Fatalf("model not mapped in %s: %+v", mapped, mreq)
			}
			plain, _, _ := PrepareRequest(ep, bytes.Clone(body), Options{})
			var unmapped map[string]any
			json.Unmarshal(plain, &unmapped)
			for k, v := range unmapped {
				if w, ok := withMap[k]; !ok || k != "model" && !reflect.DeepEqual(v, w) {
					t.Fatalf("mapping changed %q: %s -> %s", k, plain, mapped)
				}
			}
			if len(withMap) != len(unmapped) {
				t.Fatalf("mapping changed the members: %s -> %s", plain, mapped)
			}
		}
	})
}

func FuzzParseResponse(f *testing.F) {
	addSeeds(f, "chat_logprobs.json", "completions_two_prompts_n2.json", "chat_no_return.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []Endpoint{Chat, Completions} {
			req := Request{Endpoint: ep, N: 2, Prompts: 2, TokenIDs: true, Logprobs: true}
			orig := bytes.Clone(body)
			res, out, err := ParseResponse(&req, bytes.Clone(body), Strip{TokenIDs: true, Logprobs: true})
			Check(&req, &res)
			if err != nil {
				if !bytes.Equal(out, orig) {
					t.Fatal("unreadable body was not returned untouched")
				}
				continue
			}
			if json.Valid(orig) && !json.Valid(out) {
				t.Fatalf("stripping made invalid JSON:\n in %s\nout %s", body, out)
			}
		}
	})
}

// FuzzParseResponseDifferential builds vLLM-shaped bodies with encoding/json
// from fuzzed token IDs and texts, and checks the scanner reads back exactly
// what encoding/json wrote.
func FuzzParseResponseDifferential(f *testing.F) {
	f.Add([]byte{1, 2, 3, 200, 255}, "Hi! \"é\" \\ \u2028 🐱", int64(151645), 0.5)
	f.Add([]byte{}, "", int64(-1), -9999.0)
	f.Fuzz(func(t *testing.T, seed []byte, text string, last int64, lp float64) {
		ids := make([]int64, 0, len(seed)+1)
		lps := make([]float64, 0, len(seed)+1)
		for i, b := range seed {
			ids = append(ids, int64(b)*int64(i+1)*7919)
			lps = append(lps, -float64(b)/float64(i+3))
		}
		ids = append(ids, last)
		lps = append(lps, -abs(lp))
		type lpEntry struct {
			Token   string  `json:"token"`
			Logprob float64 `json:"logprob"`
		}
		entries := make([]lpEntry, len(lps))
		for i, v := range lps {
			entries[i] = lpEntry{"t", v}
		}
		body, err := json.Marshal(map[string]any{
			"id":               "chatcmpl-x",
			"model":            text,
			"prompt_token_ids": ids[:len(ids)/2],
			"choices": []any{map[string]any{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": text},
				"logprobs":      map[string]any{"content": entries},
				"finish_reason": "stop",
				"token_ids":     ids,
			}},
			"usage": map[string]any{"prompt_tokens": len(ids) / 2, "completion_tokens": len(ids)},
		})
		if err != nil {
			t.Skip(err) // NaN or Inf logprob: not JSON
		}
		req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true, Logprobs: true}
		res, _, err := ParseResponse(&req, body, Strip{})
		if err != nil {
			t.Fatalf("%v\n%s", err, body)
		}
		var ref struct {
			Model   string `json:"model"`
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(body, &ref); err != nil {
			t.Fatal(err)
		}
		c := res.Choices[0]
		if !reflect.DeepEqual(c.TokenIDs, ids) || !reflect.DeepEqual(res.PromptTokenIDs, ids[:len(ids)/2]) ||
			!reflect.DeepEqual(c.Logprobs, lps) || c.Text != ref.Choices[0].Message.Content || res.Model != ref.Model {
			t.Fatalf("scanner disagrees with encoding/json on\n%s\ngot %+v", body, res)
		}
		if ok, problem := Check(&req, &res); !ok {
			t.Fatal(problem)
		}
	})
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// FuzzEventReader splits a fuzzed stream at fuzzed points: every byte is
// handed on exactly once, in order, and nothing panics.
func FuzzEventReader(f *testing.F) {
	f.Add(readFile(f, "chat_stream.sse"), uint8(1))
	f.Add(readFile(f, "completions_stream.sse"), uint8(7))
	f.Add([]byte("data: a\r\n\r\r\n: c\n\ndata\n\ndata:b\r"), uint8(2))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		var r io.Reader = bytes.NewReader(in)
		if step%2 == 1 {
			r = iotest.OneByteReader(r)
		} else if step > 0 {
			r = iotest.HalfReader(r)
		}
		er := NewEventReader(r, 1<<10)
		var all []byte
		for {
			ev, err := er.Next()
			if err != nil {
				all = append(all, er.Rest()...)
				if err == ErrEventTooLarge {
					rest, _ := io.ReadAll(r)
					all = append(all, rest...)
				}
				break
			}
			all = append(all, ev.Raw...)
		}
		if !bytes.Equal(all, in) {
			t.Fatalf("handed on %q, want %q", all, in)
		}
	})
}

// FuzzStream feeds fuzzed event payloads to a Stream: no panic; a payload it
// cannot read is forwarded untouched; a JSON payload it drops is exactly one
// the documented condition names (checked against encoding/json's reading
// of it); any other it forwards as valid JSON.
func FuzzStream(f *testing.F) {
	for _, file := range []string{"chat_stream.sse", "completions_stream.sse"} {
		er := NewEventReader(bytes.NewReader(readFile(f, file)), 1<<20)
		for {
			ev, err := er.Next()
			if err != nil {
				break
			}
			f.Add(append([]byte(nil), ev.Data...))
		}
	}
	f.Add([]byte(`{"choices":[{"index":0,"delta":{},"delta":{"content":"x"},"finish_reason":null,"token_ids":[1]}]}`))
	f.Add([]byte(`{"choices":[{"index":0,"delta":{},"finish_reason":1,"token_ids":[1]}],"usage":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ep := range []Endpoint{Chat, Completions} {
			for _, strip := range []Strip{{TokenIDs: true, Logprobs: true}, {Usage: true}, {}} {
				req := Request{Endpoint: ep, N: 1, Prompts: 1, TokenIDs: true}
				st := NewStream(&req, strip)
				for range 2 {
					out, err := st.Event(data)
					if IsDone(data) {
						if err != nil || !bytes.Equal(out, data) {
							t.Fatalf("terminator not forwarded: %q %v", out, err)
						}
						continue
					}
					if err != nil {
						if !bytes.Equal(out, data) {
							t.Fatal("unreadable payload was rewritten")
						}
						continue
					}
					if !json.Valid(data) {
						// The scanner does not validate what it skips (a
						// nested value of a field it does not read), so it
						// may accept this: it must then hand on something.
						if out == nil && !st.p.dropped() {
							t.Fatal("an event was dropped without the drop condition")
						}
						continue
					}
					if want := wantDropped(t, ep, strip, data); (out == nil) != want {
						t.Fatalf("dropped=%v, the contract says %v (endpoint %d, strip %+v):\n%s", out == nil, want, ep, strip, data)
					}
					if out != nil && json.Valid(data) && !json.Valid(out) {
						t.Fatalf("stripping made invalid JSON:\n in %s\nout %s", data, out)
					}
				}
				res := st.Result()
				Check(&req, &res)
			}
		}
	})
}

// wantDropped is Stream's drop condition computed from encoding/json's
// reading of a payload the scanner accepted. Duplicate keys count each
// occurrence, as the scanner does.
func wantDropped(t *testing.T, ep Endpoint, strip Strip, data []byte) bool {
	top, ok := members(data)
	if !ok {
		t.Fatalf("the scanner accepted a payload encoding/json rejects: %s", data)
	}
	var choices, deltas, emptyDeltas int
	var finished, usage bool
	for _, m := range top {
		switch m.key {
		case "usage":
			usage = usage || isObject(m.value)
		case "choices":
			var list []json.RawMessage
			if json.Unmarshal(m.value, &list) != nil {
				continue // not an array: no choices
			}
			for _, raw := range list {
				fields, ok := members(raw)
				if !ok {
					continue // not an object: not a choice
				}
				choices++
				for _, f := range fields {
					switch f.key {
					case "delta":
						deltas++
						if d, ok := members(f.value); ok && len(d) == 0 {
							emptyDeltas++
						}
					case "finish_reason":
						finished = finished || bytes.HasPrefix(bytes.TrimSpace(f.value), []byte(`"`))
					}
				}
			}
		}
	}
	swallowed := strip.TokenIDs && ep == Chat && choices == 1 && deltas > 0 && emptyDeltas == deltas && !finished && !usage
	usageOnly := strip.Usage && choices == 0 && usage
	return swallowed || usageOnly
}

type member struct {
	key   string
	value json.RawMessage
}

// members lists a JSON object's members in order, duplicates included; ok
// is false when raw is not an object.
func members(raw []byte) (out []member, ok bool) {
	if !isObject(raw) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	return out, true
}

func isObject(raw []byte) bool {
	b := bytes.TrimSpace(raw)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
