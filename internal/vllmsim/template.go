package vllmsim

import (
	"fmt"
	"strings"
)

// This file holds the Go renderings of Qwen's chat templates. vLLM hands the
// template messages it has already normalised (content flattened to a
// string, reasoning copied to reasoning_content, string tool-call arguments
// json.loads-ed into dicts by _postprocess_messages); Message is that
// normalised form, so the renderers below only reproduce the Jinja.

// Template names for Options.Template.
const (
	TemplateQwen25 = "qwen2.5"
	TemplateQwen3  = "qwen3"
)

// ValidTemplate reports whether name selects a chat template New knows
// ("" means the default, qwen2.5). New itself falls back to qwen2.5 on an
// unknown name, so callers that take the name from a user check it here.
func ValidTemplate(name string) error {
	switch name {
	case "", TemplateQwen25, TemplateQwen3:
		return nil
	}
	return fmt.Errorf("vllmsim: unknown chat template %q (known: %q, %q)", name, TemplateQwen25, TemplateQwen3)
}

// defaultSystemPrompt is the system turn the qwen2.5 rendering adds when the
// conversation has none. (Real Qwen2.5-Instruct says "You are Qwen, created
// by Alibaba Cloud. You are a helpful assistant."; the simulator keeps the
// shorter prompt of vllm-wire.md's captures so their token counts match.)
const defaultSystemPrompt = "You are a helpful assistant."

// toolsPreamble and toolsPostamble frame the <tools> list in the system turn
// of both templates.
const (
	toolsPreamble  = "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>"
	toolsPostamble = "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>"
)

// toolsBlock renders request tools the way both templates do after the
// system text: "\n\n", the preamble, one tojson line per tool, the postamble.
func toolsBlock(tools []toolDef) string {
	if len(tools) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("\n\n")
	sb.WriteString(toolsPreamble)
	for _, t := range tools {
		sb.WriteString("\n")
		sb.WriteString(t.json)
	}
	sb.WriteString(toolsPostamble)
	return sb.String()
}

// templateInput is what a chat template sees.
type templateInput struct {
	messages            []Message
	tools               []toolDef
	addGenerationPrompt bool
	// noThink is chat_template_kwargs.enable_thinking being JSON false
	// (Jinja's "is false" is an identity test, so 0 or "false" do not count).
	noThink bool
}

// renderGo renders in with the named Go template (qwen2.5 unless "qwen3").
func renderGo(name string, in templateInput) string {
	if name == TemplateQwen3 {
		return renderQwen3(in)
	}
	return renderQwen25(in)
}

// renderQwen25 is Qwen2.5-Instruct's template: history is rendered as
// given; tool calls always go through tojson.
func renderQwen25(in templateInput) string {
	msgs := in.messages
	var b strings.Builder
	firstSystem := len(msgs) > 0 && msgs[0].Role == "system"
	b.WriteString("<|im_start|>system\n")
	if firstSystem {
		b.WriteString(msgs[0].Content)
	} else {
		b.WriteString(defaultSystemPrompt)
	}
	b.WriteString(toolsBlock(in.tools))
	b.WriteString("<|im_end|>\n")
	for i, m := range msgs {
		switch {
		case m.Role == "user" || (m.Role == "system" && i > 0) || (m.Role == "assistant" && len(m.ToolCalls) == 0):
			b.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		case m.Role == "assistant":
			b.WriteString("<|im_start|>assistant")
			if m.Content != "" {
				b.WriteString("\n" + m.Content)
			}
			for _, tc := range m.ToolCalls {
				b.WriteString("\n")
				writeToolCall(&b, tc, false)
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			writeToolResponse(&b, msgs, i)
		}
		// Other roles (and the first system message) render nothing.
	}
	if in.addGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
	}
	return b.String()
}

// renderQwen3 is Qwen3-8B's template (trajectories.md §3.1): reasoning is
// kept only for assistant turns after the last real user query, and then
// normalised to "<think>\n…\n</think>\n\n".
func renderQwen3(in templateInput) string {
	msgs := in.messages
	var b strings.Builder
	firstSystem := len(msgs) > 0 && msgs[0].Role == "system"
	if len(in.tools) > 0 {
		b.WriteString("<|im_start|>system\n")
		if firstSystem {
			b.WriteString(msgs[0].Content + "\n\n")
		}
		b.WriteString(toolsBlock(in.tools)[2:])
		b.WriteString("<|im_end|>\n")
	} else if firstSystem {
		b.WriteString("<|im_start|>system\n" + msgs[0].Content + "<|im_end|>\n")
	}
	lastQuery := len(msgs) - 1
	for i := len(msgs) - 1; i >= 0; i-- {
		c := msgs[i].Content
		if msgs[i].Role == "user" && !(strings.HasPrefix(c, "<tool_response>") && strings.HasSuffix(c, "</tool_response>")) {
			lastQuery = i
			break
		}
	}
	for i, m := range msgs {
		content := m.Content
		switch {
		case m.Role == "user" || (m.Role == "system" && i > 0):
			b.WriteString("<|im_start|>" + m.Role + "\n" + content + "<|im_end|>\n")
		case m.Role == "assistant":
			reasoning := ""
			if m.hasReasoning() {
				reasoning = m.Reasoning
			} else if strings.Contains(content, "</think>") {
				parts := strings.Split(content, "</think>")
				inner := strings.Split(strings.TrimRight(parts[0], "\n"), "<think>")
				reasoning = strings.TrimLeft(inner[len(inner)-1], "\n")
				content = strings.TrimLeft(parts[len(parts)-1], "\n")
			}
			if i > lastQuery && (i == len(msgs)-1 || reasoning != "") {
				b.WriteString("<|im_start|>assistant\n<think>\n" + strings.Trim(reasoning, "\n") + "\n</think>\n\n" + strings.TrimLeft(content, "\n"))
			} else {
				b.WriteString("<|im_start|>assistant\n" + content)
			}
			for j, tc := range m.ToolCalls {
				if j > 0 || content != "" {
					b.WriteString("\n")
				}
				writeToolCall(&b, tc, true)
			}
			b.WriteString("<|im_end|>\n")
		case m.Role == "tool":
			writeToolResponse(&b, msgs, i)
		}
	}
	if in.addGenerationPrompt {
		b.WriteString("<|im_start|>assistant\n")
		if in.noThink {
			b.WriteString("<think>\n\n</think>\n\n")
		}
	}
	return b.String()
}

// writeToolCall writes one <tool_call> block. vLLM has already json.loads-ed
// string arguments, so both templates normally print them with tojson;
// Qwen3's "is string" branch applies only when the loaded value is itself a
// string.
func writeToolCall(b *strings.Builder, tc ToolCall, verbatimStrings bool) {
	b.WriteString("<tool_call>\n{\"name\": \"" + tc.Name + "\", \"arguments\": ")
	b.WriteString(renderArguments(tc.Arguments, verbatimStrings))
	b.WriteString("}\n</tool_call>")
}

// renderArguments is _postprocess_messages' json.loads followed by the
// template's tojson (json.dumps, ensure_ascii=False, ", " and ": ").
// Empty arguments become {}. Arguments that are not JSON make vLLM fail the
// request; the simulator prints them verbatim instead.
func renderArguments(args string, verbatimStrings bool) string {
	if args == "" {
		return "{}"
	}
	v, err := parseOrdered([]byte(args))
	if err != nil {
		return args
	}
	if v.kind == 's' && verbatimStrings {
		return v.str
	}
	return pyDumps(v)
}

// writeToolResponse writes tool message i: consecutive tool messages share
// one user turn, each wrapped in <tool_response>.
func writeToolResponse(b *strings.Builder, msgs []Message, i int) {
	if i == 0 || msgs[i-1].Role != "tool" {
		b.WriteString("<|im_start|>user")
	}
	b.WriteString("\n<tool_response>\n" + msgs[i].Content + "\n</tool_response>")
	if i == len(msgs)-1 || msgs[i+1].Role != "tool" {
		b.WriteString("<|im_end|>\n")
	}
}

// continueFinalMessage is transformers' continue_final_message: render the
// conversation closed, then cut after the last occurrence of the final
// message's content (the template may have normalised its whitespace).
func continueFinalMessage(rendered string, msgs []Message) (string, error) {
	if len(msgs) == 0 {
		return rendered, nil
	}
	final := msgs[len(msgs)-1].Content
	stripped := strings.TrimSpace(final)
	loc := strings.LastIndex(rendered, stripped)
	if loc < 0 {
		return "", fmt.Errorf("continue_final_message is set but the final message does not appear in the chat after applying the chat template! This can happen if the chat template deletes portions of the final message. Please verify the chat template and final message in your chat to ensure they are compatible.")
	}
	n := len(strings.TrimLeftFunc(final, isSpaceRune))
	if end := loc + n; end <= len(rendered) && rendered[loc:end] == final {
		return rendered[:end], nil
	}
	return rendered[:loc+len(stripped)], nil
}

func isSpaceRune(r rune) bool { return strings.TrimSpace(string(r)) == "" }
