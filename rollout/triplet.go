package rollout

import (
	"slices"
	"sort"
)

// Call is one recorded LLM call as triplet assembly sees it. Only calls that
// succeeded and whose token IDs passed the fidelity check become triplets and
// take part in reward matching.
type Call struct {
	Seq     uint64
	Usable  bool // succeeded with valid token IDs
	Choices []Choice
	// PolicyVersion and PolicyVersionEnd are the weights' version when the
	// call was sent and, if different, when it finished.
	PolicyVersion, PolicyVersionEnd string
	Model                           string // the model that answered
}

// Choice is one sampled continuation of a call.
type Choice struct {
	Index          int
	PromptTokenIDs []int64
	TokenIDs       []int64
	Logprobs       []float64 // nil when the call returned none
	FinishReason   string
}

// Reward is a reward recorded in a rollout, ordered with its calls by Seq.
type Reward struct {
	Seq   uint64
	Name  string
	Value float64
	// TargetSeq, when not 0, names the call the reward is for (the agent
	// posted "sequence_id"): it goes there instead of by the matching rule.
	// TargetChoice is the choice of that call it scores, or -1 for all.
	TargetSeq    uint64
	TargetChoice int
}

// Targeted reports whether the agent named the call the reward is for.
func (r Reward) Targeted() bool { return r.TargetSeq != 0 }

// Triplet is one training example: a prompt, the sampled response, and the
// reward matched to its call (nil when none matched).
type Triplet struct {
	Seq              uint64
	ChoiceIndex      int
	PromptTokenIDs   []int64
	ResponseTokenIDs []int64
	ResponseLogprobs []float64
	Reward           *float64
	// MatchedPast is the matched reward's Match.Past: the unusable calls
	// it was moved past to reach this one.
	MatchedPast      []uint64
	PolicyVersion    string
	PolicyVersionEnd string
	FinishReason     string
	Model            string
}

// Match is what rewards one call took.
type Match struct {
	// Reward is the reward of the whole call (every choice), valid when
	// Whole is set.
	Reward Reward
	Whole  bool
	// Past lists, in sequence order, the unusable calls (cancelled, failed,
	// or with invalid token IDs) between the matched call and the reward:
	// the turns the reward would have gone to had they been usable. Nil
	// when the reward matched the call right before it, or was targeted.
	Past []uint64
	// Choices holds the rewards targeted at one choice, by choice index.
	Choices map[int]Reward
}

// For returns the reward of one choice of the call: the one targeted at
// that choice, else the call's.
func (m Match) For(choice int) (Reward, bool) {
	if r, ok := m.Choices[choice]; ok {
		return r, true
	}
	return m.Reward, m.Whole
}

// MatchRewards applies Agent Lightning's rule: taking rewards in sequence
// order, each goes to the most recent usable call with a strictly smaller
// sequence id that has no reward yet. Rewards with no such call are dropped.
// The result maps a call's sequence id to its match. Unusable calls take no
// reward: one the rule moved past is named in the match's Past, because a
// reward meant for a turn that failed now scores an earlier turn, and a
// trainer may prefer to drop it. calls need not be sorted.
//
// A targeted reward (TargetSeq set) goes to the call it names, whole or
// to one choice, whatever the rule would pick, and a later one for the same
// target replaces an earlier one; the rule then passes over calls that
// already took a targeted reward. A target that is not a usable call of
// calls takes nothing.
func MatchRewards(calls []Call, rewards []Reward) map[uint64]Match {
	var seqs, unusable []uint64
	for _, c := range calls {
		if c.Usable {
			seqs = append(seqs, c.Seq)
		} else {
			unusable = append(unusable, c.Seq)
		}
	}
	slices.Sort(seqs)
	slices.Sort(unusable)
	rs := append([]Reward(nil), rewards...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Seq < rs[j].Seq })

	matched := make(map[uint64]Match, len(rs))
	for _, r := range rs {
		if !r.Targeted() {
			continue
		}
		if _, ok := slices.BinarySearch(seqs, r.TargetSeq); !ok {
			continue
		}
		m := matched[r.TargetSeq]
		if r.TargetChoice < 0 {
			m.Reward, m.Whole = r, true
		} else {
			if m.Choices == nil {
				m.Choices = map[int]Reward{}
			}
			m.Choices[r.TargetChoice] = r
		}
		matched[r.TargetSeq] = m
	}
	for _, r := range rs {
		if r.Targeted() {
			continue
		}
		// Highest call seq below the reward's that is still free.
		i := sort.Search(len(seqs), func(i int) bool { return seqs[i] >= r.Seq }) - 1
		for ; i >= 0; i-- {
			if _, taken := matched[seqs[i]]; !taken {
				matched[seqs[i]] = Match{Reward: r, Whole: true, Past: between(unusable, seqs[i], r.Seq)}
				break
			}
		}
	}
	return matched
}

// between returns the ids of sorted strictly between lo and hi, nil if none.
func between(sorted []uint64, lo, hi uint64) []uint64 {
	i := sort.Search(len(sorted), func(i int) bool { return sorted[i] > lo })
	j := sort.Search(len(sorted), func(i int) bool { return sorted[i] >= hi })
	if i >= j {
		return nil
	}
	return slices.Clone(sorted[i:j])
}

// Triplets turns a rollout attempt's calls and rewards into training
// triplets: one per choice of every usable call, in sequence order, each
// carrying its call's matched reward.
func Triplets(calls []Call, rewards []Reward) []Triplet {
	usable := make([]Call, 0, len(calls))
	for _, c := range calls {
		if c.Usable {
			usable = append(usable, c)
		}
	}
	sort.Slice(usable, func(i, j int) bool { return usable[i].Seq < usable[j].Seq })
	matched := MatchRewards(calls, rewards)

	var out []Triplet
	for _, c := range usable {
		m := matched[c.Seq]
		for _, ch := range c.Choices {
			var reward *float64
			if r, ok := m.For(ch.Index); ok {
				v := r.Value
				reward = &v
			}
			out = append(out, Triplet{
				Seq:              c.Seq,
				ChoiceIndex:      ch.Index,
				PromptTokenIDs:   ch.PromptTokenIDs,
				ResponseTokenIDs: ch.TokenIDs,
				ResponseLogprobs: ch.Logprobs,
				Reward:           reward,
				MatchedPast:      m.Past,
				PolicyVersion:    c.PolicyVersion,
				PolicyVersionEnd: c.PolicyVersionEnd,
				FinishReason:     ch.FinishReason,
				Model:            c.Model,
			})
		}
	}
	return out
}
