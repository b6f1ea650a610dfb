package qwen3

import (
	"strings"
	"testing"
)

// templateModel is a Model with only a chat template: enough for Render,
// so these tests need no tokenizer files.
func templateModel(tmpl string) *Model { return &Model{chatTemplate: tmpl} }

func TestRenderPreprocessing(t *testing.T) {
	const dump = `{%- for m in messages %}{{ m.role }}|{{ m.content }}|{{ m.reasoning_content }}|{% if m.tool_calls is defined %}{{ m.tool_calls | tojson }}{% endif %}|{{ m.tool_call_id }}|{{ m.name }}
{% endfor %}{{ tools | tojson }}|{{ add_generation_prompt }}|{{ enable_thinking }}`
	m := templateModel(dump)
	cases := []struct {
		name, messages, tools, kwargs, want string
	}{
		{"null content is empty; list content joins text parts with \\n",
			`[{"role":"user","content":null},{"role":"user","content":[{"type":"text","text":"a"},"b",{"type":"text","text":null},{"type":"refusal","refusal":"c"}]}]`, ``, ``,
			"user|||||\nuser|a\nb\nc||||\nnull|True|"},
		{"tool call arguments are json.loads'ed, keeping key order; bad JSON gives {}",
			`[{"role":"assistant","content":"","tool_calls":[{"id":"1","type":"function","function":{"name":"f","arguments":"{\"z\":1,\"a\":[1,2.50,1e3,\"\\u00e9\"]}"}},{"id":"2","type":"function","function":{"name":"g","arguments":"not json"}},{"id":"3","type":"function","function":{"name":"h","arguments":null}}]}]`, ``, ``,
			`assistant|||[{"id": "1", "type": "function", "function": {"name": "f", "arguments": {"z": 1, "a": [1, 2.5, 1000.0, "é"]}}}, {"id": "2", "type": "function", "function": {"name": "g", "arguments": {}}}, {"id": "3", "type": "function", "function": {"name": "h", "arguments": {}}}]||` + "\nnull|True|"},
		{"empty tool_calls are dropped; reasoning is copied to reasoning_content",
			`[{"role":"assistant","content":"x","tool_calls":[],"reasoning":"r"},{"role":"tool","content":"o","tool_call_id":"c1","name":"search"}]`, ``, ``,
			"assistant|x|r|||\ntool|o|||c1|search\nnull|True|"},
		{"tools get model_dump's shape: type, function{name, description, parameters, extras}, extras",
			`[]`, `[{"function":{"parameters":{"b":1,"a":2},"name":"s","strict":true},"x":1}]`, `{"enable_thinking": false}`,
			`[{"type": "function", "function": {"name": "s", "description": null, "parameters": {"b": 1, "a": 2}, "strict": true}, "x": 1}]|True|False`},
	}
	for _, c := range cases {
		var tools, kw []byte
		if c.tools != "" {
			tools = []byte(c.tools)
		}
		if c.kwargs != "" {
			kw = []byte(c.kwargs)
		}
		got, err := m.Render([]byte(c.messages), tools, true, false, kw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	m := templateModel(`{{ raise_exception("no " + messages[0].role) }}`)
	cases := []struct{ name, messages, tools string }{
		{"raise_exception", `[{"role":"user","content":"x"}]`, ``},
		{"messages not an array", `{"role":"user"}`, ``},
		{"role missing", `[{"content":"x"}]`, ``},
		{"image part on a text model", `[{"role":"user","content":[{"type":"image_url","image_url":{"url":"u"}}]}]`, ``},
		{"tool without a name", `[{"role":"user","content":"x"}]`, `[{"type":"function","function":{}}]`},
		{"tool call without function", `[{"role":"assistant","content":"x","tool_calls":[{"id":"1"}]}]`, ``},
	}
	for _, c := range cases {
		var tools []byte
		if c.tools != "" {
			tools = []byte(c.tools)
		}
		if out, err := m.Render([]byte(c.messages), tools, false, false, nil); err == nil {
			t.Errorf("%s: no error, rendered %q", c.name, out)
		}
	}
	if _, err := m.Render([]byte(`[{"role":"user","content":"x"}]`), nil, true, true, nil); err == nil {
		t.Error("add_generation_prompt with continue_final_message: no error")
	}
	_, err := m.Render([]byte(`[{"role":"user","content":"x"}]`), nil, false, false, nil)
	if err == nil || !strings.Contains(err.Error(), "no user") {
		t.Errorf("raise_exception message lost: %v", err)
	}
}

func TestRenderContinueFinal(t *testing.T) {
	m := templateModel(`{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content | trim }}<|im_end|>
{% endfor %}`)
	for content, want := range map[string]string{
		"Partial answer":    "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nPartial answer",
		"Partial answer \n": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nPartial answer",
	} {
		msgs := `[{"role":"user","content":"q"},{"role":"assistant","content":` + quote(content) + `}]`
		got, err := m.Render([]byte(msgs), nil, false, true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("continue %q: got %q, want %q", content, got, want)
		}
	}
}

func quote(s string) string {
	var sb strings.Builder
	pyString(&sb, s)
	return sb.String()
}

func TestPyFloat(t *testing.T) {
	cases := map[float64]string{
		1.5: "1.5", 1000: "1000.0", 1e16: "1e+16", 1e15: "1000000000000000.0", 1e-4: "0.0001",
		1e-5: "1e-05", 0: "0.0", 0.1: "0.1", 123456.789: "123456.789", 1.5e300: "1.5e+300", -2.5e-7: "-2.5e-07",
	}
	for f, want := range cases {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestPyString(t *testing.T) {
	for in, want := range map[string]string{
		"plain": `"plain"`, `q"b\`: `"q\"b\\"`, "\n\r\t\b\f": `"\n\r\t\b\f"`, "\x01\x1f": `"\u0001\u001f"`,
		"é中🙂</>&\u2028\x7f": "\"é中🙂</>&\u2028\x7f\"",
	} {
		if got := quote(in); got != want {
			t.Errorf("pyString(%q) = %s, want %s", in, got, want)
		}
	}
}
