package rollout

import (
	"reflect"
	"testing"
)

// A reward keeps Agent Lightning's rule when the turn it followed is not a
// triplet, but says which unusable calls it was moved past.
func TestMatchRewardsPastUnusable(t *testing.T) {
	ok := func(seq uint64) Call { return Call{Seq: seq, Usable: true} }
	// Cancelled, errored and invalid calls all reach the matcher as
	// unusable; the names say which turn of an agent each case models.
	bad := func(seq uint64) Call { return Call{Seq: seq} }
	type want struct {
		call uint64
		past []uint64
	}
	tests := []struct {
		name    string
		calls   []Call
		rewards []Reward
		want    map[uint64]want // reward seq → where it went
	}{
		{"last turn cancelled", []Call{ok(1), ok(2), bad(3)}, []Reward{{Seq: 4, Value: 1}},
			map[uint64]want{4: {2, []uint64{3}}}},
		{"last turn errored", []Call{ok(1), bad(2)}, []Reward{{Seq: 3, Value: 1}},
			map[uint64]want{3: {1, []uint64{2}}}},
		{"last turns invalid, unsorted", []Call{bad(4), ok(1), bad(3)}, []Reward{{Seq: 5, Value: 1}},
			map[uint64]want{5: {1, []uint64{3, 4}}}},
		{"last turn usable", []Call{bad(1), ok(2)}, []Reward{{Seq: 3, Value: 1}},
			map[uint64]want{3: {2, nil}}},
		{"unusable call before the matched one is not skipped", []Call{ok(1), bad(2), ok(3)}, []Reward{{Seq: 4, Value: 1}},
			map[uint64]want{4: {3, nil}}},
		{"two rewards, one per turn", []Call{ok(1), bad(2), ok(4), bad(5)}, []Reward{{Seq: 3, Value: 1}, {Seq: 6, Value: 2}},
			map[uint64]want{3: {1, []uint64{2}}, 6: {4, []uint64{5}}}},
		{"two rewards after a cancelled turn", []Call{ok(1), ok(2), bad(3)}, []Reward{{Seq: 5, Value: 2}, {Seq: 4, Value: 1}},
			map[uint64]want{4: {2, []uint64{3}}, 5: {1, []uint64{3}}}},
		{"reward before any call", []Call{bad(2), ok(3)}, []Reward{{Seq: 1, Value: 1}},
			map[uint64]want{}},
		{"reward after only unusable calls", []Call{bad(1), bad(2)}, []Reward{{Seq: 3, Value: 1}},
			map[uint64]want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[uint64]want{}
			for seq, m := range MatchRewards(tt.calls, tt.rewards) {
				got[m.Reward.Seq] = want{seq, m.Past}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// Triplets carry where their reward came from; a reward that matched the
// turn right before it carries no matched_past.
func TestTripletsMatchedPast(t *testing.T) {
	ch := []Choice{{Index: 0, TokenIDs: []int64{1}}, {Index: 1, TokenIDs: []int64{2}}}
	calls := []Call{
		{Seq: 1, Usable: true, Choices: ch[:1]},
		{Seq: 2, Usable: true, Choices: ch},
		{Seq: 3, Choices: ch[:1]}, // cancelled: no triplet
		{Seq: 5, Usable: true, Choices: ch[:1]},
	}
	got := Triplets(calls, []Reward{{Seq: 4, Value: 1}, {Seq: 6, Value: 2}})
	var past [][]uint64
	var seqs []uint64
	for _, tr := range got {
		seqs = append(seqs, tr.Seq)
		past = append(past, tr.MatchedPast)
	}
	if want := []uint64{1, 2, 2, 5}; !reflect.DeepEqual(seqs, want) {
		t.Fatalf("triplet seqs %v, want %v", seqs, want)
	}
	if want := [][]uint64{nil, {3}, {3}, nil}; !reflect.DeepEqual(past, want) {
		t.Errorf("matched_past %v, want %v", past, want)
	}
	if got[0].Reward != nil || *got[1].Reward != 1 || *got[3].Reward != 2 {
		t.Errorf("rewards moved: %+v", got)
	}
}

// Targeted rewards go to the call (or the choice) they name; the rule then
// passes over that call.
func TestTargetedRewards(t *testing.T) {
	two := []Choice{{Index: 0, TokenIDs: []int64{1}}, {Index: 1, TokenIDs: []int64{2}}}
	calls := []Call{{Seq: 1, Usable: true, Choices: two[:1]}, {Seq: 2, Usable: true, Choices: two}, {Seq: 3, Choices: two[:1]}}
	tests := []struct {
		name    string
		rewards []Reward
		want    map[[2]int]float64 // (seq, choice) → reward; absent: none
	}{
		{"one reward per choice", []Reward{
			{Seq: 4, Value: 1, TargetSeq: 2, TargetChoice: 0},
			{Seq: 5, Value: 0.5, TargetSeq: 2, TargetChoice: 1},
		}, map[[2]int]float64{{2, 0}: 1, {2, 1}: 0.5}},
		{"untargeted reward skips a call with a targeted one", []Reward{
			{Seq: 4, Value: 1, TargetSeq: 2, TargetChoice: 1},
			{Seq: 5, Value: 7},
		}, map[[2]int]float64{{2, 1}: 1, {1, 0}: 7}},
		{"whole-call target and a choice override", []Reward{
			{Seq: 4, Value: 2, TargetSeq: 2, TargetChoice: -1},
			{Seq: 5, Value: 3, TargetSeq: 2, TargetChoice: 1},
		}, map[[2]int]float64{{2, 0}: 2, {2, 1}: 3}},
		{"a later reward for the same target replaces it", []Reward{
			{Seq: 5, Value: 9, TargetSeq: 1, TargetChoice: -1},
			{Seq: 4, Value: 8, TargetSeq: 1, TargetChoice: -1},
		}, map[[2]int]float64{{1, 0}: 9}},
		{"target an unusable or unknown call: nothing", []Reward{
			{Seq: 4, Value: 1, TargetSeq: 3, TargetChoice: -1},
			{Seq: 5, Value: 1, TargetSeq: 42, TargetChoice: 0},
		}, map[[2]int]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := map[[2]int]float64{}
			for _, tr := range Triplets(calls, tt.rewards) {
				if tr.Reward != nil {
					got[[2]int{int(tr.Seq), tr.ChoiceIndex}] = *tr.Reward
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
