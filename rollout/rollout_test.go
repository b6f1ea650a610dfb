package rollout

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path     string
		key      Key
		rest     string
		prefixed bool
		bad      bool
	}{
		{"/rollout/r7/attempt/0/v1/chat/completions", Key{"r7", "0"}, "v1/chat/completions", true, false},
		{"/rollout/ro-4c68a7e686a1/attempt/at-308eb814/v1/completions", Key{"ro-4c68a7e686a1", "at-308eb814"}, "v1/completions", true, false},
		{"/rollout/a.b_c:d-e/attempt/Z9/chat/completions", Key{"a.b_c:d-e", "Z9"}, "chat/completions", true, false},
		{"/rollout/r/attempt/a", Key{"r", "a"}, "", true, false},
		{"/rollout/r/attempt/a/", Key{"r", "a"}, "", true, false},
		{"/rollout/r/attempt/a/reward", Key{"r", "a"}, "reward", true, false},
		{"/v1/chat/completions", Key{}, "", false, false},
		{"/rollouts/r/attempt/0/v1", Key{}, "", false, false},
		{"/rollout/r", Key{}, "", true, true},
		{"/rollout/r/attempts/0/v1", Key{}, "", true, true},
		{"/rollout//attempt/0/v1", Key{}, "", true, true},
		{"/rollout/r/attempt//v1", Key{}, "", true, true},
		{"/rollout/r r/attempt/0/v1", Key{}, "", true, true},
		{"/rollout/r%2F/attempt/0/v1", Key{}, "", true, true},
		{"/rollout/" + strings.Repeat("a", 128) + "/attempt/0/v1", Key{strings.Repeat("a", 128), "0"}, "v1", true, false},
		{"/rollout/" + strings.Repeat("a", 129) + "/attempt/0/v1", Key{}, "", true, true},
		{"/rollout/r/attempt/0/v1/../../admin", Key{}, "", true, true},
		{"/rollout/r/attempt/0/./v1", Key{}, "", true, true},
		{"/rollout/r/attempt/0/v1/..x/ok", Key{"r", "0"}, "v1/..x/ok", true, false},
	}
	for _, tt := range tests {
		key, rest, prefixed, err := ParsePath(tt.path)
		if (err != nil) != tt.bad || prefixed != tt.prefixed {
			t.Errorf("%s: prefixed=%v err=%v", tt.path, prefixed, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Errorf("%s: error %v does not wrap ErrBadKey", tt.path, err)
			}
			continue
		}
		if key != tt.key || rest != tt.rest {
			t.Errorf("%s: got %v %q, want %v %q", tt.path, key, rest, tt.key, tt.rest)
		}
	}
	if err := CheckPath("/v1/../admin"); err == nil {
		t.Error("CheckPath accepted ..")
	}
}

func TestFromHeaders(t *testing.T) {
	tests := []struct {
		rid, aid string
		want     Key
		bad      bool
	}{
		{"", "", Key{}, false},
		{"r1", "2", Key{"r1", "2"}, false},
		{"r1", "", Key{"r1", DefaultAttemptID}, false},
		{"", "2", Key{}, true},
		{"bad id", "0", Key{}, true},
		{"r", "a/b", Key{}, true},
	}
	for _, tt := range tests {
		got, err := FromHeaders(tt.rid, tt.aid)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("FromHeaders(%q, %q) = %v, %v", tt.rid, tt.aid, got, err)
		}
	}
}

// Agent Lightning's tests of LlmProxyTraceToTriplet, ported
// (tests/adapter/test_llm_proxy.py).
func TestMatchRewards(t *testing.T) {
	tests := []struct {
		name    string
		calls   []uint64
		rewards []Reward
		want    map[uint64]float64
	}{
		{"reward goes to the latest prior call", []uint64{1, 4}, []Reward{{Seq: 6, Value: 1}}, map[uint64]float64{4: 1}},
		{"rewards at or before the call are skipped", []uint64{2}, []Reward{{Seq: 1, Value: 9}, {Seq: 2, Value: 8}, {Seq: 3, Value: 3.5}}, map[uint64]float64{2: 3.5}},
		{"several rewards go to the latest unmatched calls", []uint64{2, 4, 6}, []Reward{{Seq: 5, Value: 0.1}, {Seq: 7, Value: 0.2}, {Seq: 8, Value: 0.3}}, map[uint64]float64{2: 0.3, 4: 0.1, 6: 0.2}},
		{"unsorted input", []uint64{6, 2, 4}, []Reward{{Seq: 8, Value: 0.3}, {Seq: 5, Value: 0.1}, {Seq: 7, Value: 0.2}}, map[uint64]float64{2: 0.3, 4: 0.1, 6: 0.2}},
		{"more rewards than calls", []uint64{1}, []Reward{{Seq: 2, Value: 1}, {Seq: 3, Value: 2}}, map[uint64]float64{1: 1}},
		{"no rewards", []uint64{1, 2}, nil, map[uint64]float64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := make([]Call, len(tt.calls))
			for i, seq := range tt.calls {
				calls[i] = Call{Seq: seq, Usable: true}
			}
			got := map[uint64]float64{}
			for seq, m := range MatchRewards(calls, tt.rewards) {
				got[seq] = m.Reward.Value
				if len(m.Past) != 0 {
					t.Errorf("call %d: matched past %v with every call usable", seq, m.Past)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestTriplets(t *testing.T) {
	calls := []Call{
		{Seq: 3, Usable: true, Choices: []Choice{{Index: 0, PromptTokenIDs: []int64{1}, TokenIDs: []int64{2}, Logprobs: []float64{-0.5}}, {Index: 1, PromptTokenIDs: []int64{1}, TokenIDs: []int64{3}}}},
		{Seq: 1, Usable: true, Choices: []Choice{{Index: 0, PromptTokenIDs: []int64{9}, TokenIDs: []int64{8}}}},
		{Seq: 2, Usable: false, Choices: []Choice{{Index: 0, TokenIDs: []int64{7}}}}, // failed: no triplet, takes no reward
	}
	rewards := []Reward{{Seq: 4, Name: "primary", Value: 1}, {Seq: 5, Name: "primary", Value: 0.25}}
	got := Triplets(calls, rewards)
	one, quarter := 1.0, 0.25
	want := []Triplet{
		// The second reward moved past the failed call 2 to reach call 1.
		{Seq: 1, ChoiceIndex: 0, PromptTokenIDs: []int64{9}, ResponseTokenIDs: []int64{8}, Reward: &quarter, MatchedPast: []uint64{2}},
		{Seq: 3, ChoiceIndex: 0, PromptTokenIDs: []int64{1}, ResponseTokenIDs: []int64{2}, ResponseLogprobs: []float64{-0.5}, Reward: &one},
		{Seq: 3, ChoiceIndex: 1, PromptTokenIDs: []int64{1}, ResponseTokenIDs: []int64{3}, Reward: &one},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got := Triplets(nil, rewards); len(got) != 0 {
		t.Errorf("no calls: %+v", got)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/rollout/r/attempt/0/v1/chat/completions", "/rollout//attempt/", "/rollout/a/attempt/b/../..", "/v1/x", "/rollout/\x00/attempt/\xff/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, rest, prefixed, err := ParsePath(path)
		if err != nil || !prefixed {
			return
		}
		if ValidateID("r", key.RolloutID) != nil || ValidateID("a", key.AttemptID) != nil {
			t.Fatalf("accepted invalid key %q from %q", key, path)
		}
		if !strings.HasSuffix(path, rest) {
			t.Fatalf("rest %q is not the tail of %q", rest, path)
		}
		for _, seg := range strings.Split(rest, "/") {
			if seg == ".." || seg == "." {
				t.Fatalf("accepted dot segment in %q", path)
			}
		}
	})
}
