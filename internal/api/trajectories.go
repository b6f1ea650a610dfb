package api

import (
	"context"
	"net/http"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/trajectory"
)

// trajectoriesView is the trajectories view of one attempt (DESIGN §9).
type trajectoriesView struct {
	RolloutID    string           `json:"rollout_id"`
	AttemptID    string           `json:"attempt_id"`
	Complete     bool             `json:"complete"`
	InFlight     int              `json:"in_flight"`
	Trajectories []trajectoryView `json:"trajectories"`
	Drift        []driftView      `json:"drift"`
	// Cursor, in the feed only, is the feed cursor just past this attempt:
	// resuming with it skips this attempt and nothing after it.
	Cursor string `json:"cursor,omitempty"`
}

type trajectoryView struct {
	Index            int        `json:"index"`
	SequenceIDs      []uint64   `json:"sequence_ids"`
	ChoiceIndex      int        `json:"choice_index"`
	PromptIDs        []int64    `json:"prompt_ids"`
	ResponseIDs      []int64    `json:"response_ids"`
	ResponseMask     []int      `json:"response_mask"`
	ResponseLogprobs []float64  `json:"response_logprobs"`
	Turns            []turnView `json:"turns"`
	Reward           *float64   `json:"reward"`
	FinishReason     string     `json:"finish_reason"`
	PolicyVersions   []string   `json:"policy_versions"`
}

type turnView struct {
	SequenceID  uint64 `json:"sequence_id"`
	ChoiceIndex int    `json:"choice_index"`
	Start       int    `json:"start"`
	End         int    `json:"end"`
}

type driftView struct {
	SequenceID        uint64  `json:"sequence_id"`
	ParentSequenceID  uint64  `json:"parent_sequence_id"`
	ParentChoiceIndex int     `json:"parent_choice_index"`
	At                int     `json:"at"`
	WindowStart       int     `json:"window_start"`
	Expected          []int64 `json:"expected"`
	Got               []int64 `json:"got"`
	ExpectedText      *string `json:"expected_text"`
	GotText           *string `json:"got_text"`
	Cause             string  `json:"cause"`
}

// trajectories serves GET /api/v1/rollouts/{rid}/attempts/{aid}/trajectories.
func (a *API) trajectories(w http.ResponseWriter, r *http.Request) {
	t, d, ok := a.readAttempt(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, a.trajectoriesOf(r.Context(), r.PathValue("rid"), t, d))
}

// trajectoriesOf builds the trajectories view of an attempt from its
// records: the forest, the rewards matched to each chain's last call (and
// choice), and the drift entries with their text from the upstream's
// /detokenize when it answers.
func (a *API) trajectoriesOf(ctx context.Context, rid string, t target, d decoded) trajectoriesView {
	calls := forestCalls(d.calls)
	f := trajectory.Build(calls)
	if len(f.Drift) > 0 {
		var dec trajectory.Decoder = func(context.Context, []int64) (string, bool) { return "", false }
		if a.cfg.Decoder != nil {
			dec = a.cfg.Decoder(rid, modelOfCalls(d.calls))
		}
		trajectory.Diagnose(ctx, &f, calls, dec)
	}
	matched := rollout.MatchRewards(tripletCalls(d.calls), d.rewards)

	out := trajectoriesView{
		RolloutID: rid, AttemptID: t.at.AttemptID, Complete: t.at.Complete, InFlight: t.inFlight,
		Trajectories: make([]trajectoryView, 0, len(f.Trajectories)), Drift: make([]driftView, 0, len(f.Drift)),
	}
	for _, tr := range f.Trajectories {
		v := trajectoryView{
			Index: tr.Index, SequenceIDs: tr.SequenceIDs, ChoiceIndex: tr.ChoiceIndex,
			PromptIDs: nonNil(tr.PromptIDs), ResponseIDs: nonNil(tr.ResponseIDs), ResponseMask: tr.ResponseMask,
			ResponseLogprobs: tr.ResponseLogprobs, Turns: make([]turnView, 0, len(tr.Turns)),
			FinishReason: tr.FinishReason, PolicyVersions: tr.PolicyVersions,
		}
		if v.ResponseMask == nil {
			v.ResponseMask = []int{}
		}
		if v.ResponseLogprobs == nil {
			v.ResponseLogprobs = []float64{}
		}
		if v.PolicyVersions == nil {
			v.PolicyVersions = []string{}
		}
		for _, turn := range tr.Turns {
			v.Turns = append(v.Turns, turnView{SequenceID: turn.Seq, ChoiceIndex: turn.Choice, Start: turn.Start, End: turn.End})
		}
		if n := len(tr.SequenceIDs); n > 0 {
			if rw, ok := matched[tr.SequenceIDs[n-1]].For(tr.ChoiceIndex); ok {
				value := rw.Value
				v.Reward = &value
			}
		}
		out.Trajectories = append(out.Trajectories, v)
	}
	for _, dr := range f.Drift {
		out.Drift = append(out.Drift, driftView{
			SequenceID: dr.Seq, ParentSequenceID: dr.ParentSeq, ParentChoiceIndex: dr.ParentChoice,
			At: dr.At, WindowStart: dr.WindowStart, Expected: nonNil(dr.Expected), Got: nonNil(dr.Got),
			ExpectedText: dr.ExpectedText, GotText: dr.GotText, Cause: string(dr.Cause),
		})
	}
	return out
}

// forestCalls maps recorded calls to the trajectory package's view of
// them. Completions calls with several prompts have no single prompt to
// extend; they take part with their first.
func forestCalls(calls []*exporter.Call) []trajectory.Call {
	out := make([]trajectory.Call, 0, len(calls))
	for _, c := range calls {
		tc := trajectory.Call{
			Seq: c.Seq, Usable: c.Status == exporter.StatusOK && c.Valid,
			Prompt:        c.Response.PromptTokenIDs,
			PolicyVersion: c.PolicyVersion, PolicyVersionEnd: c.PolicyVersionEnd,
		}
		if tc.Prompt == nil && len(c.Response.Prompts) > 0 {
			tc.Prompt = c.Response.Prompts[0]
		}
		for _, ch := range c.Response.Choices {
			if ch.PromptIndex > 0 {
				continue
			}
			tc.Choices = append(tc.Choices, trajectory.Choice{
				Index: ch.Index, TokenIDs: ch.TokenIDs, Logprobs: ch.Logprobs, FinishReason: ch.FinishReason,
			})
		}
		out = append(out, tc)
	}
	return out
}

// modelOfCalls is the model that answered an attempt's calls (the first
// that says), which /detokenize takes to pick the tokenizer.
func modelOfCalls(calls []*exporter.Call) string {
	for _, c := range calls {
		if m := modelOf(c); m != "" {
			return m
		}
	}
	return ""
}

func nonNil(ids []int64) []int64 {
	if ids == nil {
		return []int64{}
	}
	return ids
}
