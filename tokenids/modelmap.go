package tokenids

import (
	"fmt"
	"strings"
)

// ModelRule maps the model names agents send that match Pattern to the
// model vLLM serves: agent harnesses send their own names (claude-sonnet-4-5,
// gpt-5, a small model for side calls).
type ModelRule struct {
	// Pattern is a model name in which each '*' stands for any run of
	// characters, '/' included ("claude-*", "*").
	Pattern string
	Model   string
}

// ParseModelRule reads pattern=model (claude-*=Qwen/Qwen3-8B).
func ParseModelRule(s string) (ModelRule, error) {
	pattern, model, ok := strings.Cut(s, "=")
	pattern, model = strings.TrimSpace(pattern), strings.TrimSpace(model)
	if !ok || pattern == "" || model == "" {
		return ModelRule{}, fmt.Errorf("%q: want pattern=model, e.g. claude-*=Qwen/Qwen3-8B", s)
	}
	if strings.Contains(model, "*") {
		return ModelRule{}, fmt.Errorf("%q: the served model %q is a name, not a pattern", s, model)
	}
	return ModelRule{Pattern: pattern, Model: model}, nil
}

// MapModel returns the model of the first rule whose pattern matches name.
func MapModel(rules []ModelRule, name string) (string, bool) {
	for _, r := range rules {
		if globMatch(r.Pattern, name) {
			return r.Model, true
		}
	}
	return "", false
}

// globMatch reports whether name matches pattern, where '*' matches any
// run of bytes. Greedy with backtracking to the last star: linear in
// practice, O(len(pattern)·len(name)) at worst.
func globMatch(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && pattern[p] == name[n]:
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
