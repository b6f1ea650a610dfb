package vllmsim

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// chatChoice is one finished chat choice: the engine output and what the
// hermes tool parser made of it.
type chatChoice struct {
	index   int
	out     *sampleOut
	content *string // message.content; nil → null
	// reasoning is message.reasoning (qwen3 reasoning parser); nil → null.
	reasoning *string
	calls     []toolCall
	// finish is the non-stream finish_reason, streamFinish the stream one
	// (vLLM derives them by slightly different rules).
	finish       string
	streamFinish string
	// toolStart is the index of the <tool_call> token from which the stream
	// parser swallows tokens (-1: no tool call); contentEnd is the byte length
	// of the text streamed as content.
	toolStart  int
	contentEnd int
	// [rStart, rEnd) is the reasoning in the output text and cStart where
	// content starts (all 0 without a reasoning parser); the stream sends
	// reasoning deltas while it has not reached cStart.
	rStart, rEnd, cStart int
}

// chatRun is everything one chat request produced.
type chatRun struct {
	req       *chatRequest
	id        string
	created   int64
	role      string
	promptIDs []int64
	choices   []*chatChoice
	echoText  string
	promptLPs [][]altLP // nil unless prompt logprobs were requested
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(r)
	if !ok {
		return
	}
	req, e := parseChatRequest(raw)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if s.opts.NoTokenIDs {
		req.returnTokenIDs = false
	}
	if e := s.checkModel(req.model); e != nil {
		writeAPIError(w, e)
		return
	}
	if req.continueFinal && req.addGenerationPrompt {
		writeAPIError(w, badRequest("Cannot set both `continue_final_message` and `add_generation_prompt` to True.", nil))
		return
	}
	promptText, e := s.renderPrompt(req)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	promptIDs := s.encode(promptText)
	maxTokens, e := s.checkLengths(len(promptIDs), req.maxTokens)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	var sampleLP *int64
	if req.logprobs {
		sampleLP = &req.topLogprobs
	}
	promptLP := req.promptLogprobs
	if promptLP == nil && req.echo {
		// echo implies prompt_logprobs = top_logprobs on chat.
		promptLP = &req.topLogprobs
	}
	if e := checkSampling(&req.commonRequest, maxTokens, sampleLP, promptLP); e != nil {
		writeAPIError(w, e)
		return
	}
	fa := failAfter(r)
	if !req.stream && fa >= 0 {
		writeAPIError(w, internalError())
		return
	}
	s.running.Add(1)
	defer s.running.Add(-1)

	run := &chatRun{
		req:       req,
		id:        responseID("chatcmpl-", r, req.requestID),
		created:   s.opts.Clock().Unix(),
		role:      "assistant",
		promptIDs: promptIDs,
	}
	if !req.addGenerationPrompt && len(req.messages) > 0 {
		run.role = req.messages[len(req.messages)-1].Role
	}
	if req.echo && len(req.messages) > 0 && req.messages[len(req.messages)-1].Role == run.role {
		run.echoText = req.messages[len(req.messages)-1].Content
	}
	if promptLP != nil {
		run.promptLPs = s.promptLogprobs(promptIDs, int(*promptLP))
	}

	p := baseGenParams(&req.commonRequest, promptIDs, maxTokens)
	p.eos = tokImEnd
	toolsActive := len(req.tools) > 0 && req.toolChoice != "none"
	reasoningOn := s.template == TemplateQwen3
	thinks := reasoningOn && req.thinkingEnabled()
	preq := s.policyRequest(req)
	seed := p.seed
	switch {
	case s.opts.Policy != nil && s.opts.Policy(req.messages, 0) != "":
		msgs := append([]Message(nil), req.messages...)
		p.forced = func(i int) string { return s.opts.Policy(msgs, policySample(seed, i)) }
	case s.opts.AgentPolicy != nil && s.opts.AgentPolicy(preq) != "":
		p.forced = func(i int) string {
			r := preq
			r.Sample = policySample(seed, i)
			return s.opts.AgentPolicy(r)
		}
	case toolsActive && (req.toolChoice != "auto" || mentionsWeather(req.messages)):
		name := req.tools[0].name
		if req.toolChoice == "named" {
			name = req.toolChoiceName
		}
		text := toolCallText(name)
		if thinks {
			text = thinkBlock("The user asks about the weather, so I should call "+name+".") + text
		}
		p.forced = func(int) string { return text }
	default:
		p.think = thinks
	}
	completion := 0
	for i, out := range s.generate(p) {
		run.choices = append(run.choices, newChatChoice(req, run.id, i, out, toolsActive, reasoningOn))
		completion += len(out.tokens)
	}
	s.promptTokens.Add(int64(len(promptIDs)))
	s.generationTokens.Add(int64(completion))

	if req.stream {
		if s.streamChat(w, r, run, fa) {
			s.requestsOK.Add(1)
		}
		return
	}
	writeJSON(w, http.StatusOK, s.appendChatResponse(nil, run))
	s.requestsOK.Add(1)
}

// mentionsWeather reports whether the last user message asks about the
// weather: the built-in model's cue to call a tool.
func mentionsWeather(msgs []Message) bool {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return strings.Contains(strings.ToLower(msgs[i].Content), "weather")
		}
	}
	return false
}

// toolCallID is a deterministic "chatcmpl-tool-<16 hex>" per response,
// choice and call.
func toolCallID(respID string, choice, call int) string {
	return fmt.Sprintf("chatcmpl-tool-%016x", mix(uint64(fnv1a32(respID)), uint64(choice), uint64(call)))
}

// newChatChoice applies the reasoning parser (reasoningOn: qwen3), the
// hermes tool parser and vLLM's finish_reason rules.
func newChatChoice(req *chatRequest, respID string, i int, out *sampleOut, toolsActive, reasoningOn bool) *chatChoice {
	text := out.text
	c := &chatChoice{
		index: i, out: out, content: &text,
		finish: out.finish, streamFinish: out.finish,
		toolStart: -1, contentEnd: len(text),
	}
	if reasoningOn {
		sp := splitReasoning(text, req.thinkingEnabled())
		c.reasoning, c.content = sp.reasoning, sp.content
		c.rStart, c.rEnd, c.cStart = sp.rStart, sp.rEnd, sp.cStart
	}
	if !toolsActive {
		return c
	}
	var parsed bool
	if c.content != nil {
		body := *c.content
		var content *string
		var calls []toolCall
		content, calls, parsed = parseHermes(body)
		if parsed {
			for j := range calls {
				calls[j].id = toolCallID(respID, i, j)
			}
			c.calls, c.content = calls, content
			c.contentEnd = c.cStart + strings.Index(body, "<tool_call>")
			for k, id := range out.tokens {
				// The first <tool_call> token after the reasoning.
				if id == tokToolCallStart && (k == 0 || out.visible[k-1] >= c.cStart) {
					c.toolStart = k
					break
				}
			}
			if req.toolChoice != "named" && out.finish == "stop" {
				c.streamFinish = "tool_calls"
			}
		}
	}
	switch req.toolChoice {
	case "auto":
		if parsed {
			c.finish = "tool_calls"
		}
	case "required", "named":
		// Forced tool use answers content "" rather than null.
		if c.content == nil {
			empty := ""
			c.content = &empty
		}
		if req.toolChoice == "required" && out.finish == "stop" {
			c.finish = "tool_calls"
		}
	}
	return c
}

// appendChunkHead appends the common start of every chunk, up to "choices":[.
func appendChunkHead(b []byte, id, object string, created int64, model string) []byte {
	b = append(b, `{"id":`...)
	b = appendJSONString(b, id)
	b = append(b, `,"object":"`...)
	b = append(b, object...)
	b = append(b, `","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, model)
	return append(b, `,"choices":[`...)
}

// appendChatResponse appends the non-stream ChatCompletionResponse
// (model_dump: every declared key, nulls included).
func (s *Server) appendChatResponse(b []byte, run *chatRun) []byte {
	req := run.req
	b = append(b, `{"id":`...)
	b = appendJSONString(b, run.id)
	b = append(b, `,"object":"chat.completion","created":`...)
	b = strconv.AppendInt(b, run.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, s.opts.Model)
	b = append(b, `,"choices":[`...)
	completion := 0
	for i, c := range run.choices {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(c.index), 10)
		b = append(b, `,"message":{"role":`...)
		b = appendJSONString(b, run.role)
		b = append(b, `,"content":`...)
		switch {
		case req.echo:
			// echo prepends the last message (same role) and always yields a string.
			content := run.echoText
			if c.content != nil {
				content += *c.content
			}
			b = appendJSONString(b, content)
		case c.content == nil:
			b = append(b, "null"...)
		default:
			b = appendJSONString(b, *c.content)
		}
		b = append(b, `,"refusal":null,"annotations":null,"audio":null,"function_call":null,"tool_calls":[`...)
		for j, tc := range c.calls {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendJSONString(b, tc.id)
			b = append(b, `,"type":"function","function":{"name":`...)
			b = appendJSONString(b, tc.name)
			b = append(b, `,"arguments":`...)
			b = appendJSONString(b, tc.arguments)
			b = append(b, "}}"...)
		}
		b = append(b, `],"reasoning":`...)
		if c.reasoning != nil {
			b = appendJSONString(b, *c.reasoning)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `},"logprobs":`...)
		if req.logprobs {
			b = s.appendChatLogprobs(b, c.out, 0, len(c.out.tokens), int(req.topLogprobs), req.returnTokensAsIDs)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"finish_reason":`...)
		b = appendJSONString(b, c.finish)
		b = append(b, `,"stop_reason":`...)
		b = c.out.reason.appendJSON(b)
		if !s.opts.NoTokenIDs {
			b = append(b, `,"token_ids":`...)
			b = appendIntsOrNull(b, c.out.tokens, req.returnTokenIDs)
		}
		b = append(b, '}')
		completion += len(c.out.tokens)
	}
	b = append(b, `],"service_tier":null,"system_fingerprint":null,"usage":`...)
	b = appendUsage(b, len(run.promptIDs), completion, true)
	b = append(b, `,"prompt_logprobs":`...)
	b = s.appendPromptLogprobs(b, run.promptIDs, run.promptLPs)
	if !s.opts.NoTokenIDs {
		b = append(b, `,"prompt_token_ids":`...)
		b = appendIntsOrNull(b, run.promptIDs, req.returnTokenIDs)
	}
	return append(b, `,"kv_transfer_params":null}`...)
}

// appendChatLogprobs appends ChatCompletionLogProbs for tokens [from, to) of
// a sample: one entry per token (EOS included), top_logprobs holding the
// first topN entries of the position's logprob dict (sampled token first).
func (s *Server) appendChatLogprobs(b []byte, out *sampleOut, from, to, topN int, asIDs bool) []byte {
	b = append(b, `{"content":[`...)
	for k := from; k < to; k++ {
		if k > from {
			b = append(b, ',')
		}
		id := out.tokens[k]
		dict := s.tokenLogprobs(out.seed, k, id, topN-1)
		decoded := s.tokenString(id)
		b = append(b, `{"token":`...)
		b = appendJSONString(b, s.logprobToken(id, asIDs))
		b = append(b, `,"logprob":`...)
		b = appendPyFloat(b, dict[0].lp)
		// bytes are those of the decoded text even with token_id strings.
		b = append(b, `,"bytes":`...)
		b = appendBytesArray(b, decoded)
		b = append(b, `,"top_logprobs":[`...)
		for j := 0; j < topN && j < len(dict); j++ {
			if j > 0 {
				b = append(b, ',')
			}
			tok := s.logprobToken(dict[j].id, asIDs)
			b = append(b, `{"token":`...)
			b = appendJSONString(b, tok)
			b = append(b, `,"logprob":`...)
			b = appendPyFloat(b, dict[j].lp)
			b = append(b, `,"bytes":`...)
			b = appendBytesArray(b, tok)
			b = append(b, '}')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// logprobToken is a token as logprobs name it: its decoded text, or
// "token_id:<id>" with return_tokens_as_token_ids.
func (s *Server) logprobToken(id int64, asIDs bool) string {
	if asIDs {
		return "token_id:" + strconv.FormatInt(id, 10)
	}
	return s.tokenString(id)
}

// appendPromptLogprobs appends prompt_logprobs: null when not requested,
// else [null, {"<id>": {"logprob","rank","decoded_token"}, ...}, ...].
func (s *Server) appendPromptLogprobs(b []byte, ids []int64, lps [][]altLP) []byte {
	if lps == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for pos := range ids {
		if pos > 0 {
			b = append(b, ',')
		}
		if lps[pos] == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '{')
		for j, e := range lps[pos] {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = strconv.AppendInt(b, e.id, 10)
			b = append(b, `":{"logprob":`...)
			b = appendPyFloat(b, e.lp)
			b = append(b, `,"rank":`...)
			b = strconv.AppendInt(b, int64(e.rank), 10)
			b = append(b, `,"decoded_token":`...)
			b = appendJSONString(b, s.tokenString(e.id))
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// streamChat writes a chat SSE stream (model_dump_json(exclude_unset=True)
// per chunk). It reports whether the stream ended normally.
func (s *Server) streamChat(w http.ResponseWriter, r *http.Request, run *chatRun, fa int) bool {
	req := run.req
	includeUsage, continuous := usageFlags(&req.commonRequest)
	sw := s.startSSE(w, r)
	P := len(run.promptIDs)

	// One role chunk per choice, each repeating the prompt IDs.
	for i := range run.choices {
		b := appendChunkHead(nil, run.id, "chat.completion.chunk", run.created, s.opts.Model)
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"delta":{"role":`...)
		b = appendJSONString(b, run.role)
		b = append(b, `,"content":""},"logprobs":null,"finish_reason":null}]`...)
		if continuous {
			b = append(b, `,"usage":`...)
			b = appendUsage(b, P, 0, false)
		}
		if !s.opts.NoTokenIDs {
			b = append(b, `,"prompt_token_ids":`...)
			b = appendIntsOrNull(b, run.promptIDs, req.returnTokenIDs)
		}
		if !sw.event(append(b, '}'), false) {
			return false
		}
	}
	if req.echo && run.echoText != "" {
		for i := range run.choices {
			b := appendChunkHead(nil, run.id, "chat.completion.chunk", run.created, s.opts.Model)
			b = append(b, `{"index":`...)
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, `,"delta":{"content":`...)
			b = appendJSONString(b, run.echoText)
			b = append(b, `},"logprobs":null,"finish_reason":null}]`...)
			if continuous {
				b = append(b, `,"usage":`...)
				b = appendUsage(b, P, 0, false)
			}
			if !sw.event(append(b, '}'), false) {
				return false
			}
		}
	}

	// Token chunks: one per token, choices interleaved step by step as the
	// engine produces them.
	sent := make([]int, len(run.choices)) // bytes of content streamed per choice
	steps := 0
	for _, c := range run.choices {
		steps = max(steps, len(c.out.tokens))
	}
	tokenChunks := 0
	for k := 0; k < steps; k++ {
		for i, c := range run.choices {
			if k >= len(c.out.tokens) {
				continue
			}
			b, send := s.chatTokenChunk(run, c, k, &sent[i], continuous)
			if !send {
				continue
			}
			if fa >= 0 && tokenChunks == fa {
				sw.fail()
				return false
			}
			if !sw.event(b, true) {
				return false
			}
			tokenChunks++
		}
	}
	if fa >= 0 {
		sw.fail()
		return false
	}
	if includeUsage {
		completion := 0
		for _, c := range run.choices {
			completion += len(c.out.tokens)
		}
		b := appendChunkHead(nil, run.id, "chat.completion.chunk", run.created, s.opts.Model)
		b = append(b, `],"usage":`...)
		b = appendUsage(b, P, completion, false)
		if !sw.event(append(b, '}'), false) {
			return false
		}
	}
	sw.done()
	return sw.ok
}

// chatTokenChunk builds the chunk of token k of choice c, or reports that
// vLLM would not send one (a token swallowed by the tool parser, when
// neither token IDs nor logprobs need it).
func (s *Server) chatTokenChunk(run *chatRun, c *chatChoice, k int, sent *int, continuous bool) ([]byte, bool) {
	req := run.req
	out := c.out
	final := k == len(out.tokens)-1
	visible := min(out.visible[k], c.contentEnd)
	start := *sent
	*sent = max(*sent, visible)
	// Until the text reaches the content, deltas are the reasoning parser's:
	// reasoning and content parts, tags dropped, nothing sent for a delta
	// that is only a tag.
	inReasoning := start < c.cStart
	delta, rdelta := "", ""
	switch {
	case inReasoning:
		rdelta = overlap(out.text, start, visible, c.rStart, c.rEnd)
		delta = overlap(out.text, start, visible, c.cStart, c.contentEnd)
	case visible > start:
		delta = out.text[start:visible]
	}
	swallowed := !final && delta == "" &&
		((c.toolStart >= 0 && k >= c.toolStart) || (inReasoning && rdelta == ""))
	if swallowed {
		// Before PR #29074 (and so in NoTokenIDs mode) such tokens were
		// never sent; after it they are, with an empty delta, when the
		// client asked for token IDs or logprobs.
		if s.opts.NoTokenIDs || (!req.returnTokenIDs && !req.logprobs) {
			return nil, false
		}
	}
	b := appendChunkHead(nil, run.id, "chat.completion.chunk", run.created, s.opts.Model)
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, int64(c.index), 10)
	b = append(b, `,"delta":`...)
	switch {
	case swallowed:
		b = append(b, "{}"...)
	case final && c.calls != nil:
		b = append(b, '{')
		if delta != "" {
			b = append(b, `"content":`...)
			b = appendJSONString(b, delta)
			b = append(b, ',')
		}
		b = append(b, `"tool_calls":[`...)
		for j, tc := range c.calls {
			if j > 0 {
				b = append(b, ',')
			}
			// DeltaToolCall declares id, type, index, function in that order.
			b = append(b, `{"id":`...)
			b = appendJSONString(b, tc.id)
			b = append(b, `,"type":"function","index":`...)
			b = strconv.AppendInt(b, int64(j), 10)
			b = append(b, `,"function":{"name":`...)
			b = appendJSONString(b, tc.name)
			b = append(b, `,"arguments":`...)
			b = appendJSONString(b, tc.arguments)
			b = append(b, "}}"...)
		}
		b = append(b, "]}"...)
	case rdelta != "":
		// DeltaMessage declares content before reasoning.
		b = append(b, '{')
		if delta != "" {
			b = append(b, `"content":`...)
			b = appendJSONString(b, delta)
			b = append(b, ',')
		}
		b = append(b, `"reasoning":`...)
		b = appendJSONString(b, rdelta)
		b = append(b, '}')
	default:
		b = append(b, `{"content":`...)
		b = appendJSONString(b, delta)
		b = append(b, '}')
	}
	b = append(b, `,"logprobs":`...)
	if req.logprobs {
		b = s.appendChatLogprobs(b, out, k, k+1, int(req.topLogprobs), req.returnTokensAsIDs)
	} else {
		b = append(b, "null"...)
	}
	if final {
		b = append(b, `,"finish_reason":`...)
		b = appendJSONString(b, c.streamFinish)
		b = append(b, `,"stop_reason":`...)
		b = out.reason.appendJSON(b)
	} else {
		b = append(b, `,"finish_reason":null`...)
	}
	if !s.opts.NoTokenIDs {
		b = append(b, `,"token_ids":`...)
		b = appendIntsOrNull(b, out.tokens[k:k+1], req.returnTokenIDs)
	}
	b = append(b, "}]"...)
	if continuous {
		b = append(b, `,"usage":`...)
		b = appendUsage(b, len(run.promptIDs), k+1, false)
	}
	return append(b, '}'), true
}
