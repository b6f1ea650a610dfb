// Package trajectory merges the calls of one attempt into token trajectories (the
// forest of DESIGN §9) and diagnoses retokenization drift.
//
// The package is pure: it holds no state, performs no I/O and imports nothing from
// this module. Build is deterministic for a given set of calls (in any order), and
// its output never aliases the input slices.
//
// # Merge rule
//
// A node is one choice of one usable call. The context of node (A, c) is
// A.Prompt ++ A.Choices[c].TokenIDs. Call B (every choice of B) extends node (A, c)
// when that context is a prefix of B.Prompt; an equal prompt is allowed (an empty
// observation). B's parent is the earlier node (smaller Seq) with the longest such
// context; ties go to the latest Seq, then to the lowest choice index. Usable calls
// without a parent are roots. Every root-to-leaf chain is one trajectory: a node
// with two children appears in both chains, and each choice of an n > 1 call is its
// own leaf or branch. A call whose prompt equals an earlier call's prompt (a retry)
// gets the same parent as that call, so it is a sibling (or a second root), with a
// trajectory of its own. Trajectories are ordered by their leaf (Seq, choice index).
//
// # Drift
//
// A root B is a drifted continuation when some earlier node's context C shares
// with B.Prompt a common prefix of lcp tokens with 2*lcp >= len(C) (at least half
// of C, rounding up) and B.Prompt goes on past it (len(B.Prompt) > lcp). A prompt
// that lies wholly inside an earlier context (a retry, a resample) is never drift.
// The candidate parent is the node with the longest lcp; ties go to the latest
// Seq, then to the lowest choice index. Build gives each drift entry a structural
// cause; Diagnose refines it with decoded text.
//
// Build runs in O(total tokens + calls × nodes): contexts are kept in a radix trie
// whose edges point into the input slices, so each prompt is walked once.
package trajectory

import "context"

// Call is one recorded model call of an attempt, reduced to what the merge needs.
type Call struct {
	Seq              uint64
	Usable           bool    // succeeded with valid token IDs; only usable calls take part
	Prompt           []int64 // prompt token IDs
	Choices          []Choice
	PolicyVersion    string
	PolicyVersionEnd string
}

// Choice is one sampled completion of a call.
type Choice struct {
	Index        int
	TokenIDs     []int64
	Logprobs     []float64 // nil when none were recorded
	FinishReason string
}

// Turn is the sampled span of one call of a trajectory, as offsets into
// Trajectory.ResponseIDs.
type Turn struct {
	Seq    uint64
	Choice int
	Start  int
	End    int
}

// Trajectory is one root-to-leaf chain of the forest, flattened for a trainer.
type Trajectory struct {
	Index            int
	SequenceIDs      []uint64  // root to leaf
	ChoiceIndex      int       // the leaf call's choice
	PromptIDs        []int64   // the root call's prompt
	ResponseIDs      []int64   // everything after it: sampled and inserted (observation) tokens
	ResponseMask     []int     // 1 sampled, 0 inserted
	ResponseLogprobs []float64 // as recorded; 0 where none were recorded and for inserted tokens
	Turns            []Turn
	FinishReason     string   // the leaf's
	PolicyVersions   []string // distinct, in chain order; empty ones skipped
}

// Cause names why a continuation drifted from the tokens the model sampled.
type Cause string

// The causes of drift (DESIGN §9).
const (
	CauseThinkStripped        Cause = "think_stripped"
	CauseToolCallReserialized Cause = "tool_call_reserialized"
	CauseEOSRerendered        Cause = "eos_rerendered"
	CauseRetokenized          Cause = "retokenized"
	CauseOther                Cause = "other"
)

// driftWindow is how many tokens Drift shows on each side of the divergence.
const driftWindow = 8

// Drift describes a root call whose prompt was meant to continue an earlier
// context but does not contain the tokens the model sampled.
type Drift struct {
	Seq          uint64 // the drifted call
	ParentSeq    uint64 // candidate parent (longest shared prefix, ties to the latest)
	ParentChoice int
	At           int // index of the first differing token
	// WindowStart = max(0, At-8); Expected = context[WindowStart:min(len, At+8)],
	// Got = prompt[WindowStart:min(len, At+8)].
	WindowStart           int
	Expected, Got         []int64
	ExpectedText, GotText *string // nil until Diagnose decodes them (nil stays when decoding fails)
	Cause                 Cause
}

// Forest is the merge result of one attempt.
type Forest struct {
	Trajectories []Trajectory
	Drift        []Drift
}

// Decoder turns token IDs into text (the upstream's /detokenize, with special
// tokens kept); ok=false when it cannot.
type Decoder func(ctx context.Context, ids []int64) (text string, ok bool)
