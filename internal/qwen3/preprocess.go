package qwen3

import (
	"fmt"
	"strings"
)

// preprocessMessages turns a request's messages into the conversation vLLM
// hands the template (vllm/entrypoints/chat_utils.py,
// _parse_chat_message_content and _postprocess_messages), for a template
// whose content format is "string", as Qwen3's is:
//   - content becomes a string: null gives "", a list of parts the texts of
//     its text/refusal/thinking parts joined by "\n";
//   - assistant messages keep tool_calls (an empty list is dropped) and
//     carry "reasoning" as both reasoning and reasoning_content (older vLLM
//     read reasoning_content, so that is accepted when reasoning is absent);
//   - tool messages keep tool_call_id, any message a string name;
//   - each tool call's function.arguments JSON string is json.loads'ed into
//     an object (keys in order), "{}" when it does not parse or is neither
//     a string, an object nor a list (trajectories.md §3.7).
func preprocessMessages(raw []byte) ([]any, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("qwen3: messages: %w", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("qwen3: messages is %T, want an array", v)
	}
	out := make([]any, 0, len(list))
	for i, e := range list {
		msg, ok := e.(object)
		if !ok {
			return nil, fmt.Errorf("qwen3: messages[%d] is %T, want an object", i, e)
		}
		conv, err := conversationMessage(msg)
		if err != nil {
			return nil, fmt.Errorf("qwen3: messages[%d]: %w", i, err)
		}
		out = append(out, conv)
	}
	return out, nil
}

func conversationMessage(msg object) (object, error) {
	rv, _ := msg.get("role")
	role, ok := rv.(string)
	if !ok {
		return nil, fmt.Errorf("role is %T, want a string", rv)
	}
	cv, _ := msg.get("content")
	content, err := contentString(cv)
	if err != nil {
		return nil, err
	}
	conv := object{{"role", role}, {"content", content}}
	switch role {
	case "assistant":
		if tc, ok := msg.get("tool_calls"); ok && tc != nil {
			calls, err := toolCalls(tc)
			if err != nil {
				return nil, err
			}
			if len(calls) > 0 {
				conv.set("tool_calls", calls)
			}
		}
		reasoning, ok := msg.get("reasoning")
		if !ok || reasoning == nil {
			reasoning, ok = msg.get("reasoning_content")
		}
		if ok && reasoning != nil {
			conv.set("reasoning", reasoning)
			conv.set("reasoning_content", reasoning)
		}
	case "tool":
		if id, ok := msg.get("tool_call_id"); ok {
			conv.set("tool_call_id", id)
		}
	}
	if name, ok := msg.get("name"); ok {
		if s, ok := name.(string); ok {
			conv.set("name", s)
		}
	}
	return conv, nil
}

// contentString flattens message content for a "string"-format template.
func contentString(v any) (string, error) {
	switch c := v.(type) {
	case nil:
		return "", nil
	case string:
		return c, nil
	case []any:
		var texts []string
		for i, p := range c {
			switch part := p.(type) {
			case string:
				texts = append(texts, part)
			case object:
				tv, _ := part.get("type")
				typ, _ := tv.(string)
				field := map[string]string{"text": "text", "input_text": "text", "output_text": "text", "refusal": "refusal", "thinking": "thinking"}[typ]
				if field == "" {
					return "", fmt.Errorf("content[%d]: part type %q is not supported by a text-only model", i, typ)
				}
				t, _ := part.get(field)
				if t == nil {
					continue // vLLM skips text parts without text
				}
				s, ok := t.(string)
				if !ok {
					return "", fmt.Errorf("content[%d].%s is %T, want a string", i, field, t)
				}
				texts = append(texts, s)
			default:
				return "", fmt.Errorf("content[%d] is %T, want an object or a string", i, p)
			}
		}
		return strings.Join(texts, "\n"), nil
	default:
		return "", fmt.Errorf("content is %T, want a string, an array or null", v)
	}
}

func toolCalls(v any) ([]any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("tool_calls is %T, want an array", v)
	}
	out := make([]any, 0, len(list))
	for i, e := range list {
		call, ok := e.(object)
		if !ok {
			return nil, fmt.Errorf("tool_calls[%d] is %T, want an object", i, e)
		}
		call = append(object(nil), call...)
		fv, _ := call.get("function")
		fn, ok := fv.(object)
		if !ok {
			return nil, fmt.Errorf("tool_calls[%d].function is %T, want an object", i, fv)
		}
		fn = append(object(nil), fn...)
		args, _ := fn.get("arguments")
		switch a := args.(type) {
		case string:
			parsed, err := parseJSON([]byte(a))
			if err != nil {
				parsed = object{}
			}
			fn.set("arguments", parsed)
		case object, []any:
		default:
			fn.set("arguments", object{})
		}
		call.set("function", fn)
		out = append(out, call)
	}
	return out, nil
}

// normalizeTools gives each tool the shape vLLM renders it with:
// ChatCompletionToolsParam.model_dump(), i.e. "type" then "function" with
// name, description and parameters (null when absent) first, then any
// other keys in the order sent (the models allow extra fields).
func normalizeTools(raw []byte) ([]any, error) {
	v, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("qwen3: tools: %w", err)
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("qwen3: tools is %T, want an array", v)
	}
	out := make([]any, 0, len(list))
	for i, e := range list {
		tool, ok := e.(object)
		if !ok {
			return nil, fmt.Errorf("qwen3: tools[%d] is %T, want an object", i, e)
		}
		typ, ok := tool.get("type")
		if !ok {
			typ = "function"
		}
		if typ != "function" {
			return nil, fmt.Errorf("qwen3: tools[%d].type is %v, want \"function\"", i, typ)
		}
		fv, _ := tool.get("function")
		fn, ok := fv.(object)
		if !ok {
			return nil, fmt.Errorf("qwen3: tools[%d].function is %T, want an object", i, fv)
		}
		if name, _ := fn.get("name"); name == nil {
			return nil, fmt.Errorf("qwen3: tools[%d].function.name is missing", i)
		} else if _, ok := name.(string); !ok {
			return nil, fmt.Errorf("qwen3: tools[%d].function.name is %T, want a string", i, name)
		}
		nt := object{{"type", "function"}, {"function", declaredFirst(fn, "name", "description", "parameters")}}
		for _, mb := range tool {
			if mb.key != "type" && mb.key != "function" {
				nt = append(nt, mb)
			}
		}
		out = append(out, nt)
	}
	return out, nil
}

// declaredFirst orders o as pydantic dumps a model with extra="allow":
// declared fields first (null when absent), then the extras.
func declaredFirst(o object, declared ...string) object {
	out := make(object, 0, len(o)+len(declared))
	for _, k := range declared {
		v, _ := o.get(k)
		out = append(out, member{k, v})
	}
	for _, mb := range o {
		isDeclared := false
		for _, k := range declared {
			isDeclared = isDeclared || mb.key == k
		}
		if !isDeclared {
			out = append(out, mb)
		}
	}
	return out
}
