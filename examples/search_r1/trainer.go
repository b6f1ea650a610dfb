package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
)

// What a trainer reads from tokentap's API (see the README's views).
type tripletsView struct {
	RolloutID string `json:"rollout_id"`
	AttemptID string `json:"attempt_id"`
	Complete  bool   `json:"complete"`
	Triplets  []struct {
		SequenceID       uint64    `json:"sequence_id"`
		ChoiceIndex      int       `json:"choice_index"`
		PromptTokenIDs   []int64   `json:"prompt_token_ids"`
		ResponseTokenIDs []int64   `json:"response_token_ids"`
		ResponseLogprobs []float64 `json:"response_logprobs"`
		Reward           *float64  `json:"reward"`
	} `json:"triplets"`
}

type callsView struct {
	Calls []struct {
		SequenceID    uint64 `json:"sequence_id"`
		Status        string `json:"status"`
		TokenIDsValid bool   `json:"token_ids_valid"`
	} `json:"calls"`
}

// trainingRow is one line of the triplets JSONL: what a trainer ingests.
type trainingRow struct {
	RolloutID        string    `json:"rollout_id"`
	SequenceID       uint64    `json:"sequence_id"`
	PromptTokenIDs   []int64   `json:"prompt_token_ids"`
	ResponseTokenIDs []int64   `json:"response_token_ids"`
	Logprobs         []float64 `json:"logprobs"`
	Reward           *float64  `json:"reward"`
}

// trajectory is a rollout's turns merged into one sequence: the first
// prompt, then every response with the environment's tokens between them
// (mask 0: not trained on).
type trajectory struct {
	RolloutID    string    `json:"rollout_id"`
	PromptIDs    []int64   `json:"prompt_ids"`
	ResponseIDs  []int64   `json:"response_ids"`
	ResponseMask []int     `json:"response_mask"`
	Logprobs     []float64 `json:"logprobs"` // 0 on environment tokens
	Reward       float64   `json:"reward"`
	Turns        int       `json:"turns"`
}

// trainerStats is what the summary reports.
type trainerStats struct {
	calls, invalidCalls, triplets int
	tokensIn, tokensOut           int
	merged, unmerged              int
	mergeProblems                 []string
	first                         []trainingRow // the first rollout's triplets, to show
}

// readRollouts pulls each rollout's latest attempt from tokentap, writes
// the triplets and the merged trajectories as JSONL, and counts.
func readRollouts(ctx context.Context, client *http.Client, sidecar, adminToken string, rollouts []string, tripletsPath, trajectoriesPath string) (trainerStats, error) {
	var st trainerStats
	tf, err := os.Create(tripletsPath)
	if err != nil {
		return st, err
	}
	defer tf.Close()
	jf, err := os.Create(trajectoriesPath)
	if err != nil {
		return st, err
	}
	defer jf.Close()
	tw, jw := bufio.NewWriter(tf), bufio.NewWriter(jf)
	tenc, jenc := json.NewEncoder(tw), json.NewEncoder(jw)

	for _, rid := range rollouts {
		var trip tripletsView
		if err := getJSON(ctx, client, sidecar+"/api/v1/rollouts/"+rid+"/attempts/latest/triplets", adminToken, &trip); err != nil {
			return st, err
		}
		var calls callsView
		if err := getJSON(ctx, client, sidecar+"/api/v1/rollouts/"+rid+"/attempts/latest/calls", adminToken, &calls); err != nil {
			return st, err
		}
		st.calls += len(calls.Calls)
		for _, c := range calls.Calls {
			if !c.TokenIDsValid {
				st.invalidCalls++
			}
		}
		rows := make([]trainingRow, 0, len(trip.Triplets))
		for _, t := range trip.Triplets {
			row := trainingRow{RolloutID: rid, SequenceID: t.SequenceID, PromptTokenIDs: t.PromptTokenIDs,
				ResponseTokenIDs: t.ResponseTokenIDs, Logprobs: t.ResponseLogprobs, Reward: t.Reward}
			if err := tenc.Encode(row); err != nil {
				return st, err
			}
			rows = append(rows, row)
			st.triplets++
			st.tokensIn += len(t.PromptTokenIDs)
			st.tokensOut += len(t.ResponseTokenIDs)
		}
		if st.first == nil {
			st.first = rows
		}
		traj, problem := merge(rid, rows)
		if problem != "" {
			st.unmerged++
			st.mergeProblems = append(st.mergeProblems, problem)
			continue
		}
		st.merged++
		if err := jenc.Encode(traj); err != nil {
			return st, err
		}
	}
	if err := tw.Flush(); err != nil {
		return st, err
	}
	return st, jw.Flush()
}

// merge joins a rollout's turns into one trajectory when each turn's prompt
// starts with the previous turn's prompt and response: the chat template
// then only appended the environment's reply (and the end-of-turn tokens).
// When a prompt does not extend the last one (a template that rewrites
// history, or text that re-tokenizes differently) merging would train on
// tokens the model never saw, so the rollout stays as separate triplets and
// the reason is reported.
func merge(rid string, rows []trainingRow) (trajectory, string) {
	t := trajectory{RolloutID: rid}
	if len(rows) == 0 {
		return t, fmt.Sprintf("%s: no usable turns", rid)
	}
	t.PromptIDs = rows[0].PromptTokenIDs
	seen := slices.Clone(rows[0].PromptTokenIDs) // the tokens so far: prompt, responses, environment
	for i, r := range rows {
		if i > 0 {
			if len(r.PromptTokenIDs) < len(seen) || !slices.Equal(r.PromptTokenIDs[:len(seen)], seen) {
				at := 0
				for at < min(len(seen), len(r.PromptTokenIDs)) && seen[at] == r.PromptTokenIDs[at] {
					at++
				}
				return t, fmt.Sprintf("%s: turn %d (sequence %d) does not extend turn %d: its prompt differs at token %d of %d", rid, i+1, r.SequenceID, i, at, len(seen))
			}
			env := r.PromptTokenIDs[len(seen):]
			t.ResponseIDs = append(t.ResponseIDs, env...)
			t.ResponseMask = append(t.ResponseMask, make([]int, len(env))...)
			t.Logprobs = append(t.Logprobs, make([]float64, len(env))...)
			seen = append(seen, env...)
		}
		t.ResponseIDs = append(t.ResponseIDs, r.ResponseTokenIDs...)
		for range r.ResponseTokenIDs {
			t.ResponseMask = append(t.ResponseMask, 1)
		}
		lp := r.Logprobs
		if len(lp) != len(r.ResponseTokenIDs) {
			lp = make([]float64, len(r.ResponseTokenIDs)) // none recorded
		}
		t.Logprobs = append(t.Logprobs, lp...)
		seen = append(seen, r.ResponseTokenIDs...)
		if r.Reward != nil {
			t.Reward = *r.Reward
		}
	}
	t.Turns = len(rows)
	return t, ""
}

func getJSON(ctx context.Context, client *http.Client, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
