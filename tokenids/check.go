package tokenids

import (
	"fmt"
	"strings"
)

// The checks Verify can run, as named in Verdict.Checks (and on the span
// as tokentap.token_ids.checks).
const (
	// CheckIDsPresent: the prompt and every expected choice carry IDs.
	CheckIDsPresent = "ids_present"
	// CheckChoiceCount: the answer has the n choices per prompt asked for.
	CheckChoiceCount = "choice_count"
	// CheckLogprobCount: every choice with logprobs has one per token ID,
	// and has them when they were requested.
	CheckLogprobCount = "logprob_count"
	// CheckPromptCount: the prompt IDs add up to usage.prompt_tokens.
	CheckPromptCount = "prompt_count"
	// CheckCompletionCount: the choices' IDs add up to
	// usage.completion_tokens.
	CheckCompletionCount = "completion_count"
)

// Verdict is the fidelity check's finding on a call's IDs.
type Verdict struct {
	Valid   bool
	Problem string // what failed, "" when valid
	// Checks lists the checks that ran, in the order above. The counts are
	// compared with usage only when the answer carried usage and nothing
	// before failed: a call without prompt_count and completion_count was
	// not checked against vLLM's accounting.
	Checks []string
}

// Check is Verify's verdict without the list of checks.
func Check(req *Request, res *Result) (valid bool, problem string) {
	v := Verify(req, res)
	return v.Valid, v.Problem
}

// Verify is the fidelity check of a finished call's IDs: the prompt and every
// expected choice carry IDs, the prompt lengths add up to usage.prompt_tokens,
// the choices' lengths to usage.completion_tokens, and every choice with
// logprobs has one per token (and has them when they were requested). It
// never repairs anything.
func Verify(req *Request, res *Result) Verdict {
	var problems, checks []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if !req.TokenIDs {
		add("token IDs not requested: completions echo requests are sent without return_token_ids (vLLM #57996)")
	} else {
		checks = append(checks, CheckIDsPresent)
	}
	checks = append(checks, CheckChoiceCount)
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
	missing, logprobsChecked := 0, false
	for _, c := range res.Choices {
		if c.TokenIDs == nil {
			missing++
			continue
		}
		completionTokens += int64(len(c.TokenIDs))
		logprobsChecked = logprobsChecked || c.nullLogprob || c.Logprobs != nil || req.Logprobs
		switch {
		case c.nullLogprob:
			add("choice %d: a logprob is null", c.Index)
		case c.Logprobs != nil && len(c.Logprobs) != len(c.TokenIDs):
			add("choice %d: %d logprobs for %d token IDs", c.Index, len(c.Logprobs), len(c.TokenIDs))
		case c.Logprobs == nil && req.Logprobs:
			add("choice %d: logprobs requested but none returned", c.Index)
		}
	}
	if logprobsChecked {
		checks = append(checks, CheckLogprobCount)
	}
	if missing > 0 && req.TokenIDs {
		add("%d of %d choices have no token_ids", missing, len(res.Choices))
	}
	if u := res.Usage; u != nil && len(problems) == 0 {
		checks = append(checks, CheckPromptCount, CheckCompletionCount)
		if promptTokens != u.PromptTokens {
			add("prompt_token_ids hold %d IDs, usage.prompt_tokens is %d", promptTokens, u.PromptTokens)
		}
		if completionTokens != u.CompletionTokens {
			add("token_ids hold %d IDs, usage.completion_tokens is %d", completionTokens, u.CompletionTokens)
		}
	}
	if len(problems) == 0 {
		return Verdict{Valid: true, Checks: checks}
	}
	return Verdict{Problem: strings.Join(problems, "; "), Checks: checks}
}
