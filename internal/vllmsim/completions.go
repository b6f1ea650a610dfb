package vllmsim

import (
	"fmt"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// complPrompt is one tokenised completions prompt.
type complPrompt struct {
	ids  []int64
	text string    // the prompt text echo returns
	lps  [][]altLP // prompt logprobs, nil unless requested
}

// complChoice is one choice: index = prompt*n + sample (prompt-major).
type complChoice struct {
	index  int
	prompt int
	out    *sampleOut
}

type complRun struct {
	req     *completionRequest
	id      string
	created int64
	prompts []complPrompt
	choices []*complChoice
}

func (s *Server) handleCompletions(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(r)
	if !ok {
		return
	}
	req, e := parseCompletionRequest(raw)
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
	run := &complRun{req: req}
	maxTokens := 0
	for _, in := range req.prompts {
		var cp complPrompt
		if in.isIDs {
			cp.ids = in.ids
			cp.text = s.decode(in.ids)
		} else {
			cp.ids = s.encode(in.text)
			cp.text = in.text
		}
		if len(cp.ids) == 0 {
			writeAPIError(w, badRequest("The decoder prompt cannot be empty", nil))
			return
		}
		mt, e := s.checkLengths(len(cp.ids), req.maxTokens)
		if e != nil {
			writeAPIError(w, e)
			return
		}
		maxTokens = mt
		for _, id := range cp.ids {
			if id >= vocabSize {
				writeAPIError(w, badRequest(fmt.Sprintf("Token id %d is out of vocabulary", id), nil))
				return
			}
		}
		run.prompts = append(run.prompts, cp)
	}
	if len(run.prompts) == 0 {
		writeAPIError(w, badRequest("The decoder prompt cannot be empty", nil))
		return
	}
	promptLP := req.promptLogprobs
	if promptLP == nil && req.echo {
		// echo implies prompt_logprobs = logprobs on completions.
		promptLP = req.logprobs
	}
	if e := checkSampling(&req.commonRequest, maxTokens, req.logprobs, promptLP); e != nil {
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

	run.id = responseID("cmpl-", r, req.requestID)
	run.created = s.opts.Clock().Unix()
	promptTotal, completion := 0, 0
	for pi := range run.prompts {
		cp := &run.prompts[pi]
		if promptLP != nil {
			cp.lps = s.promptLogprobs(cp.ids, int(*promptLP))
		}
		p := baseGenParams(&req.commonRequest, cp.ids, maxTokens)
		p.eos = tokEndOfText
		p.leadingSpace = true
		for j, out := range s.generate(p) {
			run.choices = append(run.choices, &complChoice{index: pi*req.n + j, prompt: pi, out: out})
			completion += len(out.tokens)
		}
		promptTotal += len(cp.ids)
	}
	s.promptTokens.Add(int64(promptTotal))
	s.generationTokens.Add(int64(completion))

	if req.stream {
		if s.streamCompletions(w, r, run, fa) {
			s.requestsOK.Add(1)
		}
		return
	}
	writeJSON(w, http.StatusOK, s.appendCompletionResponse(nil, run))
	s.requestsOK.Add(1)
}

// lpStep is one position of completions logprobs: a token and its logprob
// dict (nil for the null first prompt position under echo).
type lpStep struct {
	id   int64
	dict []altLP
}

// genSteps returns the logprob steps of tokens [from, to) of a sample for
// logprobs=k: the sampled token plus the top-k (collapsed when equal).
func (s *Server) genSteps(out *sampleOut, from, to, k int) []lpStep {
	steps := make([]lpStep, 0, to-from)
	for pos := from; pos < to; pos++ {
		id := out.tokens[pos]
		steps = append(steps, lpStep{id: id, dict: s.tokenLogprobs(out.seed, pos, id, k-1)})
	}
	return steps
}

// promptSteps returns the logprob steps of a prompt (echo).
func promptSteps(cp *complPrompt) []lpStep {
	steps := make([]lpStep, len(cp.ids))
	for i, id := range cp.ids {
		steps[i] = lpStep{id: id}
		if cp.lps != nil {
			steps[i].dict = cp.lps[i]
		}
	}
	return steps
}

// appendCompletionLogprobs appends CompletionLogProbs as
// _create_completion_logprobs builds it: text_offset advances by the length
// (in characters) of each previous token string.
func (s *Server) appendCompletionLogprobs(b []byte, steps []lpStep, k, offset int, asIDs bool) []byte {
	tokens := make([]string, len(steps))
	for i, st := range steps {
		tokens[i] = s.logprobToken(st.id, asIDs)
	}
	b = append(b, `{"text_offset":[`...)
	off := offset
	for i := range steps {
		if i > 0 {
			b = append(b, ',')
			off += utf8.RuneCountInString(tokens[i-1])
		}
		b = strconv.AppendInt(b, int64(off), 10)
	}
	b = append(b, `],"token_logprobs":[`...)
	for i, st := range steps {
		if i > 0 {
			b = append(b, ',')
		}
		if st.dict == nil {
			b = append(b, "null"...)
		} else {
			b = appendPyFloat(b, max(st.dict[0].lp, -9999.0))
		}
	}
	b = append(b, `],"tokens":[`...)
	for i, t := range tokens {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, t)
	}
	b = append(b, `],"top_logprobs":[`...)
	for i, st := range steps {
		if i > 0 {
			b = append(b, ',')
		}
		if st.dict == nil {
			b = append(b, "null"...)
			continue
		}
		// A Python dict keyed by token string: at most k+1 entries, a
		// repeated key keeps its first position and takes the last value.
		var keys []string
		vals := map[string]float64{}
		for j, e := range st.dict {
			if j > k {
				break
			}
			key := s.logprobToken(e.id, asIDs)
			if _, seen := vals[key]; !seen {
				keys = append(keys, key)
			}
			vals[key] = max(e.lp, -9999.0)
		}
		b = append(b, '{')
		for j, key := range keys {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, key)
			b = append(b, ':')
			b = appendPyFloat(b, vals[key])
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// echoPrefix is the prompt text an echoed choice starts with. With
// return_token_ids vLLM blanks it (issue #57996), so the text no longer
// starts with the prompt.
func (run *complRun) echoPrefix(cp *complPrompt) string {
	if run.req.returnTokenIDs {
		return ""
	}
	return cp.text
}

// appendCompletionResponse appends the non-stream CompletionResponse.
func (s *Server) appendCompletionResponse(b []byte, run *complRun) []byte {
	req := run.req
	b = append(b, `{"id":`...)
	b = appendJSONString(b, run.id)
	b = append(b, `,"object":"text_completion","created":`...)
	b = strconv.AppendInt(b, run.created, 10)
	b = append(b, `,"model":`...)
	b = appendJSONString(b, s.opts.Model)
	b = append(b, `,"choices":[`...)
	completion := 0
	for i, c := range run.choices {
		if i > 0 {
			b = append(b, ',')
		}
		cp := &run.prompts[c.prompt]
		text := c.out.text
		if req.echo {
			text = run.echoPrefix(cp) + text
		}
		b = append(b, `{"index":`...)
		b = strconv.AppendInt(b, int64(c.index), 10)
		b = append(b, `,"text":`...)
		b = appendJSONString(b, text)
		b = append(b, `,"logprobs":`...)
		if req.logprobs != nil {
			k := int(*req.logprobs)
			steps := s.genSteps(c.out, 0, len(c.out.tokens), k)
			if req.echo {
				steps = append(promptSteps(cp), steps...)
			}
			b = s.appendCompletionLogprobs(b, steps, k, 0, req.returnTokensAsIDs)
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"finish_reason":`...)
		b = appendJSONString(b, c.out.finish)
		b = append(b, `,"stop_reason":`...)
		b = c.out.reason.appendJSON(b)
		if !s.opts.NoTokenIDs {
			b = append(b, `,"token_ids":`...)
			b = appendIntsOrNull(b, c.out.tokens, req.returnTokenIDs)
		}
		b = append(b, `,"prompt_logprobs":`...)
		b = s.appendPromptLogprobs(b, cp.ids, cp.lps)
		if !s.opts.NoTokenIDs {
			b = append(b, `,"prompt_token_ids":`...)
			b = appendIntsOrNull(b, cp.ids, req.returnTokenIDs)
		}
		b = append(b, '}')
		completion += len(c.out.tokens)
	}
	promptTotal := 0
	for _, cp := range run.prompts {
		promptTotal += len(cp.ids)
	}
	b = append(b, `],"service_tier":null,"system_fingerprint":null,"usage":`...)
	b = appendUsage(b, promptTotal, completion, true)
	return append(b, `,"kv_transfer_params":null}`...)
}

// streamCompletions writes a completions SSE stream. Chunks are dumped with
// every field present ("usage":null, "prompt_token_ids":null, ...); choices
// of all prompts interleave step by step. It reports a normal end.
func (s *Server) streamCompletions(w http.ResponseWriter, r *http.Request, run *complRun, fa int) bool {
	req := run.req
	includeUsage, continuous := usageFlags(&req.commonRequest)
	sw := s.startSSE(w, r)
	sent := make([]int, len(run.choices))     // bytes of out.text streamed
	textLens := make([]int, len(run.choices)) // characters streamed (text_offset base)
	steps := 0
	for _, c := range run.choices {
		steps = max(steps, len(c.out.tokens))
	}
	tokenChunks := 0
	for k := 0; k < steps; k++ {
		for i, c := range run.choices {
			out := c.out
			if k >= len(out.tokens) {
				continue
			}
			cp := &run.prompts[c.prompt]
			final := k == len(out.tokens)-1
			delta := ""
			if v := out.visible[k]; v > sent[i] {
				delta = out.text[sent[i]:v]
				sent[i] = v
			}
			text := delta
			var promptIDs []int64
			var lpSteps []lpStep
			if req.logprobs != nil {
				lpSteps = s.genSteps(out, k, k+1, int(*req.logprobs))
			}
			if k == 0 && req.echo {
				// The echo branch returns the prompt (and its IDs, even
				// without return_token_ids) with the first token.
				text = run.echoPrefix(cp) + delta
				promptIDs = cp.ids
				if req.logprobs != nil {
					lpSteps = append(promptSteps(cp), lpSteps...)
				}
			} else if k == 0 && req.returnTokenIDs {
				promptIDs = cp.ids
			}
			if fa >= 0 && tokenChunks == fa {
				sw.fail()
				return false
			}
			b := appendChunkHead(nil, run.id, "text_completion", run.created, s.opts.Model)
			b = append(b, `{"index":`...)
			b = strconv.AppendInt(b, int64(c.index), 10)
			b = append(b, `,"text":`...)
			b = appendJSONString(b, text)
			b = append(b, `,"logprobs":`...)
			if req.logprobs != nil {
				b = s.appendCompletionLogprobs(b, lpSteps, int(*req.logprobs), textLens[i], req.returnTokensAsIDs)
			} else {
				b = append(b, "null"...)
			}
			textLens[i] += utf8.RuneCountInString(text)
			if final {
				b = append(b, `,"finish_reason":`...)
				b = appendJSONString(b, out.finish)
				b = append(b, `,"stop_reason":`...)
				b = out.reason.appendJSON(b)
			} else {
				b = append(b, `,"finish_reason":null,"stop_reason":null`...)
			}
			if !s.opts.NoTokenIDs {
				b = append(b, `,"prompt_token_ids":`...)
				b = appendIntsOrNull(b, promptIDs, promptIDs != nil)
				b = append(b, `,"token_ids":`...)
				b = appendIntsOrNull(b, out.tokens[k:k+1], req.returnTokenIDs)
			}
			b = append(b, `}],"usage":`...)
			if continuous {
				b = appendUsage(b, len(cp.ids), k+1, true)
			} else {
				b = append(b, "null"...)
			}
			if !sw.event(append(b, '}'), true) {
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
		promptTotal, completion := 0, 0
		for _, cp := range run.prompts {
			promptTotal += len(cp.ids)
		}
		for _, c := range run.choices {
			completion += len(c.out.tokens)
		}
		b := appendChunkHead(nil, run.id, "text_completion", run.created, s.opts.Model)
		b = append(b, `],"usage":`...)
		b = appendUsage(b, promptTotal, completion, false)
		if !sw.event(append(b, '}'), false) {
			return false
		}
	}
	sw.done()
	return sw.ok
}
