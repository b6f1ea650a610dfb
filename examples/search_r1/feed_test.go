package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"
)

func readTrajectories(t *testing.T, path string) []trajectoryRow {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := readJSONL[trajectoryRow](b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

var (
	trajectoriesLine = regexp.MustCompile(`(?m)^  trajectories +(\d+) \((\d+) multi-turn\) -> `)
	driftLine        = regexp.MustCompile(`(?m)^  drifted calls +(\d+)(?: \(.+\))?$`)
)

// checkTrajectories checks the trajectories JSONL against the summary and
// what a trainer needs of each line, and returns the drifted calls counted.
// A Search-R1 agent keeps one conversation, so each rollout is one
// trajectory plus one per drifted call, and only the one that ends with the
// rollout's last call carries the reward.
func checkTrajectories(t *testing.T, rows []trajectoryRow, summary string, rollouts int) int {
	t.Helper()
	m := trajectoriesLine.FindStringSubmatch(summary)
	d := driftLine.FindStringSubmatch(summary)
	if m == nil || d == nil {
		t.Fatalf("summary lacks the trajectories or drifted calls line:\n%s", summary)
	}
	total, _ := strconv.Atoi(m[1])
	multi, _ := strconv.Atoi(m[2])
	drifted, _ := strconv.Atoi(d[1])
	if total != len(rows) {
		t.Errorf("summary says %d trajectories, the file has %d", total, len(rows))
	}
	if total != rollouts+drifted {
		t.Errorf("%d trajectories for %d rollouts and %d drifted calls", total, rollouts, drifted)
	}
	multiTurn := 0
	rewarded := map[string]int{}
	for _, r := range rows {
		name := fmt.Sprintf("%s/%s #%d", r.RolloutID, r.AttemptID, r.Index)
		if len(r.ResponseMask) != len(r.ResponseIDs) || len(r.ResponseLogprobs) != len(r.ResponseIDs) {
			t.Errorf("%s: %d mask, %d logprobs for %d response IDs", name, len(r.ResponseMask), len(r.ResponseLogprobs), len(r.ResponseIDs))
		}
		if len(r.PromptIDs) == 0 || r.NumTurns < 1 || r.NumTurns != len(r.SequenceIDs) || !slices.Contains(r.ResponseMask, 1) {
			t.Errorf("%s: %d prompt IDs, %d turns, sequences %v, mask %v", name, len(r.PromptIDs), r.NumTurns, r.SequenceIDs, r.ResponseMask)
		}
		if r.NumTurns > 1 {
			multiTurn++
		}
		n := rewarded[r.RolloutID]
		if r.Reward != nil {
			n++
		}
		rewarded[r.RolloutID] = n
	}
	if multi != multiTurn {
		t.Errorf("summary says %d multi-turn trajectories, the file has %d", multi, multiTurn)
	}
	if len(rewarded) != rollouts {
		t.Errorf("trajectories of %d rollouts, want %d", len(rewarded), rollouts)
	}
	for rid, n := range rewarded {
		if n != 1 {
			t.Errorf("%s: %d trajectories with a reward, want 1", rid, n)
		}
	}
	return drifted
}

// checkTurns holds the trajectories file against tokentap's trajectories
// view of each attempt: the same trajectories, each turn's sampled span
// mask 1 and exactly what vLLM produced for that call's prompt, and
// everything between turns mask 0.
func checkTurns(t *testing.T, sidecar, adminToken string, rows []trajectoryRow, produced map[string]bool) {
	t.Helper()
	views := map[string]attemptView{}
	for _, r := range rows {
		key := r.RolloutID + "/" + r.AttemptID
		v, ok := views[key]
		if !ok {
			url := fmt.Sprintf("%s/api/v1/rollouts/%s/attempts/%s/trajectories", sidecar, r.RolloutID, r.AttemptID)
			if err := getJSON(context.Background(), http.DefaultClient, url, adminToken, &v); err != nil {
				t.Fatal(err)
			}
			views[key] = v
		}
		i := slices.IndexFunc(v.Trajectories, func(tr trajectory) bool { return tr.Index == r.Index })
		if i < 0 {
			t.Errorf("%s #%d: not in tokentap's view", key, r.Index)
			continue
		}
		tr := v.Trajectories[i]
		if !slices.Equal(tr.PromptIDs, r.PromptIDs) || !slices.Equal(tr.ResponseIDs, r.ResponseIDs) ||
			!slices.Equal(tr.ResponseMask, r.ResponseMask) || !slices.Equal(tr.ResponseLogprobs, r.ResponseLogprobs) ||
			!slices.Equal(tr.SequenceIDs, r.SequenceIDs) || len(tr.Turns) != r.NumTurns {
			t.Errorf("%s #%d: the file differs from tokentap's view", key, r.Index)
			continue
		}
		sampled := make([]int, len(r.ResponseIDs))
		for _, turn := range tr.Turns {
			if turn.Start < 0 || turn.Start > turn.End || turn.End > len(r.ResponseIDs) {
				t.Errorf("%s #%d: turn %d spans [%d, %d) of %d", key, r.Index, turn.SequenceID, turn.Start, turn.End, len(r.ResponseIDs))
				continue
			}
			for k := turn.Start; k < turn.End; k++ {
				sampled[k] = 1
			}
			prompt := append(slices.Clone(r.PromptIDs), r.ResponseIDs[:turn.Start]...)
			if !produced[fmt.Sprint(prompt, "|", r.ResponseIDs[turn.Start:turn.End])] {
				t.Errorf("%s #%d: turn %d holds IDs that vLLM did not produce for its prompt", key, r.Index, turn.SequenceID)
			}
		}
		if !slices.Equal(sampled, r.ResponseMask) {
			t.Errorf("%s #%d: mask %v, but the turns sampled %v", key, r.Index, r.ResponseMask, sampled)
		}
	}
}

func TestDriftSummary(t *testing.T) {
	for _, tc := range []struct {
		byCause map[string]int
		want    string
	}{
		{nil, "0"},
		{map[string]int{}, "0"},
		{map[string]int{"other": 1}, "1 (other 1)"},
		{map[string]int{"tool_call_reserialized": 2, "think_stripped": 3}, "5 (think_stripped 3, tool_call_reserialized 2)"},
		{map[string]int{"retokenized": 2, "eos_rerendered": 2}, "4 (eos_rerendered 2, retokenized 2)"},
	} {
		if got := driftSummary(tc.byCause); got != tc.want {
			t.Errorf("driftSummary(%v) = %q, want %q", tc.byCause, got, tc.want)
		}
	}
}
