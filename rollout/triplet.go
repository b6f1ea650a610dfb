package rollout

import "sort"

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
}

// Choice is one sampled continuation of a call.
type Choice struct {
	Index          int
	PromptTokenIDs []int64
	TokenIDs       []int64
	Logprobs       []float64 // nil when the call returned none
}

// Reward is a reward recorded in a rollout, ordered with its calls by Seq.
type Reward struct {
	Seq   uint64
	Name  string
	Value float64
}

// Triplet is one training example: a prompt, the sampled response, and the
// reward matched to its call (nil when none matched).
type Triplet struct {
	Seq              uint64
	ChoiceIndex      int
	PromptTokenIDs   []int64
	ResponseTokenIDs []int64
	ResponseLogprobs []float64
	Reward           *float64
	PolicyVersion    string
	PolicyVersionEnd string
}

// MatchRewards applies Agent Lightning's rule: taking rewards in sequence
// order, each goes to the most recent call with a strictly smaller sequence id
// that has no reward yet. Rewards with no such call are dropped. The result
// maps a call's sequence id to its reward. calls need not be sorted.
func MatchRewards(callSeqs []uint64, rewards []Reward) map[uint64]Reward {
	seqs := append([]uint64(nil), callSeqs...)
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	rs := append([]Reward(nil), rewards...)
	sort.SliceStable(rs, func(i, j int) bool { return rs[i].Seq < rs[j].Seq })

	matched := make(map[uint64]Reward, len(rs))
	for _, r := range rs {
		// Highest call seq below the reward's that is still free.
		i := sort.Search(len(seqs), func(i int) bool { return seqs[i] >= r.Seq }) - 1
		for ; i >= 0; i-- {
			if _, taken := matched[seqs[i]]; !taken {
				matched[seqs[i]] = r
				break
			}
		}
	}
	return matched
}

// Triplets turns a rollout attempt's calls and rewards into training
// triplets: one per choice of every usable call, in sequence order, each
// carrying its call's matched reward.
func Triplets(calls []Call, rewards []Reward) []Triplet {
	usable := make([]Call, 0, len(calls))
	seqs := make([]uint64, 0, len(calls))
	for _, c := range calls {
		if c.Usable {
			usable = append(usable, c)
			seqs = append(seqs, c.Seq)
		}
	}
	sort.Slice(usable, func(i, j int) bool { return usable[i].Seq < usable[j].Seq })
	matched := MatchRewards(seqs, rewards)

	var out []Triplet
	for _, c := range usable {
		var reward *float64
		if r, ok := matched[c.Seq]; ok {
			v := r.Value
			reward = &v
		}
		for _, ch := range c.Choices {
			out = append(out, Triplet{
				Seq:              c.Seq,
				ChoiceIndex:      ch.Index,
				PromptTokenIDs:   ch.PromptTokenIDs,
				ResponseTokenIDs: ch.TokenIDs,
				ResponseLogprobs: ch.Logprobs,
				Reward:           reward,
				PolicyVersion:    c.PolicyVersion,
				PolicyVersionEnd: c.PolicyVersionEnd,
			})
		}
	}
	return out
}
