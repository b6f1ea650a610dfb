package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
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

// trainerStats is what the summary reports.
type trainerStats struct {
	calls, invalidCalls, triplets int
	tokensIn, tokensOut           int
	first                         []trainingRow // the first rollout's triplets, to show
}

// readTriplets pulls each rollout's latest attempt from tokentap, writes
// its triplets (one per call) as JSONL, and counts.
func readTriplets(ctx context.Context, client *http.Client, sidecar, adminToken string, rollouts []string, tripletsPath string) (trainerStats, error) {
	var st trainerStats
	tf, err := os.Create(tripletsPath)
	if err != nil {
		return st, err
	}
	defer tf.Close()
	tw := bufio.NewWriter(tf)
	tenc := json.NewEncoder(tw)

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
	}
	if err := tw.Flush(); err != nil {
		return st, err
	}
	return st, tf.Close()
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
