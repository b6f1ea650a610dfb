package trajectory

import (
	"context"
	"slices"
	"testing"
)

// driftCase is one vector of reference/trajectories.md §3/§7: call 1 sampled
// r1 after p1; call 2's prompt p2 was meant to continue it.
type driftCase struct {
	name        string
	p1, r1, p2  []int64
	at          int
	c, p        int64 // C[at], P2[at]
	cause       Cause // with text
	structural  Cause // without text
	wantCtxLen  int   // len(C), as §7 states it (0: not stated)
	finishLen   bool
	extraBefore []Call // earlier calls besides call 1 (lower Seq)
}

func driftCases() []driftCase {
	multiP1 := ids(imStart, 872, nl, 16141, imEnd, nl, imStart, 77091, nl)
	return []driftCase{
		{name: "think stripped on a new user query (§3.2)", p1: chatP1, r1: chatR1,
			p2: cat(chatP1, chatR1[8:], chatNextUser), at: 26, c: think, p: 785,
			cause: CauseThinkStripped, structural: CauseOther, wantCtxLen: 41},
		{name: "reasoning dropped in a tool loop (§3.3)", p1: toolP1, r1: toolR1,
			p2: cat(toolP1, toolCallSpaced, toolO2), at: 151, c: think, p: toolCall,
			cause: CauseThinkStripped, structural: CauseOther, wantCtxLen: 178},
		{name: "enable_thinking=false empty think block (§3.4)", p1: cat(toolP1, emptyThink), r1: toolCallSpaced,
			p2: cat(toolP1, toolCallSpaced, toolO2, emptyThink), at: 151, c: think, p: toolCall,
			cause: CauseThinkStripped, structural: CauseOther, wantCtxLen: 174},
		{name: "think whitespace normalized (§3.5)", p1: toolP1,
			r1: cat(ids(think, nlnl, 40, 1265, 2711, 382, thinkE, nlnl), toolCallSpaced),
			p2: cat(toolP1, toolR1, toolO2), at: 152, c: nlnl, p: nl,
			cause: CauseThinkStripped, structural: CauseOther, wantCtxLen: 178},
		{name: "BPE re-split . + \\n vs .\\n (§3.6a)", p1: toolP1,
			r1: cat(ids(think, nl, 40, 1265, 2711, 13, nl, thinkE, nlnl), toolCallSpaced),
			p2: cat(toolP1, toolR1, toolO2), at: 156, c: 13, p: 624,
			cause: CauseRetokenized, structural: CauseOther, wantCtxLen: 179},
		{name: "truncated multi-byte character (§3.6b)", p1: multiP1, r1: ids(16141, 25, 220, 124373, 222),
			p2: cat(multiP1, ids(16141, 25, 29333, imEnd), chatNextUser), at: len(multiP1) + 2, c: 220, p: 29333,
			cause: CauseRetokenized, structural: CauseOther, finishLen: true},
		{name: "compact tool arguments re-serialized (§3.7)", p1: toolP1, r1: cat(toolThink, toolCallCompact),
			p2: cat(toolP1, toolR1, toolO2), at: 172, c: 3252, p: 788,
			cause: CauseToolCallReserialized, structural: CauseOther, wantCtxLen: 177},
		// The model sampled "</think>\n\n<tool_call>"; vLLM's parsers return
		// the "\n\n" as content, the harness sends it back, and the Qwen3
		// template writes "\n" before a tool call that follows content
		// ((loop.first and content), §3.7): "</think>\n\n\n<tool_call>".
		{name: "content before a tool call re-rendered (§3.7, Codex)", p1: toolP1, r1: toolR1,
			p2: cat(toolP1, toolThink[:7], ids(1406), toolCallSpaced, toolO2), at: 158, c: nlnl, p: 1406,
			cause: CauseToolCallReserialized, structural: CauseOther, wantCtxLen: 178},
		{name: "wrong closer <|endoftext|> re-rendered as <|im_end|> (§3.8)", p1: chatP1,
			r1: cat(chatR1[:14], ids(endOfText)), p2: cat(chatP1, chatR1, chatNextUser), at: 40, c: endOfText, p: imEnd,
			cause: CauseEOSRerendered, structural: CauseEOSRerendered},
		{name: "edited user turn", p1: toolP1, r1: toolR1,
			p2: cat(toolP1[:144], ids(17), toolP1[145:], toolR1, toolO2), at: 144, c: 87, p: 17,
			cause: CauseOther, structural: CauseOther},
	}
}

func (tc driftCase) calls() []Call {
	c1 := call(10, tc.p1, stop(tc.r1))
	if tc.finishLen {
		c1.Choices[0].FinishReason = "length"
	}
	return append(slices.Clone(tc.extraBefore), c1, call(11, tc.p2, stop(toolR2)))
}

func TestDriftVectors(t *testing.T) {
	for _, tc := range driftCases() {
		t.Run(tc.name, func(t *testing.T) {
			calls := tc.calls()
			ctx := cat(tc.p1, tc.r1)
			if tc.wantCtxLen != 0 && len(ctx) != tc.wantCtxLen {
				t.Fatalf("vector: len(C) = %d, want %d", len(ctx), tc.wantCtxLen)
			}
			if ctx[tc.at] != tc.c || tc.p2[tc.at] != tc.p || !slices.Equal(ctx[:tc.at], tc.p2[:tc.at]) {
				t.Fatalf("vector: C[%d]=%d P2[%d]=%d", tc.at, ctx[tc.at], tc.at, tc.p2[tc.at])
			}
			f := Build(calls)
			if len(f.Drift) != 1 {
				t.Fatalf("drift = %+v", f.Drift)
			}
			d := f.Drift[0]
			ws := max(0, tc.at-8)
			want := Drift{Seq: 11, ParentSeq: 10, ParentChoice: 0, At: tc.at, WindowStart: ws,
				Expected: ctx[ws:min(len(ctx), tc.at+8)], Got: tc.p2[ws:min(len(tc.p2), tc.at+8)], Cause: tc.structural}
			if !driftEqual(d, want) {
				t.Fatalf("Build drift = %+v\nwant %+v", d, want)
			}
			if len(f.Trajectories) != 2 {
				t.Errorf("a drifted call starts its own trajectory: %+v", f.Trajectories)
			}

			Diagnose(context.Background(), &f, calls, qwenDecoder)
			d = f.Drift[0]
			if d.Cause != tc.cause {
				t.Errorf("cause = %s, want %s", d.Cause, tc.cause)
			}
			wantExp, _ := qwenDecoder(context.Background(), want.Expected)
			wantGot, _ := qwenDecoder(context.Background(), want.Got)
			if d.ExpectedText == nil || *d.ExpectedText != wantExp || d.GotText == nil || *d.GotText != wantGot {
				t.Errorf("texts = %v %v, want %q %q", d.ExpectedText, d.GotText, wantExp, wantGot)
			}

			// Without text, only the structural cause, and texts stay nil.
			f = Build(calls)
			noText := func(context.Context, []int64) (string, bool) { return "", false }
			Diagnose(context.Background(), &f, calls, noText)
			if d := f.Drift[0]; d.Cause != tc.structural || d.ExpectedText != nil || d.GotText != nil {
				t.Errorf("without text: %+v, want cause %s and nil texts", d, tc.structural)
			}
		})
	}
}

func driftEqual(a, b Drift) bool {
	return a.Seq == b.Seq && a.ParentSeq == b.ParentSeq && a.ParentChoice == b.ParentChoice &&
		a.At == b.At && a.WindowStart == b.WindowStart && slices.Equal(a.Expected, b.Expected) &&
		slices.Equal(a.Got, b.Got) && a.Cause == b.Cause
}

func TestDriftThinkText(t *testing.T) {
	tc := driftCases()[0]
	calls := tc.calls()
	f := Build(calls)
	Diagnose(context.Background(), &f, calls, qwenDecoder)
	d := f.Drift[0]
	// Window [18, 34): the end of the user turn and the generation prompt, then 8 after.
	if *d.ExpectedText != "+2?<|im_end|>\n<|im_start|>assistant\n<think>\nLet me think.\n</think>\n\n" ||
		*d.GotText != "+2?<|im_end|>\n<|im_start|>assistant\nThe answer is 4.<|im_end|>\n" {
		t.Errorf("texts = %q / %q", *d.ExpectedText, *d.GotText)
	}
}

func TestDriftSelection(t *testing.T) {
	x := func(from, n int) []int64 { // distinct synthetic tokens
		out := make([]int64, n)
		for i := range out {
			out[i] = int64(from + i)
		}
		return out
	}
	base := x(1000, 40)
	tests := []struct {
		name      string
		calls     []Call
		want      []Drift // Seq, ParentSeq, ParentChoice, At only
		wantRoots int
	}{
		{"exactly half of the context shared is drift", []Call{
			call(1, x(0, 4), stop(x(4, 4))),
			call(2, cat(x(0, 4), x(100, 3)), stop(x(200, 1))),
		}, []Drift{{Seq: 2, ParentSeq: 1, At: 4}}, 2},
		{"less than half is not", []Call{
			call(1, x(0, 4), stop(x(4, 5))),
			call(2, cat(x(0, 4), x(100, 3)), stop(x(200, 1))),
		}, nil, 2},
		{"ties go to the latest call", []Call{
			call(1, base, stop(x(50, 10))),
			call(2, base, stop(x(50, 10))),
			call(3, cat(base, x(50, 5), x(300, 4)), stop(x(200, 1))),
		}, []Drift{{Seq: 3, ParentSeq: 2, At: 45}}, 3},
		{"ties within a call go to the lowest choice", []Call{
			call(1, base, choiceN(1, x(50, 10)), choiceN(0, x(50, 10))),
			call(3, cat(base, x(50, 5), x(300, 4)), stop(x(200, 1))),
		}, []Drift{{Seq: 3, ParentSeq: 1, ParentChoice: 0, At: 45}}, 3},
		{"the longest shared prefix wins over a later call", []Call{
			call(1, base, stop(x(50, 10))),
			call(2, base, stop(cat(x(50, 3), x(70, 7)))),
			call(3, cat(base, x(50, 8), x(300, 4)), stop(x(200, 1))),
		}, []Drift{{Seq: 3, ParentSeq: 1, At: 48}}, 3},
		{"a short context branching off earlier qualifies when the deeper one is too long", []Call{
			call(1, x(0, 15), stop(x(500, 5))),  // C = 20 tokens
			call(2, x(0, 30), stop(x(600, 70))), // shares 15 of call 1's 20: drift
			// shares 30 of call 2's 100 (too little), 15 of call 1's 20
			call(3, cat(x(0, 30), x(900, 5)), stop(x(1, 1))),
		}, []Drift{{Seq: 2, ParentSeq: 1, At: 15}, {Seq: 3, ParentSeq: 1, At: 15}}, 3},
		{"a sub-agent sharing only the system header is not drift", []Call{
			call(1, toolP1, stop(toolR1)),
			call(2, ids(imStart, 8948, nl, 40, imEnd, nl), stop(ids(87, imEnd))),
		}, nil, 2},
		{"one entry per drifted call, each with its own candidate", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, cat(chatP1, chatR1[8:], chatNextUser), stop(chatR1)),
			call(3, cat(chatP1, chatR1[8:], chatNextUser, chatR1[8:], chatNextUser), stop(chatR1)),
		}, []Drift{{Seq: 2, ParentSeq: 1, At: 26}, {Seq: 3, ParentSeq: 2, At: 26 + 7 + 16}}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Build(tc.calls)
			var got []Drift
			for _, d := range f.Drift {
				got = append(got, Drift{Seq: d.Seq, ParentSeq: d.ParentSeq, ParentChoice: d.ParentChoice, At: d.At})
			}
			if !slices.EqualFunc(got, tc.want, func(a, b Drift) bool { return driftEqual(a, b) }) {
				t.Errorf("drift = %+v, want %+v", got, tc.want)
			}
			if len(f.Trajectories) != tc.wantRoots {
				t.Errorf("%d trajectories, want %d", len(f.Trajectories), tc.wantRoots)
			}
		})
	}
}

func TestDiagnoseBoundsDecoding(t *testing.T) {
	long := repeat(fillerTool, 5000)
	r1 := cat(toolThink, repeat(fillerTool, 3000), toolCallSpaced)
	p2 := cat(long, toolCallSpaced, toolO2) // reasoning dropped far from the ends
	calls := []Call{call(1, long, stop(r1)), call(2, p2, stop(toolR2))}
	f := Build(calls)
	if len(f.Drift) != 1 {
		t.Fatalf("drift = %+v", f.Drift)
	}
	most := 0
	dec := func(ctx context.Context, ids []int64) (string, bool) {
		most = max(most, len(ids))
		return qwenDecoder(ctx, ids)
	}
	Diagnose(context.Background(), &f, calls, dec)
	if most > maxDecode+retokSlack {
		t.Errorf("decoded %d tokens at once", most)
	}
	if f.Drift[0].Cause != CauseThinkStripped {
		t.Errorf("cause = %s", f.Drift[0].Cause)
	}
}

func TestDiagnoseNoDecoder(t *testing.T) {
	for _, tc := range driftCases() {
		calls := tc.calls()
		f := Build(calls)
		Diagnose(context.Background(), &f, calls, nil)
		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		g := Build(calls)
		Diagnose(cancelled, &g, calls, func(context.Context, []int64) (string, bool) {
			t.Fatal("decoder called with a done context")
			return "", false
		})
		for _, d := range []Drift{f.Drift[0], g.Drift[0]} {
			if d.Cause != tc.structural || d.ExpectedText != nil || d.GotText != nil {
				t.Errorf("%s: %+v, want structural cause %s", tc.name, d, tc.structural)
			}
		}
	}
	Diagnose(context.Background(), nil, nil, qwenDecoder) // no forest: no panic
}
