package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"slices"
)

// attemptView is what a trainer reads of one completed attempt in
// tokentap's trajectories feed (see the README's "Trajectories view").
type attemptView struct {
	RolloutID    string       `json:"rollout_id"`
	AttemptID    string       `json:"attempt_id"`
	Trajectories []trajectory `json:"trajectories"`
	Drift        []driftEntry `json:"drift"`
}

// trajectory is one root-to-leaf chain of an attempt's calls, merged by
// tokentap: the root's prompt, then every turn's sampled tokens (mask 1)
// and what the template and environment inserted between them (mask 0).
type trajectory struct {
	Index            int       `json:"index"`
	SequenceIDs      []uint64  `json:"sequence_ids"`
	PromptIDs        []int64   `json:"prompt_ids"`
	ResponseIDs      []int64   `json:"response_ids"`
	ResponseMask     []int     `json:"response_mask"`
	ResponseLogprobs []float64 `json:"response_logprobs"`
	Turns            []struct {
		SequenceID uint64 `json:"sequence_id"`
		Start      int    `json:"start"`
		End        int    `json:"end"`
	} `json:"turns"`
	Reward       *float64 `json:"reward"`
	FinishReason string   `json:"finish_reason"`
}

// driftEntry is a call whose prompt did not contain what the model had
// sampled before it, so it starts a trajectory of its own.
type driftEntry struct {
	SequenceID       uint64  `json:"sequence_id"`
	ParentSequenceID uint64  `json:"parent_sequence_id"`
	At               int     `json:"at"`
	ExpectedText     *string `json:"expected_text"`
	GotText          *string `json:"got_text"`
	Cause            string  `json:"cause"`
}

// trajectoryRow is one line of the trajectories JSONL: one training sample
// in verl's agent-loop terms (mask 1: sampled by the model, train on it).
type trajectoryRow struct {
	RolloutID        string    `json:"rollout_id"`
	AttemptID        string    `json:"attempt_id"`
	Index            int       `json:"index"`
	SequenceIDs      []uint64  `json:"sequence_ids"`
	PromptIDs        []int64   `json:"prompt_ids"`
	ResponseIDs      []int64   `json:"response_ids"`
	ResponseMask     []int     `json:"response_mask"`
	ResponseLogprobs []float64 `json:"response_logprobs"`
	Reward           *float64  `json:"reward"`
	FinishReason     string    `json:"finish_reason"`
	NumTurns         int       `json:"num_turns"`
}

// feedStats is what the summary reports of the feed.
type feedStats struct {
	trajectories, multiTurn int
	drifted                 map[string]int // drifted calls by cause
	drift                   []string       // a few of them, described
	cursor                  string         // where a next run can resume
}

// feedWait is how long one feed request may wait for an attempt to
// complete (tokentap holds it up to 60s).
const feedWait = "30s"

// tailTrajectories follows tokentap's feed of completed attempts from the
// cursor after until it has seen every attempt in want ("rollout/attempt"),
// and writes their trajectories as JSONL. The feed also serves attempts of
// other runs on the same sidecar; those are passed over.
func tailTrajectories(ctx context.Context, client *http.Client, sidecar, adminToken, after string, want map[string]bool, path string) (feedStats, error) {
	st := feedStats{drifted: map[string]int{}, cursor: after}
	f, err := os.Create(path)
	if err != nil {
		return st, err
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	left := maps.Clone(want)
	for len(left) > 0 {
		views, next, err := readFeed(ctx, client, sidecar, adminToken, st.cursor)
		if err != nil {
			return st, err
		}
		for _, v := range views {
			key := v.RolloutID + "/" + v.AttemptID
			if !left[key] {
				continue
			}
			delete(left, key)
			for _, t := range v.Trajectories {
				row := trajectoryRow{RolloutID: v.RolloutID, AttemptID: v.AttemptID, Index: t.Index, SequenceIDs: t.SequenceIDs,
					PromptIDs: t.PromptIDs, ResponseIDs: t.ResponseIDs, ResponseMask: t.ResponseMask, ResponseLogprobs: t.ResponseLogprobs,
					Reward: t.Reward, FinishReason: t.FinishReason, NumTurns: len(t.Turns)}
				if err := enc.Encode(row); err != nil {
					return st, err
				}
				st.trajectories++
				if row.NumTurns > 1 {
					st.multiTurn++
				}
			}
			for _, d := range v.Drift {
				st.drifted[d.Cause]++
				if len(st.drift) < 3 {
					st.drift = append(st.drift, describeDrift(v.RolloutID, d))
				}
			}
		}
		st.cursor = next
	}
	if err := w.Flush(); err != nil {
		return st, err
	}
	return st, f.Close()
}

// readFeed asks for the completed attempts after a cursor, one view per
// line, waiting for one to complete when there are none yet. The next
// cursor comes in X-Next-Cursor; it is only taken once the whole answer
// has been read, so a broken answer is asked for again from the same place.
func readFeed(ctx context.Context, client *http.Client, sidecar, adminToken, after string) ([]attemptView, string, error) {
	u := sidecar + "/api/v1/trajectories?" + url.Values{"after": {after}, "wait": {feedWait}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/x-ndjson")
	if adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	next := resp.Header.Get("X-Next-Cursor")
	if next == "" {
		return nil, "", fmt.Errorf("GET %s: no X-Next-Cursor in the answer", u)
	}
	var views []attemptView
	dec := json.NewDecoder(resp.Body) // NDJSON: one JSON value after another
	for {
		var v attemptView
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, "", fmt.Errorf("GET %s: line %d: %w", u, len(views)+1, err)
		}
		views = append(views, v)
	}
	return views, next, nil
}

// describeDrift says where a drifted call's prompt left what the model had
// sampled, with tokentap's decoded text of both sides when it has them.
func describeDrift(rid string, d driftEntry) string {
	s := fmt.Sprintf("%s call %d (after call %d) differs at token %d: %s", rid, d.SequenceID, d.ParentSequenceID, d.At, d.Cause)
	if d.ExpectedText != nil && d.GotText != nil {
		s += fmt.Sprintf(", sampled %q, sent back %q", *d.ExpectedText, *d.GotText)
	}
	return s
}

// driftSummary is the drifted calls' count with its causes, most frequent
// first: "0", or "5 (think_stripped 3, tool_call_reserialized 2)".
func driftSummary(byCause map[string]int) string {
	causes := make([]string, 0, len(byCause))
	total := 0
	for c, n := range byCause {
		causes = append(causes, c)
		total += n
	}
	if total == 0 {
		return "0"
	}
	slices.SortFunc(causes, func(a, b string) int {
		return cmp.Or(cmp.Compare(byCause[b], byCause[a]), cmp.Compare(a, b))
	})
	s := fmt.Sprint(total, " (")
	for i, c := range causes {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprint(c, " ", byCause[c])
	}
	return s + ")"
}
