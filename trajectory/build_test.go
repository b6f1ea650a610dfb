package trajectory

import (
	"reflect"
	"slices"
	"testing"
)

// chain names one expected trajectory: its calls root to leaf and the leaf choice.
type chain struct {
	seqs   []uint64
	choice int
}

func TestBuildChains(t *testing.T) {
	sideP := ids(imStart, 8948, nl, 40, 374, 264, 10950, imEnd, nl, imStart, 872, nl, 87, imEnd, nl, imStart, 77091, nl)
	chatP2 := cat(chatP1, chatR1, chatNextUser)
	lenR := []int64{16141, 25, 220} // "Answer: " cut by finish_reason=length
	tests := []struct {
		name   string
		calls  []Call
		chains []chain
		drift  int
	}{
		{"one call", []Call{call(1, chatP1, stop(chatR1))}, []chain{{[]uint64{1}, 0}}, 0},
		{"linear chain, longest context wins", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, chatP2, stop(chatR1)),
			call(3, cat(chatP2, chatR1, chatNextUser), stop(chatR1)),
		}, []chain{{[]uint64{1, 2, 3}, 0}}, 0},
		{"empty observation", []Call{
			call(1, chatP1, stop(ids(785, 4226))),
			call(2, cat(chatP1, ids(785, 4226)), stop(ids(374, imEnd))),
		}, []chain{{[]uint64{1, 2}, 0}}, 0},
		{"finish_reason length parent", []Call{
			call(1, chatP1, Choice{TokenIDs: lenR, FinishReason: "length"}),
			call(2, cat(chatP1, lenR, ids(imEnd), chatNextUser), stop(chatR1)),
		}, []chain{{[]uint64{1, 2}, 0}}, 0},
		{"tool-call turns with reasoning echoed", []Call{
			call(1, toolP1, stop(toolR1)),
			call(2, cat(toolP1, toolR1, toolO2), stop(toolR2)),
		}, []chain{{[]uint64{1, 2}, 0}}, 0},
		{"n>1: each choice its own branch, next turn extends one", []Call{
			call(1, chatP1, choiceN(0, chatR1), choiceN(1, ids(785, 4226, 374, 220, 19, 13, imEnd))),
			call(2, cat(chatP1, ids(785, 4226, 374, 220, 19, 13, imEnd), chatNextUser), stop(chatR1)),
		}, []chain{{[]uint64{1}, 0}, {[]uint64{1, 2}, 0}}, 0},
		{"interleaved side call is its own root, not drift", []Call{
			call(1, toolP1, stop(toolR1)),
			call(2, sideP, stop(ids(87, imEnd))),
			call(3, cat(toolP1, toolR1, toolO2), stop(toolR2)),
		}, []chain{{[]uint64{2}, 0}, {[]uint64{1, 3}, 0}}, 0},
		{"retried call is a sibling", []Call{
			call(1, toolP1, stop(toolR1)),
			call(2, cat(toolP1, toolR1, toolO2), stop(toolR2)),
			call(3, cat(toolP1, toolR1, toolO2), stop(toolR2[:4])),
		}, []chain{{[]uint64{1, 2}, 0}, {[]uint64{1, 3}, 0}}, 0},
		{"retried root is a second root", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, chatP1, stop(chatR1[:5])),
		}, []chain{{[]uint64{1}, 0}, {[]uint64{2}, 0}}, 0},
		{"node with two children is in both chains", []Call{
			call(1, toolP1, stop(toolR1)),
			call(2, cat(toolP1, toolR1, toolO2), stop(toolR2)),
			call(3, cat(toolP1, toolR1, ids(nl, imStart, 872, nl, 87, imEnd, nl, imStart, 77091, nl)), stop(toolR2)),
		}, []chain{{[]uint64{1, 2}, 0}, {[]uint64{1, 3}, 0}}, 0},
		{"cancelled and invalid calls take no part", []Call{
			call(1, chatP1, stop(chatR1)),
			{Seq: 2, Usable: false, Prompt: chatP2, Choices: []Choice{stop(chatR1)}},
			call(3, cat(chatP2, chatR1, chatNextUser), stop(chatR1)),
			{Seq: 4, Usable: true, Prompt: chatP1}, // no choices
		}, []chain{{[]uint64{1, 3}, 0}}, 0},
		{"identical contexts: ties go to the latest call", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, chatP1, stop(chatR1)),
			call(3, chatP2, stop(chatR1)),
		}, []chain{{[]uint64{1}, 0}, {[]uint64{2, 3}, 0}}, 0},
		{"identical choices: ties go to the lowest choice index", []Call{
			call(1, chatP1, choiceN(1, chatR1), choiceN(0, chatR1)),
			call(2, chatP2, stop(chatR1)),
		}, []chain{{[]uint64{1}, 1}, {[]uint64{1, 2}, 0}}, 0},
		{"earlier calls only: order is by Seq, not input", []Call{
			call(5, chatP2, stop(chatR1)),
			call(4, chatP1, stop(chatR1)),
		}, []chain{{[]uint64{4, 5}, 0}}, 0},
		{"prompt inside an earlier context is not drift", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, cat(chatP1, chatR1[:10]), stop(chatR1[10:])),
		}, []chain{{[]uint64{1}, 0}, {[]uint64{2}, 0}}, 0},
		{"drifted continuation starts a new trajectory", []Call{
			call(1, chatP1, stop(chatR1)),
			call(2, cat(chatP1, chatR1[8:], chatNextUser), stop(chatR1)),
		}, []chain{{[]uint64{1}, 0}, {[]uint64{2}, 0}}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Build(tc.calls)
			var got []chain
			for i, tr := range f.Trajectories {
				if tr.Index != i {
					t.Errorf("trajectory %d has Index %d", i, tr.Index)
				}
				got = append(got, chain{tr.SequenceIDs, tr.ChoiceIndex})
				checkTrajectory(t, tc.calls, tr)
			}
			if !reflect.DeepEqual(got, tc.chains) {
				t.Errorf("chains = %v, want %v", got, tc.chains)
			}
			if len(f.Drift) != tc.drift {
				t.Errorf("drift = %+v, want %d entries", f.Drift, tc.drift)
			}
			rev := slices.Clone(tc.calls)
			slices.Reverse(rev)
			if f2 := Build(rev); !reflect.DeepEqual(f, f2) {
				t.Errorf("Build depends on input order:\n%+v\n%+v", f, f2)
			}
		})
	}
}

// checkTrajectory asserts the invariants every trajectory has: prompt plus
// response spell the leaf's context, each turn's span holds that call's choice
// with its mask and logprobs, and everything outside the turns is inserted.
func checkTrajectory(t *testing.T, calls []Call, tr Trajectory) {
	t.Helper()
	bySeq := map[uint64]Call{}
	for _, c := range calls {
		if c.Usable {
			bySeq[c.Seq] = c
		}
	}
	n := len(tr.ResponseIDs)
	if len(tr.ResponseMask) != n || len(tr.ResponseLogprobs) != n {
		t.Fatalf("lengths: ids %d mask %d logprobs %d", n, len(tr.ResponseMask), len(tr.ResponseLogprobs))
	}
	if len(tr.Turns) != len(tr.SequenceIDs) {
		t.Fatalf("%d turns for %d calls", len(tr.Turns), len(tr.SequenceIDs))
	}
	sampled := make([]bool, n)
	for k, turn := range tr.Turns {
		c := bySeq[turn.Seq]
		if turn.Seq != tr.SequenceIDs[k] {
			t.Errorf("turn %d seq %d, chain has %d", k, turn.Seq, tr.SequenceIDs[k])
		}
		j := choicePos(&c, turn.Choice)
		ch := c.Choices[j]
		if !slices.Equal(tr.ResponseIDs[turn.Start:turn.End], ch.TokenIDs) {
			t.Errorf("turn %d span %v != choice %v", k, tr.ResponseIDs[turn.Start:turn.End], ch.TokenIDs)
		}
		// The prompt of this call is everything before its span.
		if !slices.Equal(cat(tr.PromptIDs, tr.ResponseIDs[:turn.Start]), c.Prompt) {
			t.Errorf("turn %d: prompt+response before it is not call %d's prompt", k, c.Seq)
		}
		for i := turn.Start; i < turn.End; i++ {
			sampled[i] = true
			want := 0.0
			if len(ch.Logprobs) == len(ch.TokenIDs) {
				want = ch.Logprobs[i-turn.Start]
			}
			if tr.ResponseLogprobs[i] != want {
				t.Errorf("logprob %d = %v, want %v", i, tr.ResponseLogprobs[i], want)
			}
		}
	}
	if last := tr.Turns[len(tr.Turns)-1]; last.End != n {
		t.Errorf("leaf turn ends at %d, response has %d", last.End, n)
	}
	for i := range n {
		want := 0
		if sampled[i] {
			want = 1
		}
		if tr.ResponseMask[i] != want || (!sampled[i] && tr.ResponseLogprobs[i] != 0) {
			t.Errorf("token %d: mask %d logprob %v, sampled=%v", i, tr.ResponseMask[i], tr.ResponseLogprobs[i], sampled[i])
		}
	}
}

// TestBuildDesignExample is the trajectories view of DESIGN §9, field by field.
func TestBuildDesignExample(t *testing.T) {
	p1 := ids(151644, 8948, 198, 2610, 151645, 198, 151644, 872, 198, 3838, 151645, 198, 151644, 77091, 198)
	r1 := ids(40, 1079, 151645)
	obs := ids(198, 151644, 872, 198, 3838, 151645, 198, 151644, 77091, 198)
	calls := []Call{
		{Seq: 1, Usable: true, Prompt: p1, PolicyVersion: "step-12", PolicyVersionEnd: "step-12",
			Choices: []Choice{{TokenIDs: r1, Logprobs: []float64{-0.1, -0.02, -0.0001}, FinishReason: "stop"}}},
		{Seq: 2, Usable: true, Prompt: cat(p1, r1, obs), PolicyVersion: "step-12",
			Choices: []Choice{{TokenIDs: ids(17, 151645), Logprobs: []float64{-0.3, -0.01}, FinishReason: "stop"}}},
	}
	want := Trajectory{
		Index:            0,
		SequenceIDs:      []uint64{1, 2},
		ChoiceIndex:      0,
		PromptIDs:        p1,
		ResponseIDs:      ids(40, 1079, 151645, 198, 151644, 872, 198, 3838, 151645, 198, 151644, 77091, 198, 17, 151645),
		ResponseMask:     []int{1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1},
		ResponseLogprobs: []float64{-0.1, -0.02, -0.0001, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -0.3, -0.01},
		Turns:            []Turn{{Seq: 1, Choice: 0, Start: 0, End: 3}, {Seq: 2, Choice: 0, Start: 13, End: 15}},
		FinishReason:     "stop",
		PolicyVersions:   []string{"step-12"},
	}
	f := Build(calls)
	if len(f.Trajectories) != 1 || len(f.Drift) != 0 {
		t.Fatalf("forest = %+v", f)
	}
	if !reflect.DeepEqual(f.Trajectories[0], want) {
		t.Errorf("got  %+v\nwant %+v", f.Trajectories[0], want)
	}
	// The output owns its slices.
	calls[0].Prompt[0] = -1
	calls[1].Choices[0].TokenIDs[0] = -1
	if f.Trajectories[0].PromptIDs[0] != 151644 || f.Trajectories[0].ResponseIDs[13] != 17 {
		t.Error("trajectory aliases the input")
	}
}

func TestBuildFields(t *testing.T) {
	lenR := ids(16141, 25, 220)
	calls := []Call{
		{Seq: 1, Usable: true, Prompt: chatP1, PolicyVersion: "s1", PolicyVersionEnd: "s1",
			Choices: []Choice{{TokenIDs: chatR1, FinishReason: "stop"}}}, // logprobs nil
		{Seq: 2, Usable: true, Prompt: cat(chatP1, chatR1, chatNextUser), PolicyVersion: "s1", PolicyVersionEnd: "s2",
			Choices: []Choice{{TokenIDs: lenR, Logprobs: []float64{-1, -2}, FinishReason: "length"}}}, // wrong length
		{Seq: 3, Usable: true, Prompt: cat(chatP1, chatR1, chatNextUser, lenR, ids(imEnd), chatNextUser), PolicyVersionEnd: "s3",
			Choices: []Choice{{Index: 0, TokenIDs: ids(19, imEnd), Logprobs: []float64{-0.5, -0.25}, FinishReason: "stop"}}},
	}
	f := Build(calls)
	if len(f.Trajectories) != 1 {
		t.Fatalf("trajectories = %+v", f.Trajectories)
	}
	tr := f.Trajectories[0]
	checkTrajectory(t, calls, tr)
	if want := []string{"s1", "s2", "s3"}; !slices.Equal(tr.PolicyVersions, want) {
		t.Errorf("policy versions = %v, want %v", tr.PolicyVersions, want)
	}
	if tr.FinishReason != "stop" {
		t.Errorf("finish reason = %q", tr.FinishReason)
	}
	wantTurns := []Turn{{1, 0, 0, 15}, {2, 0, 31, 34}, {3, 0, 51, 53}}
	if !reflect.DeepEqual(tr.Turns, wantTurns) {
		t.Errorf("turns = %v, want %v", tr.Turns, wantTurns)
	}
	// EOS is sampled (mask 1); the template's \n after it is inserted (mask 0).
	if tr.ResponseIDs[14] != imEnd || tr.ResponseMask[14] != 1 || tr.ResponseIDs[15] != nl || tr.ResponseMask[15] != 0 {
		t.Errorf("EOS boundary: ids %v mask %v", tr.ResponseIDs[13:17], tr.ResponseMask[13:17])
	}
	for i := range 34 {
		if tr.ResponseLogprobs[i] != 0 {
			t.Errorf("logprob %d = %v, want 0 (nil or wrong-length logprobs)", i, tr.ResponseLogprobs[i])
		}
	}
	if got := tr.ResponseLogprobs[51:]; !slices.Equal(got, []float64{-0.5, -0.25}) {
		t.Errorf("leaf logprobs = %v", got)
	}
}

func TestBuildToolObservation(t *testing.T) {
	calls := []Call{call(1, toolP1, stop(toolR1)), call(2, cat(toolP1, toolR1, toolO2), stop(toolR2))}
	tr := Build(calls).Trajectories[0]
	obs := tr.ResponseIDs[tr.Turns[0].End:tr.Turns[1].Start]
	if len(obs) != 18 || obs[0] != nl || !slices.Equal(obs, toolO2) {
		t.Errorf("observation = %v, want the 18 tokens of §3.3's O2", obs)
	}
	if tr.Turns[1].Start != 45 {
		t.Errorf("second turn starts at %d, want 27+18", tr.Turns[1].Start)
	}
}

func TestBuildEmpty(t *testing.T) {
	f := Build(nil)
	if len(f.Trajectories) != 0 || len(f.Drift) != 0 {
		t.Errorf("Build(nil) = %+v", f)
	}
	f = Build([]Call{{Seq: 1, Prompt: chatP1, Choices: []Choice{stop(chatR1)}}})
	if len(f.Trajectories) != 0 {
		t.Errorf("unusable only: %+v", f)
	}
}
