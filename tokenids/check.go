package tokenids

import (
	"fmt"
	"strings"
)

// Check is the fidelity check of a finished call's IDs: the prompt and every
// expected choice carry IDs, the prompt lengths add up to usage.prompt_tokens,
// the choices' lengths to usage.completion_tokens, and every choice with
// logprobs has one per token (and has them when they were requested). It
// never repairs anything; problem says what failed ("" when valid).
func Check(req *Request, res *Result) (valid bool, problem string) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if !req.TokenIDs {
		add("token IDs not requested: completions echo requests are sent without return_token_ids (vLLM #57996)")
	}
	prompts := req.Prompts
	if req.Endpoint == Chat || prompts < 1 {
		prompts = 1
	}
	var promptTokens int64
	for i := range prompts {
		if i >= len(res.Prompts) || res.Prompts[i] == nil {
			if req.TokenIDs {
				add("prompt %d: no prompt_token_ids", i)
			}
			continue
		}
		promptTokens += int64(len(res.Prompts[i]))
	}
	if want := prompts * max(req.N, 1); len(res.Choices) != want {
		add("%d choices, expected %d", len(res.Choices), want)
	}
	var completionTokens int64
	missing := 0
	for _, c := range res.Choices {
		if c.TokenIDs == nil {
			missing++
			continue
		}
		completionTokens += int64(len(c.TokenIDs))
		switch {
		case c.nullLogprob:
			add("choice %d: a logprob is null", c.Index)
		case c.Logprobs != nil && len(c.Logprobs) != len(c.TokenIDs):
			add("choice %d: %d logprobs for %d token IDs", c.Index, len(c.Logprobs), len(c.TokenIDs))
		case c.Logprobs == nil && req.Logprobs:
			add("choice %d: logprobs requested but none returned", c.Index)
		}
	}
	if missing > 0 && req.TokenIDs {
		add("%d of %d choices have no token_ids", missing, len(res.Choices))
	}
	if u := res.Usage; u != nil && len(problems) == 0 {
		if promptTokens != u.PromptTokens {
			add("prompt_token_ids hold %d IDs, usage.prompt_tokens is %d", promptTokens, u.PromptTokens)
		}
		if completionTokens != u.CompletionTokens {
			add("token_ids hold %d IDs, usage.completion_tokens is %d", completionTokens, u.CompletionTokens)
		}
	}
	if len(problems) == 0 {
		return true, ""
	}
	return false, strings.Join(problems, "; ")
}
