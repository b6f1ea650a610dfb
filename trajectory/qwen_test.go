package trajectory

import (
	"context"
	"strings"
)

// Qwen3 token IDs and texts from reference/trajectories.md §1, §3 and §7.
const (
	imStart    = 151644
	imEnd      = 151645
	endOfText  = 151643
	toolCall   = 151657
	toolCallE  = 151658
	toolResp   = 151665
	toolRespE  = 151666
	think      = 151667
	thinkE     = 151668
	nl         = 198
	nlnl       = 271
	fillerTool = 5143 // stands for the tool schema text of the system prompt
)

var qwenText = map[int64]string{
	endOfText: "<|endoftext|>", imStart: "<|im_start|>", imEnd: "<|im_end|>",
	toolCall: "<tool_call>", toolCallE: "</tool_call>", toolResp: "<tool_response>", toolRespE: "</tool_response>",
	think: "<think>", thinkE: "</think>",
	8948: "system", 872: "user", 77091: "assistant",
	nl: "\n", nlnl: "\n\n", 1406: "\n\n\n", 624: ".\n", 382: ".\n\n", 13048: "Hi", 0: "!",
	2610: "You", 525: " are", 264: " a", 10950: " helpful", 17847: " assistant", 13: ".",
	3838: "What", 374: " is", 220: " ", 17: "2", 10: "+", 30: "?",
	10061: "Let", 752: " me", 1744: " think", 785: "The", 4226: " answer", 19: "4",
	40: "I", 1079: " am", 1265: " should", 2711: " search",
	4913: "{\"", 606: "name", 788: "\":", 330: " \"", 1836: "search", 497: "\",", 16370: "arguments",
	5212: " {\"", 1631: "query", 87: "x", 95642: "\"}}\n", 3252: "\":\"",
	16141: "Answer", 25: ":", 124373: "\xf0\x93", 222: "\x80", 29333: " \ufffd",
	fillerTool: " tool",
}

// qwenDecoder decodes like a byte-level BPE detokenizer that keeps special
// tokens: it concatenates token bytes and replaces invalid UTF-8. Unknown IDs
// fail, so a test cannot silently decode garbage.
func qwenDecoder(_ context.Context, ids []int64) (string, bool) {
	var sb strings.Builder
	for _, id := range ids {
		s, ok := qwenText[id]
		if !ok {
			return "", false
		}
		sb.WriteString(s)
	}
	return strings.ToValidUTF8(sb.String(), "\ufffd"), true
}

func cat(parts ...[]int64) []int64 {
	var out []int64
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func ids(v ...int64) []int64 { return v }

func repeat(id int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = id
	}
	return out
}

var (
	// §3.2: "You are a helpful assistant." + "What is 2+2?" + generation prompt (26 tokens).
	chatP1 = ids(imStart, 8948, nl, 2610, 525, 264, 10950, 17847, 13, imEnd, nl,
		imStart, 872, nl, 3838, 374, 220, 17, 10, 17, 30, imEnd, nl, imStart, 77091, nl)
	// <think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>
	chatR1 = ids(think, nl, 10061, 752, 1744, 624, thinkE, nlnl, 785, 4226, 374, 220, 19, 13, imEnd)
	// The next user turn and generation prompt after the re-rendered assistant turn.
	chatNextUser = ids(nl, imStart, 872, nl, 3838, 374, 220, 17, 10, 17, 30, imEnd, nl, imStart, 77091, nl)

	// §3.3: a 151-token prompt with a tool in the system prompt, asking "What is x?".
	toolP1 = cat(ids(imStart, 8948, nl, 2610, 525, 264, 10950, 17847, 13), repeat(fillerTool, 127),
		ids(imEnd, nl, imStart, 872, nl, 3838, 374, 220, 87, 30, imEnd, nl, imStart, 77091, nl))
	toolThink = ids(think, nl, 40, 1265, 2711, 624, thinkE, nlnl) // <think>\nI should search.\n</think>\n\n
	// <tool_call>\n{"name": "search", "arguments": {"query": "x"}}\n</tool_call><|im_end|>
	toolCallSpaced = ids(toolCall, nl, 4913, 606, 788, 330, 1836, 497, 330, 16370, 788, 5212, 1631, 788, 330, 87, 95642, toolCallE, imEnd)
	// the same call with compact arguments {"query":"x"}
	toolCallCompact = ids(toolCall, nl, 4913, 606, 788, 330, 1836, 497, 330, 16370, 788, 5212, 1631, 3252, 87, 95642, toolCallE, imEnd)
	toolR1          = cat(toolThink, toolCallSpaced) // 27 tokens
	// \n<|im_start|>user\n<tool_response>\nx is 42\n</tool_response><|im_end|>\n<|im_start|>assistant\n
	toolO2 = ids(nl, imStart, 872, nl, toolResp, nl, 87, 374, 220, 19, 17, nl, toolRespE, imEnd, nl, imStart, 77091, nl)
	// <think>\nI should search.\n</think>\n\nThe answer is 42.<|im_end|>
	toolR2 = cat(toolThink, ids(785, 4226, 374, 220, 19, 17, 13, imEnd))
	// §3.4: the empty think block of enable_thinking=false.
	emptyThink = ids(think, nlnl, thinkE, nlnl)
)

func call(seq uint64, prompt []int64, choices ...Choice) Call {
	return Call{Seq: seq, Usable: true, Prompt: prompt, Choices: choices}
}

func stop(toks []int64) Choice { return Choice{TokenIDs: toks, FinishReason: "stop"} }

func choiceN(i int, toks []int64) Choice {
	return Choice{Index: i, TokenIDs: toks, FinishReason: "stop"}
}
