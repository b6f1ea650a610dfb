package exporter

import (
	"testing"

	"github.com/tokentap/tokentap/rollout"
)

// Stored bytes grow with the tokens a turn adds, not with its context: in a
// 30-turn rollout whose context grows to ~33k tokens, every delta record
// after the first is about the size of the second (1,100 tokens and one
// message added per turn), while whole records grow turn by turn.
func TestStoredBytesGrowWithAddedTokens(t *testing.T) {
	key := rollout.Key{RolloutID: "growth", AttemptID: "0"}
	for _, tc := range []struct {
		name  string
		opts  []RecorderOption
		ratio float64 // bound on last record / second record
		grows bool
	}{
		{"delta", nil, 1.25, false},
		{"whole", []RecorderOption{WithWholePrompts()}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := testStore(t)
			recordAll(t, NewRecorder(st, true, "test", tc.opts...), conversation(key, 30, 1000, 100))
			total, recs := storedBytes(t, st, key)
			if len(recs) != 30 {
				t.Fatalf("%d records", len(recs))
			}
			second, last := len(recs[1].Data), len(recs[29].Data)
			t.Logf("%s: %d bytes in all; record 1 %d, record 2 %d, record 30 %d", tc.name, total, len(recs[0].Data), second, last)
			if tc.grows {
				if last < 5*second {
					t.Errorf("whole records do not grow with the context: %d then %d bytes", second, last)
				}
				return
			}
			for i, r := range recs[1:] {
				if float64(len(r.Data)) > tc.ratio*float64(second) {
					t.Errorf("record %d: %d bytes, record 2 %d: a delta record grows with its context", i+2, len(r.Data), second)
				}
			}
		})
	}
}
