package qwen3

import (
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
)

// Render renders the chat template for a chat-completions request the way
// vLLM does: messages and tools are the request's raw JSON arrays (tools nil
// when absent), kwargs its chat_template_kwargs object or nil. Messages get
// vLLM's preprocessing first (see preprocessMessages), tools become what
// pydantic's model_dump of vLLM's ChatCompletionToolsParam gives, and the
// template runs in transformers' Jinja setup (trim_blocks, lstrip_blocks,
// tojson as json.dumps(ensure_ascii=False), raise_exception).
func (m *Model) Render(messages, tools []byte, addGenerationPrompt, continueFinal bool, kwargs []byte) (string, error) {
	if addGenerationPrompt && continueFinal {
		return "", errors.New("qwen3: continue_final_message and add_generation_prompt are not compatible")
	}
	msgs, err := preprocessMessages(messages)
	if err != nil {
		return "", err
	}
	vars := map[string]any{}
	for k, v := range m.specialVars {
		vars[k] = v
	}
	if len(kwargs) > 0 && string(kwargs) != "null" {
		kv, err := parseJSON(kwargs)
		if err != nil {
			return "", fmt.Errorf("qwen3: chat_template_kwargs: %w", err)
		}
		ko, ok := kv.(object)
		if !ok {
			return "", fmt.Errorf("qwen3: chat_template_kwargs is %T, want an object", kv)
		}
		for _, mb := range ko {
			vars[mb.key] = toGonja(mb.val)
		}
	}
	var toolList any
	if len(tools) > 0 && string(tools) != "null" {
		tl, err := normalizeTools(tools)
		if err != nil {
			return "", err
		}
		toolList = toGonja(tl)
	}
	vars["messages"] = toGonja(msgs)
	vars["tools"] = toolList
	vars["add_generation_prompt"] = addGenerationPrompt

	tmpl, err := m.template()
	if err != nil {
		return "", err
	}
	out, err := tmpl.ExecuteToString(exec.NewContext(vars))
	if err != nil {
		return "", fmt.Errorf("qwen3: render chat template: %w", err)
	}
	if continueFinal {
		return trimToFinalMessage(out, msgs)
	}
	return out, nil
}

// trimToFinalMessage cuts the rendering right after the last message's
// content, as transformers' apply_chat_template(continue_final_message=True)
// does, so the model continues that message instead of closing it.
func trimToFinalMessage(out string, msgs []any) (string, error) {
	if len(msgs) == 0 {
		return "", errors.New("qwen3: continue_final_message with no messages")
	}
	last, _ := msgs[len(msgs)-1].(object)
	cv, _ := last.get("content")
	final, _ := cv.(string)
	stripped := strings.TrimSpace(final)
	loc := strings.LastIndex(out, stripped)
	if loc < 0 {
		return "", errors.New("qwen3: continue_final_message is set but the final message does not appear in the rendered chat")
	}
	left := strings.TrimLeft(final, " \t\n\r\v\f")
	if strings.HasPrefix(out[loc:], left) {
		return out[:loc+len(left)], nil
	}
	return out[:loc+len(stripped)], nil
}

// template compiles the chat template once, in an environment like
// transformers' ImmutableSandboxedEnvironment(trim_blocks=True,
// lstrip_blocks=True, extensions=[loopcontrols]) with its tojson and
// raise_exception.
func (m *Model) template() (*exec.Template, error) {
	m.tmplOnce.Do(func() {
		cfg := config.New()
		cfg.TrimBlocks = true
		cfg.LeftStripBlocks = true
		cfg.KeepTrailingNewline = false

		filters := exec.NewFilterSet(map[string]exec.FilterFunction{}).Update(builtins.Filters)
		if err := filters.Replace("tojson", filterToJSON); err != nil {
			m.tmplErr = fmt.Errorf("qwen3: %w", err)
			return
		}
		globals := exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables)
		globals.Set("raise_exception", raiseException)
		env := &exec.Environment{
			Context:           globals,
			Filters:           filters,
			Tests:             builtins.Tests,
			ControlStructures: builtins.ControlStructures,
			Methods:           pythonMethods(),
		}
		const name = "chat_template"
		loader, err := loaders.NewMemoryLoader(map[string]string{"/" + name: m.chatTemplate})
		if err != nil {
			m.tmplErr = fmt.Errorf("qwen3: %w", err)
			return
		}
		m.tmpl, err = exec.NewTemplate("/"+name, cfg, loader, env)
		if err != nil {
			m.tmplErr = fmt.Errorf("qwen3: parse chat template: %w", err)
		}
	})
	return m.tmpl, m.tmplErr
}

// filterToJSON is transformers' tojson: json.dumps(x, ensure_ascii=False,
// indent=None) with insertion-order keys. indent is not supported (no Qwen
// template uses it).
func filterToJSON(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	if params != nil && (len(params.Args) > 0 || len(params.KwArgs) > 0) {
		return exec.AsValue(errors.New("tojson: arguments are not supported"))
	}
	var sb strings.Builder
	if err := pyDumps(&sb, in); err != nil {
		return exec.AsValue(err)
	}
	return exec.AsSafeValue(sb.String())
}

// pyList is a template list with Python's negative indexing; gonja v2.9.1
// finds no x[-1] in a one-element list, which breaks Qwen3's
// content.split('</think>')[0]....split('<think>')[-1] when the content has
// </think> but no <think>.
type pyList []any

// GetItem implements exec.ItemGetter.
func (l pyList) GetItem(key any) (*exec.Value, bool) {
	i, ok := key.(int)
	if !ok {
		return exec.AsValue(nil), false
	}
	if i < 0 {
		i += len(l)
	}
	if i < 0 || i >= len(l) {
		return exec.AsValue(nil), false
	}
	return exec.ToValue(l[i]), true
}

// pythonMethods is gonja's method set with string split, rsplit and
// splitlines returning pyLists. gonja's MethodSet cannot be listed, so its
// string methods are copied by name.
func pythonMethods() exec.Methods {
	strMethodNames := strings.Fields(`capitalize capwords casefold center count encode endswith expandtabs
		find format format_map isalnum isalpha isascii isdecimal isdigit islower isnumeric isprintable
		isspace istitle isupper join ljust lower lstrip partition removeprefix removesuffix replace rfind
		rjust rpartition rsplit rstrip split splitlines startswith strip swapcase title upper zfill`)
	strs := map[string]exec.Method[string]{}
	for _, name := range strMethodNames {
		if fn, ok := builtins.Methods.Str.Get(name); ok {
			strs[name] = fn
		}
	}
	for _, name := range []string{"split", "rsplit", "splitlines"} {
		fn, ok := strs[name]
		if !ok {
			continue
		}
		strs[name] = func(self string, sv *exec.Value, args *exec.VarArgs) (any, error) {
			res, err := fn(self, sv, args)
			if err != nil {
				return res, err
			}
			rv := reflect.ValueOf(res)
			if rv.Kind() != reflect.Slice {
				return res, nil
			}
			l := make(pyList, rv.Len())
			for i := range l {
				l[i] = fmt.Sprint(rv.Index(i).Interface())
			}
			return l, nil
		}
	}
	ms := builtins.Methods
	ms.Str = exec.NewMethodSet(strs)
	return ms
}

func raiseException(msg string) *exec.Value {
	return exec.AsValue(fmt.Errorf("chat template raised: %s", msg))
}
