package trajectory

import (
	"context"
	"strings"
)

const (
	// maxDecode bounds every piece Diagnose decodes, so one drift entry costs
	// a few bounded /detokenize requests however long the contexts are.
	maxDecode = 512
	// retokSlack is how many extra prompt tokens the retokenized test decodes:
	// the same text may take more tokens in the prompt than in the context.
	retokSlack = 64
)

// Diagnose fills ExpectedText/GotText (decode(Expected), decode(Got)) and Cause
// of every drift entry of f, given the same calls Build got. With C the
// candidate parent's context, P the drifted prompt and At the first differing
// token, the first matching cause wins:
//
//  1. retokenized: decode(C[At:]) is a non-empty prefix of
//     decode(P[At:At+len(C)-At+64]): the same text in different IDs (a
//     .+\n vs .\n re-split, a truncated multi-byte character re-encoded).
//  2. eos_rerendered: At == len(C)-1, the parent's end-of-turn token differs.
//  3. tool_call_reserialized: At lies in the whitespace after a "</think>"
//     and both decode(C[At:]) and decode(P[At:]) open (after whitespace)
//     with "<tool_call>": the template re-rendered what precedes the call.
//  4. think_stripped: At lies in a think block: decode(C[At:]) starts (after
//     whitespace) with "<think>" or meets "</think>" before any "<think>", or
//     the context text before At has an unclosed "<think>" or only whitespace
//     after its last "</think>".
//  5. tool_call_reserialized: At lies in a tool call: the context text before
//     At has an unclosed "<tool_call>", or decode(C[At:]) meets "</tool_call>"
//     before any "<tool_call>", or it starts (after whitespace) with
//     "<tool_call>" and the prompt text from At contains "<tool_call>".
//  6. other.
//
// Each piece is at most 512 tokens (the prompt piece 576). When dec is nil, ctx
// is done or any decode fails, the cause is only structural (eos_rerendered
// when At == len(C)-1, else other), and texts that could not be decoded stay nil.
// Entries whose calls are not in calls are left as they are.
func Diagnose(ctx context.Context, f *Forest, calls []Call, dec Decoder) {
	if f == nil || len(f.Drift) == 0 {
		return
	}
	bySeq := make(map[uint64]*Call)
	for _, c := range usableCalls(calls) {
		if _, dup := bySeq[c.Seq]; !dup {
			bySeq[c.Seq] = c
		}
	}
	for i := range f.Drift {
		d := &f.Drift[i]
		child, parent := bySeq[d.Seq], bySeq[d.ParentSeq]
		if child == nil || parent == nil {
			continue
		}
		j := choicePos(parent, d.ParentChoice)
		if j < 0 {
			continue
		}
		ctxLen := len(parent.Prompt) + len(parent.Choices[j].TokenIDs)
		d.Cause = structuralCause(d.At, ctxLen)
		if dec == nil || ctx.Err() != nil {
			continue
		}
		d.ExpectedText = decodePtr(ctx, dec, d.Expected)
		d.GotText = decodePtr(ctx, dec, d.Got)
		if c, ok := classify(ctx, dec, parent, j, child.Prompt, d.At); ok {
			d.Cause = c
		}
	}
}

func choicePos(c *Call, index int) int {
	for j := range c.Choices {
		if c.Choices[j].Index == index {
			return j
		}
	}
	return -1
}

func decodePtr(ctx context.Context, dec Decoder, ids []int64) *string {
	s, ok := dec(ctx, ids)
	if !ok {
		return nil
	}
	return &s
}

// classify applies the rules of Diagnose; ok=false when some text is missing.
func classify(ctx context.Context, dec Decoder, parent *Call, j int, prompt []int64, at int) (Cause, bool) {
	ctxLen := len(parent.Prompt) + len(parent.Choices[j].TokenIDs)
	end := min(ctxLen, at+maxDecode)
	exp, ok1 := dec(ctx, contextSlice(parent, j, at, end))
	got, ok2 := dec(ctx, prompt[at:min(len(prompt), end+retokSlack)])
	before, ok3 := dec(ctx, contextSlice(parent, j, max(0, at-maxDecode), at))
	if !ok1 || !ok2 || !ok3 {
		return "", false
	}
	cut := exp
	if end < ctxLen {
		// Our bound may split a multi-byte character the prompt piece holds whole.
		cut = strings.TrimRight(exp, "\ufffd")
	}
	switch {
	case cut != "" && strings.HasPrefix(got, cut):
		return CauseRetokenized, true
	case at == ctxLen-1:
		return CauseEOSRerendered, true
	case onlySpaceAfter(before, "</think>") && opensWith(exp, "<tool_call>") && opensWith(got, "<tool_call>"):
		// The reasoning is intact; the separator the template writes before
		// a tool call differs (content "\n\n" sent back makes Qwen3's
		// template add "\n"), as in §3.7.
		return CauseToolCallReserialized, true
	case opensWith(exp, "<think>") || closesFirst(exp, "<think>", "</think>") ||
		unclosed(before, "<think>", "</think>") || onlySpaceAfter(before, "</think>"):
		return CauseThinkStripped, true
	case unclosed(before, "<tool_call>", "</tool_call>") || closesFirst(exp, "<tool_call>", "</tool_call>") ||
		(opensWith(exp, "<tool_call>") && strings.Contains(got, "<tool_call>")):
		return CauseToolCallReserialized, true
	}
	return CauseOther, true
}

// opensWith reports whether s starts with tag after optional whitespace.
func opensWith(s, tag string) bool {
	return strings.HasPrefix(strings.TrimLeft(s, " \t\r\n"), tag)
}

// unclosed reports whether s ends inside an open…close block.
func unclosed(s, open, close string) bool {
	o := strings.LastIndex(s, open)
	return o >= 0 && o > strings.LastIndex(s, close)
}

// closesFirst reports whether s closes a block it did not open: the text
// before s was inside one.
func closesFirst(s, open, close string) bool {
	c := strings.Index(s, close)
	if c < 0 {
		return false
	}
	o := strings.Index(s, open)
	return o < 0 || c < o
}

// onlySpaceAfter reports whether s ends with tag followed by whitespace only.
func onlySpaceAfter(s, tag string) bool {
	i := strings.LastIndex(s, tag)
	return i >= 0 && strings.TrimSpace(s[i+len(tag):]) == ""
}
