package vllmsim

import "strings"

// reasoningSplit is what vLLM's qwen3 reasoning parser makes of one output
// text, with the byte ranges the streaming path needs.
type reasoningSplit struct {
	reasoning *string // message.reasoning; nil → null
	content   *string // message.content before tool parsing; nil → null
	// [rStart, rEnd) is the reasoning inside the output text and cStart
	// where the content begins; the tags between them are never streamed.
	rStart, rEnd, cStart int
}

// splitReasoning is Qwen3ReasoningParser.extract_reasoning: the first
// <think> (and anything before it) is dropped; text up to </think> is
// reasoning and the rest content. Without </think> the output is all
// reasoning (a truncated think block) unless thinking was switched off.
func splitReasoning(text string, thinkingEnabled bool) reasoningSplit {
	off := 0
	if i := strings.Index(text, "<think>"); i >= 0 {
		off = i + len("<think>")
	}
	rest := text[off:]
	if j := strings.Index(rest, "</think>"); j >= 0 {
		r, c := rest[:j], rest[j+len("</think>"):]
		sp := reasoningSplit{reasoning: &r, rStart: off, rEnd: off + j, cStart: off + j + len("</think>")}
		if c != "" {
			sp.content = &c
		}
		return sp
	}
	if !thinkingEnabled {
		return reasoningSplit{content: &rest, rStart: off, rEnd: off, cStart: off}
	}
	return reasoningSplit{reasoning: &rest, rStart: off, rEnd: len(text), cStart: len(text)}
}

// overlap returns text[max(a,lo):min(b,hi)], or "" when the ranges miss.
func overlap(text string, a, b, lo, hi int) string {
	a, b = max(a, lo), min(b, hi)
	if a >= b {
		return ""
	}
	return text[a:b]
}
