package tokenids

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// The same answer sent as one JSON body and as an SSE stream must give the
// same Result: texts, reasoning, token IDs, logprobs, finish reasons and
// usage. The answers are written the way vLLM writes each form
// (vllm-wire.md §1 and §2).

// answer is an abstract generation, rendered as either wire form.
type answer struct {
	ep        Endpoint
	prompt    []int64
	choices   []answerChoice
	reasoning string // the key(s) reasoning goes under: "reasoning", "reasoning_content", "both"
	logprobs  bool
	usage     bool
}

type answerChoice struct {
	pieces []piece // one per token chunk; the last one finishes
	finish string
}

type piece struct {
	text, reasoning string
	ids             []int64
}

func (a *answer) request() Request {
	return Request{Endpoint: a.ep, N: len(a.choices), Prompts: 1, TokenIDs: true, Logprobs: a.logprobs}
}

func logprobOf(id int64) float64 { return -float64(id%997) / 8 }

func (a *answer) reasoningKeys(text string, m map[string]any) {
	switch a.reasoning {
	case "reasoning", "reasoning_content":
		m[a.reasoning] = text
	default:
		m["reasoning"], m["reasoning_content"] = text, text
	}
}

func (a *answer) logprobsValue(ids []int64) any {
	if !a.logprobs {
		return nil
	}
	if a.ep == Completions {
		lps := make([]float64, len(ids))
		for i, id := range ids {
			lps[i] = logprobOf(id)
		}
		return map[string]any{"tokens": nil, "token_logprobs": lps}
	}
	entries := make([]map[string]any, len(ids))
	for i, id := range ids {
		entries[i] = map[string]any{"token": "t", "logprob": logprobOf(id), "bytes": nil, "top_logprobs": []any{}}
	}
	return map[string]any{"content": entries}
}

func (a *answer) usageValue() any {
	if !a.usage {
		return nil
	}
	completion := 0
	for _, c := range a.choices {
		for _, p := range c.pieces {
			completion += len(p.ids)
		}
	}
	return map[string]any{"prompt_tokens": len(a.prompt), "total_tokens": len(a.prompt) + completion, "completion_tokens": completion}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// body renders the answer as a non-streaming JSON body.
func (a *answer) body(t testing.TB) []byte {
	choices := make([]any, len(a.choices))
	for i, c := range a.choices {
		var text, reasoning strings.Builder
		ids := []int64{}
		for _, p := range c.pieces {
			text.WriteString(p.text)
			reasoning.WriteString(p.reasoning)
			ids = append(ids, p.ids...)
		}
		ch := map[string]any{"index": i, "logprobs": a.logprobsValue(ids), "finish_reason": c.finish, "stop_reason": nil, "token_ids": ids}
		if a.ep == Completions {
			ch["text"], ch["prompt_token_ids"], ch["prompt_logprobs"] = text.String(), a.prompt, nil
		} else {
			msg := map[string]any{"role": "assistant", "content": text.String(), "tool_calls": []any{}}
			if reasoning.Len() > 0 {
				a.reasoningKeys(reasoning.String(), msg)
			} else {
				msg["reasoning"] = nil
			}
			ch["message"] = msg
		}
		choices[i] = ch
	}
	body := map[string]any{"id": "x-1", "object": "chat.completion", "model": "m", "choices": choices, "usage": a.usageValue()}
	if a.ep == Chat {
		body["prompt_token_ids"] = a.prompt
	}
	return mustJSON(t, body)
}

// events renders the answer as a stream's event payloads, the choices'
// chunks interleaved.
func (a *answer) events(t testing.TB) [][]byte {
	var out [][]byte
	chunk := func(choice map[string]any, extra map[string]any) {
		ev := map[string]any{"id": "x-1", "object": "chat.completion.chunk", "model": "m", "choices": []any{choice}}
		if a.ep == Completions {
			ev["object"], ev["usage"] = "text_completion", nil
		}
		for k, v := range extra {
			ev[k] = v
		}
		out = append(out, mustJSON(t, ev))
	}
	if a.ep == Chat {
		for i := range a.choices {
			chunk(map[string]any{"index": i, "delta": map[string]any{"role": "assistant", "content": ""}, "logprobs": nil, "finish_reason": nil},
				map[string]any{"prompt_token_ids": a.prompt})
		}
	}
	for k := 0; ; k++ {
		sent := false
		for i, c := range a.choices {
			if k >= len(c.pieces) {
				continue
			}
			sent = true
			p := c.pieces[k]
			ch := map[string]any{"index": i, "logprobs": a.logprobsValue(p.ids), "finish_reason": nil, "token_ids": p.ids}
			if k == len(c.pieces)-1 {
				ch["finish_reason"], ch["stop_reason"] = c.finish, nil
			}
			if a.ep == Completions {
				ch["text"], ch["prompt_token_ids"] = p.text, nil
				if k == 0 {
					ch["prompt_token_ids"] = a.prompt
				}
			} else {
				delta := map[string]any{}
				if p.text != "" {
					delta["content"] = p.text
				}
				if p.reasoning != "" {
					a.reasoningKeys(p.reasoning, delta)
				}
				ch["delta"] = delta
			}
			chunk(ch, nil)
		}
		if !sent {
			break
		}
	}
	if a.usage {
		out = append(out, mustJSON(t, map[string]any{"id": "x-1", "object": "chat.completion.chunk", "model": "m", "choices": []any{}, "usage": a.usageValue()}))
	}
	return append(out, []byte("[DONE]"))
}

// checkAgree extracts both forms and compares the Results.
func checkAgree(t *testing.T, a *answer) {
	t.Helper()
	req := a.request()
	body := a.body(t)
	fromJSON, _, err := ParseResponse(&req, body, Strip{})
	if err != nil {
		t.Fatalf("JSON answer: %v\n%s", err, body)
	}
	st := NewStream(&req, Strip{})
	events := a.events(t)
	for _, ev := range events {
		if _, err := st.Event(ev); err != nil {
			t.Fatalf("event %s: %v", ev, err)
		}
	}
	fromStream := st.Result()
	if !reflect.DeepEqual(fromJSON, fromStream) {
		t.Fatalf("JSON and stream disagree\n json %+v\nstream %+v\nbody %s\nevents %s", fromJSON, fromStream, body, events)
	}
	if ok, problem := Check(&req, &fromStream); !ok {
		t.Fatalf("a generated answer fails the check: %s", problem)
	}
}

func TestStreamAgreesWithJSON(t *testing.T) {
	think := []piece{{reasoning: "Let me ", ids: []int64{10}}, {reasoning: "think.", ids: []int64{11, 12}}, {text: "Yes", ids: []int64{13}}, {ids: []int64{151645}}}
	tests := []struct {
		name string
		a    answer
	}{
		{"chat", answer{ep: Chat, prompt: []int64{1, 2, 3}, choices: []answerChoice{{pieces: []piece{{text: "Hi", ids: []int64{5}}, {text: "!", ids: []int64{6}}, {ids: []int64{151645}}}, finish: "stop"}}, logprobs: true, usage: true}},
		{"reasoning", answer{ep: Chat, prompt: []int64{1}, choices: []answerChoice{{pieces: think, finish: "stop"}}, reasoning: "reasoning", usage: true}},
		{"reasoning_content", answer{ep: Chat, prompt: []int64{1}, choices: []answerChoice{{pieces: think, finish: "stop"}}, reasoning: "reasoning_content", logprobs: true}},
		{"both reasoning keys", answer{ep: Chat, prompt: []int64{1}, choices: []answerChoice{{pieces: think, finish: "stop"}}, reasoning: "both", logprobs: true, usage: true}},
		{"both reasoning keys, n=2", answer{ep: Chat, prompt: []int64{1, 2}, choices: []answerChoice{{pieces: think, finish: "stop"}, {pieces: think[1:], finish: "length"}}, reasoning: "both", usage: true}},
		{"swallowed token", answer{ep: Chat, prompt: []int64{1}, choices: []answerChoice{{pieces: []piece{{ids: []int64{151657}}, {text: "x", ids: []int64{7, 8}}}, finish: "length"}}, logprobs: true}},
		{"completions n=2", answer{ep: Completions, prompt: []int64{9, 8}, choices: []answerChoice{{pieces: []piece{{text: " Paris", ids: []int64{12095}}, {text: ".", ids: []int64{13}}}, finish: "length"}, {pieces: []piece{{text: " é \"q\"", ids: []int64{4, 5, 6}}}, finish: "stop"}}, logprobs: true, usage: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkAgree(t, &tt.a) })
	}
}

// FuzzStreamAgreesWithJSON generates answers from fuzzed texts and shapes.
func FuzzStreamAgreesWithJSON(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3}, "thinking hard\nthe answer is 42", uint16(7))
	f.Add([]byte{1, 2, 0, 200}, "é🐱\"\\\u2028x", uint16(3))
	f.Add([]byte{5, 0, 9}, "", uint16(0))
	f.Fuzz(func(t *testing.T, shape []byte, text string, split uint16) {
		a := generate(shape, text, split)
		checkAgree(t, &a)
	})
}

// generate derives an answer from fuzz input: the endpoint, n, reasoning
// keys, logprobs and usage from the shape bytes; the text split into a
// reasoning part and a content part, each cut into pieces at rune
// boundaries (vLLM never splits a character across chunks).
func generate(shape []byte, text string, split uint16) answer {
	at := func(i int) byte {
		if i < len(shape) {
			return shape[i]
		}
		return 0
	}
	text = strings.ToValidUTF8(text, "\uFFFD")
	a := answer{ep: Chat, prompt: []int64{1, 2}, logprobs: at(1)&1 == 1, usage: at(1)&2 == 2}
	if at(0)&1 == 1 {
		a.ep = Completions
	}
	a.reasoning = [...]string{"reasoning", "reasoning_content", "both"}[int(at(2))%3]
	n := 1 + int(at(3))%3
	cut := int(split) % (len(text) + 1)
	for cut > 0 && cut < len(text) && !utf8.RuneStart(text[cut]) {
		cut--
	}
	reasoning, content := text[:cut], text[cut:]
	if a.ep == Completions {
		reasoning, content = "", text
	}
	id := int64(100)
	for c := range n {
		var ch answerChoice
		step := 1 + (int(at(4+c))+c)%5
		for _, part := range []struct {
			s         string
			reasoning bool
		}{{reasoning, true}, {content, false}} {
			for s := part.s; s != ""; {
				k := min(step, len(s))
				for k < len(s) && !utf8.RuneStart(s[k]) {
					k++
				}
				p := piece{ids: []int64{id}}
				if part.reasoning {
					p.reasoning = s[:k]
				} else {
					p.text = s[:k]
				}
				ch.pieces = append(ch.pieces, p)
				s, id = s[k:], id+int64(1+k%3)
			}
		}
		// The EOS, and a token a parser swallowed (an empty delta).
		ch.pieces = append(ch.pieces, piece{ids: []int64{id, id + 1}}, piece{ids: []int64{151645}})
		ch.finish = [...]string{"stop", "length"}[c%2]
		a.choices = append(a.choices, ch)
	}
	return a
}

// Whatever the order and nullness of the two reasoning keys, the text is
// recorded once, the same in a JSON answer and a stream.
func TestReasoningKeysRecordedOnce(t *testing.T) {
	for _, tt := range []struct{ fields, want string }{
		{`"reasoning":"ab","reasoning_content":"ab"`, "ab"},
		{`"reasoning_content":"ab","reasoning":"ab"`, "ab"},
		{`"reasoning":null,"reasoning_content":"ab"`, "ab"},
		{`"reasoning_content":"ab","reasoning":null`, "ab"},
		{`"reasoning_content":"ab"`, "ab"},
		{`"reasoning":"ab","reasoning_content":null`, "ab"},
		{`"reasoning":null`, ""},
	} {
		req := Request{Endpoint: Chat, N: 1, Prompts: 1, TokenIDs: true}
		body := `{"choices":[{"index":0,"message":{"role":"assistant","content":"x",` + tt.fields + `},"finish_reason":"stop","token_ids":[1]}]}`
		res, _, err := ParseResponse(&req, []byte(body), Strip{})
		if err != nil || res.Choices[0].Reasoning != tt.want {
			t.Errorf("JSON %s: reasoning %q (%v), want %q", tt.fields, res.Choices[0].Reasoning, err, tt.want)
		}
		st := NewStream(&req, Strip{})
		for range 2 {
			if _, err := st.Event([]byte(`{"choices":[{"index":0,"delta":{` + tt.fields + `},"finish_reason":null,"token_ids":[1]}]}`)); err != nil {
				t.Fatal(err)
			}
		}
		if got := st.Result().Choices[0].Reasoning; got != tt.want+tt.want {
			t.Errorf("stream %s: reasoning %q, want %q", tt.fields, got, tt.want+tt.want)
		}
	}
}
