package anthropic

import (
	"math"
	"strconv"
	"unicode/utf8"
)

// This file reads an Anthropic request into the structures below, checking
// what vLLM's pydantic models check (vllm/entrypoints/anthropic/protocol.py
// @a8c3bdb2): required fields, types, literals, and the model validators.
// Unknown keys are ignored everywhere (pydantic's default extra="ignore").
// A key given twice counts once, with its last value, as after json.loads.
//
// Deliberately stricter than pydantic's lax mode: numbers and booleans must
// be JSON numbers and booleans (pydantic also takes "1024" and "true"
// strings), and integer fields take integral numbers only (1024 or 1024.0).

// billingHeader starts Claude Code's per-request attribution block, which
// vLLM strips from system text (v0.18+) so that it does not defeat prefix
// caching.
const billingHeader = "x-anthropic-billing-header"

type block struct {
	typ                           string
	text                          *string
	source                        []byte // an object, or nil for None
	id, toolUseID, name, thinking *string
	input                         []byte // an object, or nil for None
	content                       blockContent
}

const (
	contentNone = iota
	contentString
	contentList
)

// blockContent is a tool_result's content: str | list[dict] | None.
type blockContent struct {
	kind  int
	s     string
	items []item
	raw   []byte // the JSON text, for Python's str() of it
}

// item is one dict of a tool_result's content list. Only the keys vLLM
// reads are kept.
type item struct {
	typ      string // "" when absent or not a string: it then matches no type
	text     []byte // nil when absent
	source   []byte // nil when absent
	toolName []byte
	name     []byte
}

type message struct {
	role   string
	isStr  bool
	s      string
	blocks []block
}

type tool struct {
	name, description []byte // description nil for None
	schema            []byte
	strict, deferLoad []byte // a boolean, or nil for None
}

type toolChoice struct {
	typ             string
	name            string
	disableParallel bool
}

type thinkingConfig struct {
	typ    string
	budget int64
}

type anthropicRequest struct {
	model       string
	messages    []message
	maxTokens   int64
	stop        []byte // a list of strings, or nil
	stream      bool
	system      []byte // kept raw: str or blocks, parsed into systemMsg
	systemMsg   *message
	temperature []byte
	topP        []byte
	topK        []byte
	toolChoice  *toolChoice
	tools       []tool
	hasTools    bool
	effort      string
	schema      []byte // output_config.format.schema when non-empty
	schemaType  string
	thinking    *thinkingConfig
	cacheSalt   *string
	kvTransfer  []byte
	ecTransfer  []byte
	vllmXargs   []byte
	templateKw  []byte
}

// fields returns the values of the given keys in the object v (nil when
// absent; the last one when repeated).
func fields(v []byte, path string, keys ...string) ([][]byte, *Error) {
	if !isObject(v) {
		return nil, invalid(path, "Input should be a valid dictionary or object")
	}
	vals := make([][]byte, len(keys))
	it := newIter(v)
	for k, esc, val, ok := it.member(); ok; k, esc, val, ok = it.member() {
		for j, want := range keys {
			if keyIs(k, esc, want) {
				vals[j] = val
				break
			}
		}
	}
	if it.err != nil {
		return nil, invalid(path, "malformed JSON: "+it.err.Error())
	}
	return vals, nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func idx(path string, i int) string { return path + "." + strconv.Itoa(i) }

func present(v []byte) bool { return v != nil && !isNull(v) }

func reqString(v []byte, path string) (string, *Error) {
	if v == nil {
		return "", invalid(path, "Field required")
	}
	if !isString(v) {
		return "", invalid(path, "Input should be a valid string")
	}
	return str(v), nil
}

func optString(v []byte, path string) (*string, *Error) {
	if !present(v) {
		return nil, nil
	}
	if !isString(v) {
		return nil, invalid(path, "Input should be a valid string")
	}
	s := str(v)
	return &s, nil
}

func optBool(v []byte, path string) (*bool, *Error) {
	if !present(v) {
		return nil, nil
	}
	if !isBool(v) {
		return nil, invalid(path, "Input should be a valid boolean")
	}
	b := v[0] == 't'
	return &b, nil
}

func optObject(v []byte, path string) ([]byte, *Error) {
	if !present(v) {
		return nil, nil
	}
	if !isObject(v) {
		return nil, invalid(path, "Input should be a valid dictionary")
	}
	return v, nil
}

func optNumber(v []byte, path string) ([]byte, *Error) {
	if !present(v) {
		return nil, nil
	}
	if !isNumber(v) {
		return nil, invalid(path, "Input should be a valid number")
	}
	if f, err := strconv.ParseFloat(string(v), 64); err != nil || math.IsInf(f, 0) {
		return nil, invalid(path, "Input should be a finite number")
	}
	return v, nil
}

// asInt reads an integral number (1024, 1024.0, 1.024e3), as pydantic's int
// does from JSON.
func asInt(v []byte, path string) (int64, *Error) {
	if !isNumber(v) {
		return 0, invalid(path, "Input should be a valid integer")
	}
	if isIntText(v) {
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return 0, invalid(path, "Input should be a valid integer (out of range)")
		}
		return n, nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, invalid(path, "Input should be a valid integer, got a number with a fractional part")
	}
	return int64(f), nil
}

func literal(v []byte, path string, allowed ...string) (string, *Error) {
	if v == nil {
		return "", invalid(path, "Field required")
	}
	if isString(v) {
		s := str(v)
		for _, a := range allowed {
			if s == a {
				return s, nil
			}
		}
	}
	msg := "Input should be "
	for i, a := range allowed {
		switch {
		case i == 0:
		case i == len(allowed)-1:
			msg += " or "
		default:
			msg += ", "
		}
		msg += "'" + a + "'"
	}
	return "", invalid(path, msg)
}

var blockTypes = []string{"text", "image", "tool_use", "tool_result", "tool_reference", "thinking", "redacted_thinking"}

// parseBlock reads an AnthropicContentBlock.
func parseBlock(v []byte, path string) (block, *Error) {
	f, err := fields(v, path, "type", "text", "source", "id", "tool_use_id", "name",
		"input", "content", "is_error", "tool_name", "thinking", "signature", "data")
	if err != nil {
		return block{}, err
	}
	var b block
	if b.typ, err = literal(f[0], join(path, "type"), blockTypes...); err != nil {
		return b, err
	}
	if b.text, err = optString(f[1], join(path, "text")); err != nil {
		return b, err
	}
	if b.source, err = optObject(f[2], join(path, "source")); err != nil {
		return b, err
	}
	if b.id, err = optString(f[3], join(path, "id")); err != nil {
		return b, err
	}
	if b.toolUseID, err = optString(f[4], join(path, "tool_use_id")); err != nil {
		return b, err
	}
	if b.name, err = optString(f[5], join(path, "name")); err != nil {
		return b, err
	}
	if b.input, err = optObject(f[6], join(path, "input")); err != nil {
		return b, err
	}
	if b.content, err = parseBlockContent(f[7], join(path, "content")); err != nil {
		return b, err
	}
	if _, err = optBool(f[8], join(path, "is_error")); err != nil {
		return b, err
	}
	for j, key := range []string{"tool_name", "thinking", "signature", "data"} {
		s, err := optString(f[9+j], join(path, key))
		if err != nil {
			return b, err
		}
		if key == "thinking" {
			b.thinking = s
		}
	}
	return b, nil
}

// parseBlockContent reads str | list[dict[str, Any]] | None.
func parseBlockContent(v []byte, path string) (blockContent, *Error) {
	switch {
	case !present(v):
		return blockContent{}, nil
	case isString(v):
		return blockContent{kind: contentString, s: str(v), raw: v}, nil
	case isArray(v):
		c := blockContent{kind: contentList, raw: v, items: []item{}}
		it := newIter(v)
		for e, ok := it.elem(); ok; e, ok = it.elem() {
			ip := idx(path, len(c.items))
			f, err := fields(e, ip, "type", "text", "source", "tool_name", "name")
			if err != nil {
				return c, err
			}
			x := item{text: f[1], source: f[2], toolName: f[3], name: f[4]}
			if isString(f[0]) {
				x.typ = str(f[0])
			}
			// vLLM joins the texts of text items and appends to them when
			// folding: anything but a string (or nothing) raises there.
			if x.typ == "text" && present(x.text) && !isString(x.text) {
				return c, invalid(join(ip, "text"), "Input should be a valid string")
			}
			c.items = append(c.items, x)
		}
		return c, nil
	}
	return blockContent{}, invalid(path, "Input should be a valid string or a valid list")
}

// parseMessage reads an AnthropicMessage.
func parseMessage(v []byte, path string) (message, *Error) {
	f, err := fields(v, path, "role", "content")
	if err != nil {
		return message{}, err
	}
	var m message
	if m.role, err = literal(f[0], join(path, "role"), "user", "assistant", "system"); err != nil {
		return m, err
	}
	if m.isStr, m.s, m.blocks, err = parseContent(f[1], join(path, "content")); err != nil {
		return m, err
	}
	return m, nil
}

// parseContent reads str | list[AnthropicContentBlock] (required).
func parseContent(v []byte, path string) (bool, string, []block, *Error) {
	switch {
	case v == nil:
		return false, "", nil, invalid(path, "Field required")
	case isString(v):
		return true, str(v), nil, nil
	case isArray(v):
		blocks := []block{}
		it := newIter(v)
		for e, ok := it.elem(); ok; e, ok = it.elem() {
			b, err := parseBlock(e, idx(path, len(blocks)))
			if err != nil {
				return false, "", nil, err
			}
			blocks = append(blocks, b)
		}
		return false, "", blocks, nil
	}
	return false, "", nil, invalid(path, "Input should be a valid string or a valid list")
}

func parseList(v []byte, path string, required bool, each func(e []byte, path string) *Error) *Error {
	if v == nil && required {
		return invalid(path, "Field required")
	}
	if !present(v) {
		if required {
			return invalid(path, "Input should be a valid list")
		}
		return nil
	}
	if !isArray(v) {
		return invalid(path, "Input should be a valid list")
	}
	it := newIter(v)
	n := 0
	for e, ok := it.elem(); ok; e, ok = it.elem() {
		if err := each(e, idx(path, n)); err != nil {
			return err
		}
		n++
	}
	return nil
}

func parseTool(v []byte, path string) (tool, *Error) {
	f, err := fields(v, path, "name", "description", "input_schema", "strict", "defer_loading")
	if err != nil {
		return tool{}, err
	}
	var t tool
	if _, err = reqString(f[0], join(path, "name")); err != nil {
		return t, err
	}
	t.name = f[0]
	if _, err = optString(f[1], join(path, "description")); err != nil {
		return t, err
	}
	if present(f[1]) {
		t.description = f[1]
	}
	if f[2] == nil {
		// Anthropic's server tools (web_search, bash_20250124, ...) have no
		// input_schema; vLLM cannot run them.
		return t, invalid(join(path, "input_schema"), "Field required (only client tools with an input_schema are supported)")
	}
	if !isObject(f[2]) {
		return t, invalid(join(path, "input_schema"), "Input should be a valid dictionary")
	}
	t.schema = f[2]
	// strict and defer_loading are forwarded at 1ad84fea8 and a8c3bdb2.
	if _, err = optBool(f[3], join(path, "strict")); err != nil {
		return t, err
	}
	if present(f[3]) {
		t.strict = f[3]
	}
	if _, err = optBool(f[4], join(path, "defer_loading")); err != nil {
		return t, err
	}
	if present(f[4]) {
		t.deferLoad = f[4]
	}
	return t, nil
}

// parseToolChoice reads tool_choice. disable_parallel_tool_use reaches the
// chat request (as parallel_tool_calls) only from a8c3bdb2 on; "none" is
// mapped from v0.17 (#35835).
func parseToolChoice(v []byte, path string) (*toolChoice, *Error) {
	if !present(v) {
		return nil, nil
	}
	f, err := fields(v, path, "type", "name", "disable_parallel_tool_use")
	if err != nil {
		return nil, err
	}
	tc := &toolChoice{}
	if tc.typ, err = literal(f[0], join(path, "type"), "auto", "any", "tool", "none"); err != nil {
		return nil, err
	}
	name, err := optString(f[1], join(path, "name"))
	if err != nil {
		return nil, err
	}
	if name != nil {
		tc.name = *name
	}
	dp, err := optBool(f[2], join(path, "disable_parallel_tool_use"))
	if err != nil {
		return nil, err
	}
	tc.disableParallel = dp != nil && *dp
	if tc.typ == "tool" && tc.name == "" {
		return nil, invalid(path, "Value error, tool_choice.name is required when type is 'tool'")
	}
	return tc, nil
}

var displays = []string{"summarized", "omitted", "updates"}

// parseThinking reads "thinking", which only a8c3bdb2 declares:
// 1ad84fea8 and older drop it like any unknown key, so an enabled budget or a
// disabled thinking reach the chat request only on the newest vLLM.
func parseThinking(v []byte, path string) (*thinkingConfig, *Error) {
	if !present(v) {
		return nil, nil
	}
	f, err := fields(v, path, "type", "budget_tokens", "display")
	if err != nil {
		return nil, err
	}
	t := &thinkingConfig{}
	if t.typ, err = literal(f[0], join(path, "type"), "enabled", "disabled", "adaptive"); err != nil {
		return nil, err
	}
	if t.typ == "enabled" {
		if f[1] == nil {
			return nil, invalid(join(path, "budget_tokens"), "Field required")
		}
		if t.budget, err = asInt(f[1], join(path, "budget_tokens")); err != nil {
			return nil, err
		}
		if t.budget < 1024 {
			return nil, invalid(join(path, "budget_tokens"), "Input should be greater than or equal to 1024")
		}
	}
	if t.typ != "disabled" && present(f[2]) {
		if _, err = literal(f[2], join(path, "display"), displays...); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func parseOutputConfig(v []byte, path string, r *anthropicRequest) *Error {
	if !present(v) {
		return nil
	}
	f, err := fields(v, path, "effort", "format")
	if err != nil {
		return err
	}
	if present(f[0]) {
		if r.effort, err = literal(f[0], join(path, "effort"), "low", "medium", "high", "xhigh", "max"); err != nil {
			return err
		}
	}
	if !present(f[1]) {
		return nil
	}
	fp := join(path, "format")
	// The schema is read under its alias "schema" only (no
	// populate_by_name), so a "json_schema" key is ignored like vLLM does.
	ff, err := fields(f[1], fp, "schema", "type")
	if err != nil {
		return err
	}
	schema, err := optObject(ff[0], join(fp, "schema"))
	if err != nil {
		return err
	}
	r.schemaType = "json_schema"
	if present(ff[1]) {
		if r.schemaType, err = literal(ff[1], join(fp, "type"), "json_schema"); err != nil {
			return err
		}
	}
	if schema != nil && hasMembers(schema) {
		r.schema = schema
	}
	return nil
}

// hasMembers reports whether a validated object is non-empty (truthy).
func hasMembers(obj []byte) bool {
	it := newIter(obj)
	_, _, _, ok := it.member()
	return ok
}

// parseRequest reads an AnthropicMessagesRequest or, with count set, an
// AnthropicCountTokensRequest (model, messages, system, tool_choice, tools,
// chat_template_kwargs; every other key ignored, max_tokens included).
func parseRequest(body []byte, count bool) (*anthropicRequest, *Error) {
	if err := validDocument(body); err != nil {
		return nil, invalid("", "request body is not valid JSON: "+err.Error())
	}
	v := body[skipWS(body, 0):]
	f, err := fields(v, "", "model", "messages", "max_tokens", "metadata", "output_config",
		"thinking", "stop_sequences", "stream", "system", "temperature", "tool_choice",
		"tools", "top_k", "top_p", "cache_salt", "kv_transfer_params", "ec_transfer_params",
		"vllm_xargs", "chat_template_kwargs")
	if err != nil {
		return nil, err
	}
	if count {
		for _, j := range []int{2, 3, 4, 5, 6, 7, 9, 12, 13, 14, 15, 16, 17} {
			f[j] = nil
		}
	}
	r := &anthropicRequest{}
	if r.model, err = reqString(f[0], "model"); err != nil {
		return nil, err
	}
	if r.model == "" {
		return nil, invalid("model", "Value error, Model is required")
	}
	if err = parseList(f[1], "messages", true, func(e []byte, p string) *Error {
		m, err := parseMessage(e, p)
		r.messages = append(r.messages, m)
		return err
	}); err != nil {
		return nil, err
	}
	if !count {
		if f[2] == nil {
			return nil, invalid("max_tokens", "Field required")
		}
		if r.maxTokens, err = asInt(f[2], "max_tokens"); err != nil {
			return nil, err
		}
		if r.maxTokens <= 0 {
			return nil, invalid("max_tokens", "Value error, max_tokens must be positive")
		}
	}
	if _, err = optObject(f[3], "metadata"); err != nil {
		return nil, err
	}
	if err = parseOutputConfig(f[4], "output_config", r); err != nil {
		return nil, err
	}
	if r.thinking, err = parseThinking(f[5], "thinking"); err != nil {
		return nil, err
	}
	if err = parseList(f[6], "stop_sequences", false, func(e []byte, p string) *Error {
		if !isString(e) {
			return invalid(p, "Input should be a valid string")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if present(f[6]) {
		r.stop = f[6]
	}
	stream, err := optBool(f[7], "stream")
	if err != nil {
		return nil, err
	}
	r.stream = stream != nil && *stream
	if present(f[8]) {
		sp := "system"
		isStr, s, blocks, err := parseContent(f[8], sp)
		if err != nil {
			return nil, err
		}
		r.system = f[8]
		r.systemMsg = &message{role: "system", isStr: isStr, s: s, blocks: blocks}
	}
	if r.temperature, err = optNumber(f[9], "temperature"); err != nil {
		return nil, err
	}
	if r.toolChoice, err = parseToolChoice(f[10], "tool_choice"); err != nil {
		return nil, err
	}
	if present(f[11]) {
		r.hasTools = true
		r.tools = []tool{}
	}
	if err = parseList(f[11], "tools", false, func(e []byte, p string) *Error {
		t, err := parseTool(e, p)
		r.tools = append(r.tools, t)
		return err
	}); err != nil {
		return nil, err
	}
	if present(f[12]) {
		if _, err = asInt(f[12], "top_k"); err != nil {
			return nil, err
		}
		r.topK = f[12]
	}
	if r.topP, err = optNumber(f[13], "top_p"); err != nil {
		return nil, err
	}
	// cache_salt (#49498) and vllm_xargs are a8c3bdb2's; kv/ec transfer
	// params and chat_template_kwargs are older.
	if r.cacheSalt, err = optString(f[14], "cache_salt"); err != nil {
		return nil, err
	}
	if r.cacheSalt != nil {
		if n := utf8.RuneCountInString(*r.cacheSalt); n < 1 || n > 1024 {
			return nil, invalid("cache_salt", "String should have between 1 and 1024 characters")
		}
	}
	for j, dst := range []*[]byte{&r.kvTransfer, &r.ecTransfer, &r.vllmXargs, &r.templateKw} {
		key := []string{"kv_transfer_params", "ec_transfer_params", "vllm_xargs", "chat_template_kwargs"}[j]
		if *dst, err = optObject(f[15+j], key); err != nil {
			return nil, err
		}
	}
	if !count && r.thinking != nil && r.thinking.typ == "enabled" && r.thinking.budget >= r.maxTokens {
		return nil, invalid("", "Value error, thinking.budget_tokens must be less than max_tokens")
	}
	return r, nil
}
