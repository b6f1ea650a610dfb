package vllmsim

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const complPath = "/v1/completions"

func TestCompletionsKeyOrder(t *testing.T) {
	s := newSim(Options{})
	n := parseNode(t, post(t, s, complPath, `{"prompt":"Hello","logprobs":2,"return_token_ids":true}`).body)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"", []string{"id", "object", "created", "model", "choices", "service_tier", "system_fingerprint", "usage", "kv_transfer_params"}},
		{"choices.0", []string{"index", "text", "logprobs", "finish_reason", "stop_reason", "token_ids", "prompt_logprobs", "prompt_token_ids"}},
		{"choices.0.logprobs", []string{"text_offset", "token_logprobs", "tokens", "top_logprobs"}},
		{"usage", []string{"prompt_tokens", "total_tokens", "completion_tokens", "prompt_tokens_details"}},
	} {
		if got := keysAt(t, n, tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("keys of %q = %v, want %v", tc.path, got, tc.want)
		}
	}
	if n.s(t, "object") != "text_completion" || !strings.HasPrefix(n.s(t, "id"), "cmpl-") {
		t.Errorf("object/id: %s %s", n.s(t, "object"), n.s(t, "id"))
	}

	cs := chunks(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":3,"stream":true,"stream_options":{"include_usage":true}}`).body)
	for i, c := range cs[:3] {
		if got := keysAt(t, c, ""); !slices.Equal(got, []string{"id", "object", "created", "model", "choices", "usage"}) {
			t.Errorf("chunk %d keys %v", i, got)
		}
		if got := keysAt(t, c, "choices.0"); !slices.Equal(got, []string{"index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_token_ids", "token_ids"}) {
			t.Errorf("chunk %d choice keys %v", i, got)
		}
		if !c.isNull("usage") || !c.isNull("choices.0.prompt_token_ids") || !c.isNull("choices.0.token_ids") || c.s(t, "object") != "text_completion" {
			t.Errorf("chunk %d: %s", i, r(c))
		}
	}
	if got := keysAt(t, cs[3], "usage"); !slices.Equal(got, []string{"prompt_tokens", "total_tokens", "completion_tokens"}) {
		t.Errorf("usage chunk keys %v", got)
	}
}

func TestCompletionsPromptForms(t *testing.T) {
	s := newSim(Options{})
	hello := s.Tokenize("Hello world")
	for _, tc := range []struct {
		name   string
		prompt string
		want   [][]int64
	}{
		{"string", `"Hello world"`, [][]int64{hello}},
		{"list of strings", `["Hello world","Bye"]`, [][]int64{hello, s.Tokenize("Bye")}},
		{"token IDs", `[785,6722,315]`, [][]int64{{785, 6722, 315}}},
		{"lists of token IDs", `[[785,6722],[9707]]`, [][]int64{{785, 6722}, {9707}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := parseNode(t, post(t, s, complPath, `{"prompt":`+tc.prompt+`,"n":2,"max_tokens":4,"return_token_ids":true}`).body)
			if got := n.length(t, "choices"); got != 2*len(tc.want) {
				t.Fatalf("%d choices", got)
			}
			promptTotal, completion := 0, 0
			for i := 0; i < 2*len(tc.want); i++ {
				p := "choices." + strconv.Itoa(i)
				if n.i(t, p+".index") != int64(i) {
					t.Errorf("choice %d index %d", i, n.i(t, p+".index"))
				}
				// Prompt-major: index = prompt*n + sample.
				if got := n.ids(t, p+".prompt_token_ids"); !slices.Equal(got, tc.want[i/2]) {
					t.Errorf("choice %d prompt_token_ids %v, want %v", i, got, tc.want[i/2])
				}
				completion += n.length(t, p+".token_ids")
			}
			for _, ids := range tc.want {
				promptTotal += len(ids)
			}
			if n.i(t, "usage.prompt_tokens") != int64(promptTotal) || n.i(t, "usage.completion_tokens") != int64(completion) {
				t.Errorf("usage %d/%d, want %d/%d (each prompt counted once)", n.i(t, "usage.prompt_tokens"), n.i(t, "usage.completion_tokens"), promptTotal, completion)
			}
		})
	}
}

func TestCompletionsStreamInterleaving(t *testing.T) {
	s := newSim(Options{})
	body := `{"prompt":["The capital of France is","Hello"],"n":2,"max_tokens":3,"return_token_ids":true,"logprobs":1}`
	n := parseNode(t, post(t, s, complPath, body).body)
	cs := chunks(t, post(t, s, complPath, strings.TrimSuffix(body, "}")+`,"stream":true}`).body)
	if len(cs) != 12 {
		t.Fatalf("%d chunks, want 4 choices × 3 tokens", len(cs))
	}
	seen := map[int64]bool{}
	for i, c := range cs {
		idx := c.i(t, "choices.0.index")
		if idx != int64(i%4) {
			t.Errorf("chunk %d is for index %d: choices must interleave round-robin", i, idx)
		}
		pti := c.at("choices.0.prompt_token_ids")
		if !seen[idx] {
			if pti.kind != 'a' {
				t.Errorf("first chunk of index %d has no prompt_token_ids", idx)
			}
			seen[idx] = true
		} else if pti.kind != 'z' {
			t.Errorf("later chunk of index %d has prompt_token_ids", idx)
		}
	}
	for i := 0; i < 4; i++ {
		p := "choices." + strconv.Itoa(i)
		if got, want := streamIDs(t, cs, int64(i)), n.ids(t, p+".token_ids"); !slices.Equal(got, want) {
			t.Errorf("index %d: stream IDs %v, non-stream %v", i, got, want)
		}
		var text strings.Builder
		var offsets []int64
		for _, c := range cs {
			if c.i(t, "choices.0.index") == int64(i) {
				text.WriteString(c.s(t, "choices.0.text"))
				offsets = append(offsets, c.ids(t, "choices.0.logprobs.text_offset")...)
			}
		}
		if text.String() != n.s(t, p+".text") {
			t.Errorf("index %d: stream text %q, non-stream %q", i, text.String(), n.s(t, p+".text"))
		}
		if want := n.ids(t, p+".logprobs.text_offset"); !slices.Equal(offsets, want) {
			t.Errorf("index %d: stream text_offset %v, non-stream %v", i, offsets, want)
		}
	}
}

func TestCompletionsEcho(t *testing.T) {
	s := newSim(Options{})
	const prompt = "Hello, world"
	plain := parseNode(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5}`).body)
	gen := plain.s(t, "choices.0.text")

	n := parseNode(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5,"echo":true}`).body)
	if got := n.s(t, "choices.0.text"); got != prompt+gen {
		t.Errorf("echo text %q, want %q", got, prompt+gen)
	}
	// vLLM #57996: echo together with return_token_ids blanks the prompt.
	n = parseNode(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5,"echo":true,"return_token_ids":true}`).body)
	if got := n.s(t, "choices.0.text"); got != gen {
		t.Errorf("echo+return_token_ids text %q, want the generation only %q", got, gen)
	}
	if !strings.Contains(s.Detokenize(n.ids(t, "choices.0.prompt_token_ids")), "Hello, world") {
		t.Errorf("prompt IDs do not decode to the prompt")
	}
	// Token-ID prompts echo their decoded text.
	ids := s.Tokenize(prompt)
	n = parseNode(t, post(t, s, complPath, `{"prompt":`+string(appendInts(nil, ids))+`,"max_tokens":5,"echo":true}`).body)
	if got := n.s(t, "choices.0.text"); !strings.HasPrefix(got, prompt) {
		t.Errorf("token prompt echo %q", got)
	}

	t.Run("stream", func(t *testing.T) {
		// The echo branch sends prompt_token_ids with the first chunk even
		// without return_token_ids.
		cs := chunks(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5,"echo":true,"stream":true}`).body)
		if got := cs[0].ids(t, "choices.0.prompt_token_ids"); !slices.Equal(got, s.Tokenize(prompt)) {
			t.Errorf("first chunk prompt_token_ids %v", got)
		}
		if !cs[0].isNull("choices.0.token_ids") || !cs[1].isNull("choices.0.prompt_token_ids") {
			t.Errorf("echo stream chunks: %s / %s", r(cs[0]), r(cs[1]))
		}
		var text strings.Builder
		for _, c := range cs {
			text.WriteString(c.s(t, "choices.0.text"))
		}
		if text.String() != prompt+gen {
			t.Errorf("echo stream text %q", text.String())
		}
		cs = chunks(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5,"echo":true,"stream":true,"return_token_ids":true}`).body)
		if strings.HasPrefix(cs[0].s(t, "choices.0.text"), "Hello") {
			t.Errorf("stream echo+return_token_ids still starts with the prompt")
		}
	})

	t.Run("logprobs", func(t *testing.T) {
		n := parseNode(t, post(t, s, complPath, `{"prompt":"`+prompt+`","max_tokens":5,"echo":true,"logprobs":1,"return_token_ids":true}`).body)
		P, C := n.length(t, "choices.0.prompt_token_ids"), n.length(t, "choices.0.token_ids")
		if got := n.length(t, "choices.0.logprobs.tokens"); got != P+C {
			t.Errorf("%d logprob tokens, want prompt %d + output %d", got, P, C)
		}
		if !n.isNull("choices.0.logprobs.token_logprobs.0") || !n.isNull("choices.0.logprobs.top_logprobs.0") {
			t.Errorf("first echoed position is not null")
		}
		pl := n.at("choices.0.prompt_logprobs")
		if pl.kind != 'a' || len(pl.items) != P || pl.items[0].kind != 'z' {
			t.Errorf("prompt_logprobs %s", r(pl))
		}
	})
}

func TestCompletionsLogprobs(t *testing.T) {
	s := newSim(Options{})
	for _, k := range []int{0, 1, 3} {
		n := parseNode(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":6,"logprobs":`+strconv.Itoa(k)+`,"return_token_ids":true}`).body)
		ids := n.ids(t, "choices.0.token_ids")
		offsets := n.ids(t, "choices.0.logprobs.text_offset")
		off := int64(0)
		for i, id := range ids {
			tok := n.s(t, "choices.0.logprobs.tokens."+strconv.Itoa(i))
			if tok != s.Detokenize([]int64{id}) {
				t.Errorf("token %d %q", i, tok)
			}
			if offsets[i] != off {
				t.Errorf("text_offset[%d]=%d, want %d", i, offsets[i], off)
			}
			off += int64(utf8.RuneCountInString(tok))
			top := n.at("choices.0.logprobs.top_logprobs." + strconv.Itoa(i))
			if want := max(k, 1); len(top.keys) != want || top.keys[0] != tok {
				t.Errorf("k=%d top_logprobs[%d] keys %q", k, i, top.keys)
			}
			if lp := n.f(t, "choices.0.logprobs.token_logprobs."+strconv.Itoa(i)); lp >= 0 || lp != top.vals[0].f(t, "") {
				t.Errorf("token_logprobs[%d]=%v", i, lp)
			}
		}
	}
	// text_offset counts characters, not bytes (prompt tokens via echo).
	n := parseNode(t, post(t, s, complPath, `{"prompt":"Déjà vu 🐱 naïve","max_tokens":2,"logprobs":0,"echo":true}`).body)
	if got, want := n.ids(t, "choices.0.logprobs.text_offset")[:5], []int64{0, 4, 7, 9, 15}; !slices.Equal(got, want) {
		t.Errorf("text_offset %v, want %v", got, want)
	}
	n = parseNode(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":3,"logprobs":2,"return_tokens_as_token_ids":true,"return_token_ids":true}`).body)
	for i, id := range n.ids(t, "choices.0.token_ids") {
		want := "token_id:" + strconv.FormatInt(id, 10)
		if got := n.s(t, "choices.0.logprobs.tokens."+strconv.Itoa(i)); got != want {
			t.Errorf("token %q, want %q", got, want)
		}
		if got := n.at("choices.0.logprobs.top_logprobs." + strconv.Itoa(i)).keys[0]; got != want {
			t.Errorf("top key %q", got)
		}
	}
}

func TestCompletionsFinish(t *testing.T) {
	s := newSim(Options{})
	// max_tokens defaults to 16 on completions, like vLLM.
	n := parseNode(t, post(t, s, complPath, `{"prompt":"Hello","n":8,"return_token_ids":true}`).body)
	for i := 0; i < 8; i++ {
		p := "choices." + strconv.Itoa(i)
		ids := n.ids(t, p+".token_ids")
		switch n.s(t, p+".finish_reason") {
		case "length":
			if len(ids) != 16 {
				t.Errorf("choice %d: length with %d tokens", i, len(ids))
			}
		case "stop":
			if ids[len(ids)-1] != tokEndOfText || s.Detokenize(ids) != n.s(t, p+".text")+"<|endoftext|>" {
				t.Errorf("choice %d: decode %q, text %q", i, s.Detokenize(ids), n.s(t, p+".text"))
			}
		}
	}
	n = parseNode(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":200,"ignore_eos":true,"stop":"."}`).body)
	if n.s(t, "choices.0.stop_reason") != "." || strings.Contains(n.s(t, "choices.0.text"), ".") {
		t.Errorf("stop string: %s", r(n))
	}
	// The stream never sends text past the stop string.
	var streamed strings.Builder
	for _, c := range chunks(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":200,"ignore_eos":true,"stop":[". ","never ever"],"stream":true}`).body) {
		streamed.WriteString(c.s(t, "choices.0.text"))
	}
	n = parseNode(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":200,"ignore_eos":true,"stop":[". ","never ever"]}`).body)
	if streamed.String() != n.s(t, "choices.0.text") {
		t.Errorf("stream text %q, non-stream %q", streamed.String(), n.s(t, "choices.0.text"))
	}
	n = parseNode(t, post(t, s, complPath, `{"prompt":"Hello","max_tokens":200,"ignore_eos":true,"stop":".","include_stop_str_in_output":true}`).body)
	if !strings.HasSuffix(n.s(t, "choices.0.text"), ".") {
		t.Errorf("include_stop_str_in_output: %q", n.s(t, "choices.0.text"))
	}
}

func TestCompletionsNoTokenIDs(t *testing.T) {
	s := newSim(Options{NoTokenIDs: true})
	n := parseNode(t, post(t, s, complPath, `{"prompt":"Hello","echo":true,"return_token_ids":true}`).body)
	if got := keysAt(t, n, "choices.0"); !slices.Equal(got, []string{"index", "text", "logprobs", "finish_reason", "stop_reason", "prompt_logprobs"}) {
		t.Errorf("choice keys %v", got)
	}
	if !strings.HasPrefix(n.s(t, "choices.0.text"), "Hello") {
		t.Errorf("old servers ignore return_token_ids, so echo keeps the prompt")
	}
	for i, c := range chunks(t, post(t, s, complPath, `{"prompt":"Hello","echo":true,"stream":true,"return_token_ids":true}`).body) {
		if got := keysAt(t, c, "choices.0"); !slices.Equal(got, []string{"index", "text", "logprobs", "finish_reason", "stop_reason"}) {
			t.Errorf("chunk %d keys %v", i, got)
		}
	}
}
