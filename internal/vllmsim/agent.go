package vllmsim

import (
	"hash/fnv"
	"strings"
)

// PolicyRequest is what Options.AgentPolicy sees of a chat request.
type PolicyRequest struct {
	Messages []Message
	// Tools are the offered tools, in request order.
	Tools []Tool
	// ToolChoice is "none", "auto", "required", or the function name of a
	// named tool_choice.
	ToolChoice string
	// Thinking is false when chat_template_kwargs.enable_thinking is false
	// (a thinking model then answers without a think block).
	Thinking bool
	// Template is the server's template name (TemplateQwen25, TemplateQwen3).
	Template string
	// Sample is the index of the sample being generated (n > 1).
	Sample int
}

// Tool is one offered function.
type Tool struct {
	Name        string
	Description string
	// Params are the names of parameters.properties, in order; Required
	// those of parameters.required.
	Params   []string
	Required []string
}

// policyRequest builds the AgentPolicy view of req (Sample 0).
func (s *Server) policyRequest(req *chatRequest) PolicyRequest {
	pr := PolicyRequest{
		Messages:   append([]Message(nil), req.messages...),
		ToolChoice: req.toolChoice,
		Thinking:   req.thinkingEnabled(),
		Template:   s.template,
	}
	if req.toolChoice == "named" {
		pr.ToolChoice = req.toolChoiceName
	}
	for _, t := range req.tools {
		pr.Tools = append(pr.Tools, Tool{Name: t.name, Description: t.description, Params: t.params, Required: t.required})
	}
	return pr
}

// AgentPolicy is a scripted tool-using agent, for Options.AgentPolicy. When
// tools are offered and no tool result has come back since the last user
// message, it thinks and calls the first tool (the named one of a named
// tool_choice) with the words of the last user message as its first
// required parameter ("query" when none is required). After a tool result
// it thinks and answers "The answer is <result>." quoting the result. The
// think block is "<think>\n…\n</think>\n\n" unless thinking is off.
//
// On a qwen3 server, by a hash of the question and the sample, it writes
// some calls in compact JSON ({"name":"x","arguments":{"query":"y"}}),
// which the template re-serialises when the call comes back in the history
// (tool-call re-serialisation drift); the others are in the template's own
// spacing. On a qwen2.5 server, which is not a thinking model, it writes no
// think block and every call in the template's spacing with nothing before
// it, so that the history renders back exactly as sampled.
// Without tools, or with tool_choice "none", it returns "".
func AgentPolicy(req PolicyRequest) string {
	if len(req.Tools) == 0 || req.ToolChoice == "none" {
		return ""
	}
	lastUser := -1
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			lastUser = i
			break
		}
	}
	question := ""
	if lastUser >= 0 {
		question = strings.Join(strings.Fields(req.Messages[lastUser].Content), " ")
	}
	result, haveResult := "", false
	for _, m := range req.Messages[lastUser+1:] {
		if m.Role == "tool" {
			result, haveResult = m.Content, true
		}
	}
	intact := req.Template == TemplateQwen25
	think := func(reasoning string) string {
		if !req.Thinking || intact {
			return ""
		}
		return thinkBlock(reasoning)
	}
	if haveResult {
		answer := strings.TrimSuffix(strings.Join(strings.Fields(result), " "), ".")
		return think("The tool says: "+answer+". That answers the question.") + "The answer is " + answer + "."
	}
	tool := req.Tools[0]
	for _, t := range req.Tools {
		if t.Name == req.ToolChoice {
			tool = t
		}
	}
	param := "query"
	if len(tool.Required) > 0 {
		param = tool.Required[0]
	}
	h := fnv.New32a()
	h.Write([]byte(question))
	h.Write([]byte{byte(req.Sample)})
	var call []byte
	if !intact && h.Sum32()%3 == 0 {
		call = append(call, `{"name":`...)
		call = appendJSONString(call, tool.Name)
		call = append(call, `,"arguments":{`...)
		call = appendJSONString(call, param)
		call = append(call, ':')
		call = appendJSONString(call, question)
		call = append(call, "}}"...)
	} else {
		call = append(call, `{"name": `...)
		call = appendJSONString(call, tool.Name)
		call = append(call, `, "arguments": {`...)
		call = appendJSONString(call, param)
		call = append(call, ": "...)
		call = appendJSONString(call, question)
		call = append(call, "}}"...)
	}
	return think("I should call "+tool.Name+" to answer this.") + "<tool_call>\n" + string(call) + "\n</tool_call>"
}

// DemoPolicy is the policy of the sidecar's --demo mode, for
// Options.AgentPolicy: SearchR1Policy on Search-R1 conversations, then
// ShellPolicy, else AgentPolicy.
func DemoPolicy(req PolicyRequest) string {
	if text := SearchR1Policy(req.Messages, req.Sample); text != "" {
		return text
	}
	if text := ShellPolicy(req); text != "" {
		return text
	}
	return AgentPolicy(req)
}

// isShellName reports whether a tool has a name agent harnesses give their
// shell tool (Claude Code's Bash, Codex's exec_command and shell, ...).
func isShellName(name string) bool {
	switch strings.ToLower(name) {
	case "bash", "shell", "exec_command", "local_shell", "run_command", "run_shell_command", "execute_command":
		return true
	}
	return false
}

// ShellPolicy drives an agent harness through one shell round trip: when a
// user message holds a command between backticks and a shell-like tool is
// offered (one named as harnesses name theirs, or whose required
// parameters include "command" or "cmd"), it calls that tool with the
// command verbatim; once the tool's result has come back it answers with
// text that quotes the result. It returns "" when neither applies, and
// after it has answered.
func ShellPolicy(req PolicyRequest) string {
	if len(req.Tools) == 0 || req.ToolChoice == "none" {
		return ""
	}
	tool, param, ok := shellTool(req.Tools)
	if !ok {
		return ""
	}
	asked := -1
	command := ""
	for i := len(req.Messages) - 1; i >= 0 && asked < 0; i-- {
		if m := req.Messages[i]; m.Role == "user" {
			if c, found := backticked(withoutReminders(m.Content)); found {
				asked, command = i, c
			}
		}
	}
	if asked < 0 {
		return ""
	}
	result, haveResult := "", false
	for _, m := range req.Messages[asked+1:] {
		switch {
		case m.Role == "tool":
			result, haveResult = m.Content, true
		case m.Role == "assistant" && len(m.ToolCalls) == 0 && haveResult:
			return "" // answered already
		}
	}
	think := func(reasoning string) string {
		if !req.Thinking || req.Template == TemplateQwen25 {
			return ""
		}
		return thinkBlock(reasoning)
	}
	if haveResult {
		out := strings.TrimSpace(withoutReminders(result))
		return think("The command ran; I report its output.") + "The command `" + command + "` printed:\n\n" + out
	}
	call := append([]byte(`{"name": `), appendJSONString(nil, tool)...)
	call = append(call, `, "arguments": {`...)
	call = appendJSONString(call, param)
	call = append(call, ": "...)
	call = appendJSONString(call, command)
	call = append(call, "}}"...)
	return think("I should run `"+command+"` with "+tool+".") + "<tool_call>\n" + string(call) + "\n</tool_call>"
}

// shellTool finds the offered shell-like tool and the parameter that takes
// the command.
func shellTool(tools []Tool) (name, param string, ok bool) {
	for _, t := range tools {
		for _, p := range t.Required {
			if p == "command" || p == "cmd" {
				return t.Name, p, true
			}
		}
		if isShellName(t.Name) {
			param := "command"
			if len(t.Required) > 0 {
				param = t.Required[0]
			}
			return t.Name, param, true
		}
	}
	return "", "", false
}

// withoutReminders drops the <system-reminder> blocks Claude Code puts in a
// user message before the user's own text: they quote code in backticks
// that the user did not ask to run.
func withoutReminders(s string) string {
	const open, close = "<system-reminder>", "</system-reminder>"
	var b strings.Builder
	for {
		i := strings.Index(s, open)
		if i < 0 {
			break
		}
		j := strings.Index(s[i:], close)
		if j < 0 {
			s = s[:i]
			break
		}
		b.WriteString(s[:i])
		s = s[i+j+len(close):]
	}
	if b.Len() == 0 {
		return s
	}
	b.WriteString(s)
	return b.String()
}

// backticked returns the first command between single backticks in s.
func backticked(s string) (string, bool) {
	for {
		i := strings.IndexByte(s, '`')
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
		if strings.HasPrefix(s, "``") { // a fence: skip it and its info string
			s = strings.TrimLeft(s, "`")
			continue
		}
		j := strings.IndexByte(s, '`')
		if j < 0 {
			return "", false
		}
		if c := strings.TrimSpace(s[:j]); c != "" && !strings.Contains(c, "\n") {
			return c, true
		}
		s = s[j+1:]
	}
}

// policySample is the sample index a Policy sees for choice i of a request
// with the given seed: i itself without a seed (reproducible runs), and a
// draw of its own per seed otherwise.
func policySample(seed *int64, i int) int {
	if seed == nil {
		return i
	}
	h := newFNV64()
	h.u64(uint64(*seed))
	h.u64(uint64(i))
	return int(uint64(h) >> 33) // non-negative on every platform
}
