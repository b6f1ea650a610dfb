package vllmsim

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// byteTokenizer is a tiny real-BPE stand-in: one token per byte (ID 1000 +
// byte), Qwen's three special tokens atomic. Like a byte-level BPE, a
// token can end inside a multi-byte character.
type byteTokenizer struct{}

var byteSpecials = map[string]int64{"<|endoftext|>": tokEndOfText, "<|im_start|>": tokImStart, "<|im_end|>": tokImEnd}

func (byteTokenizer) Encode(text string) []int64 {
	var ids []int64
outer:
	for i := 0; i < len(text); {
		for sp, id := range byteSpecials {
			if strings.HasPrefix(text[i:], sp) {
				ids = append(ids, id)
				i += len(sp)
				continue outer
			}
		}
		ids = append(ids, 1000+int64(text[i]))
		i++
	}
	return ids
}

func (byteTokenizer) Decode(ids []int64) string {
	var b []byte
	for _, id := range ids {
		for sp, sid := range byteSpecials {
			if sid == id {
				b = append(b, sp...)
			}
		}
		if id >= 1000 && id < 1256 {
			b = append(b, byte(id-1000))
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// recordingTemplate renders "role: content" lines and records its inputs.
type recordingTemplate struct {
	messages, tools, kwargs string
	fail                    bool
}

func (r *recordingTemplate) Render(messages, tools []byte, addGen, continueFinal bool, kwargs []byte) (string, error) {
	if r.fail {
		return "", errors.New("template exploded")
	}
	r.messages, r.tools, r.kwargs = string(messages), string(tools), string(kwargs)
	out := "<|im_start|>" + string(messages) + "<|im_end|>"
	if addGen {
		out += "<|im_start|>assistant\n"
	}
	return out, nil
}

func TestPluggableCodec(t *testing.T) {
	tmpl := &recordingTemplate{}
	const answer = "Héllo 🐱"
	s := newSim(Options{Tokenizer: byteTokenizer{}, ChatTemplate: tmpl, Policy: func([]Message, int) string { return answer }})
	body := `"messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]},{"role":"assistant","content":null,"reasoning":"R","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{\"x\": 1.50}"}}]},{"role":"tool","content":"42","tool_call_id":"c1"}],"chat_template_kwargs":{"enable_thinking":false},"return_token_ids":true,"logprobs":true`
	n := parseNode(t, post(t, s, chatPath, `{`+body+`}`).body)

	wantMsgs := `[{"role":"user","content":"a\nb"},{"role":"assistant","content":"","reasoning":"R","reasoning_content":"R","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{"x":1.50}}}]},{"role":"tool","content":"42","tool_call_id":"c1"}]`
	if tmpl.messages != wantMsgs || tmpl.tools != "" || tmpl.kwargs != `{"enable_thinking":false}` {
		t.Errorf("template got messages %s tools %q kwargs %q", tmpl.messages, tmpl.tools, tmpl.kwargs)
	}
	prompt := n.ids(t, "prompt_token_ids")
	if want := (byteTokenizer{}).Encode("<|im_start|>" + wantMsgs + "<|im_end|><|im_start|>assistant\n"); !equalIDs(prompt, want) {
		t.Errorf("prompt IDs are not the tokenizer's encoding of the template text")
	}
	ids := n.ids(t, "choices.0.token_ids")
	if !equalIDs(ids, (byteTokenizer{}).Encode(answer+"<|im_end|>")) {
		t.Errorf("token_ids %v", ids)
	}
	if got := n.s(t, "choices.0.message.content"); got != answer {
		t.Errorf("content %q", got)
	}
	if got := n.s(t, "choices.0.logprobs.content.0.token"); got != "H" {
		t.Errorf("logprob token %q", got)
	}

	// Streamed content never splits a character, and adds up.
	var sb strings.Builder
	for _, c := range chunks(t, post(t, s, chatPath, `{`+body+`,"stream":true}`).body)[1:] {
		d := c.s(t, "choices.0.delta.content")
		if !utf8.ValidString(d) || strings.ContainsRune(d, utf8.RuneError) {
			t.Errorf("delta %q", d)
		}
		sb.WriteString(d)
	}
	if sb.String() != answer {
		t.Errorf("streamed %q", sb.String())
	}

	// /tokenize and /detokenize go through the same codec.
	tok := parseNode(t, post(t, s, "/tokenize", `{`+body+`}`).body)
	if !equalIDs(tok.ids(t, "tokens"), prompt) {
		t.Errorf("/tokenize messages differ from the chat prompt")
	}
	if got := s.Detokenize(prompt[:1]); got != "<|im_start|>" {
		t.Errorf("Detokenize %q", got)
	}
	if got := parseNode(t, post(t, s, "/tokenize", `{"prompt":"é"}`).body).ids(t, "tokens"); len(got) != 2 {
		t.Errorf("/tokenize prompt %v", got)
	}

	// A character the sample ends inside (finish "length") is not in the
	// text, as vLLM's incremental detokenizer never flushes it; its bytes
	// are in token_ids.
	cut := parseNode(t, post(t, s, chatPath, `{`+body+`,"max_tokens":2}`).body)
	if got := cut.s(t, "choices.0.message.content"); got != "H" {
		t.Errorf("truncated content %q", got)
	}

	// A failing template is a 400.
	tmpl.fail = true
	if r := post(t, s, chatPath, `{`+body+`}`); r.code != 400 || !strings.Contains(string(r.body), "template exploded") {
		t.Errorf("failing template: %d %s", r.code, r.body)
	}
}
