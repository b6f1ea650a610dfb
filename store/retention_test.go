package store

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// indexEntries counts the cursor index entries left in the store.
func indexEntries(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCursor}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n
}

// Records past retention stay while a holding position has not reached
// them, and go once it has; the held ones are counted. Their rollout's
// sequence counter never hands out an id twice meanwhile, even once the
// rollout summary expired and the store restarted.
func TestRetentionHeldByPosition(t *testing.T) {
	both(t, func(t *testing.T, dir string) {
		ctx := context.Background()
		opts := Options{Dir: dir, InMemory: dir == "", Retention: time.Second, HoldFor: []string{"outbox"}, Logger: zerolog.Nop()}
		s, err := Open(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { s.Close() }()
		for seq := uint64(1); seq <= 10; seq++ {
			data := "x"
			if seq == 3 {
				data = strings.Repeat("p", 2*maxPart+10) // a record in parts
			}
			if err := s.Append(ctx, rec("r", "0", seq, KindCall, data)); err != nil {
				t.Fatal(err)
			}
		}
		// Badger expires the summary (TTL, second granularity).
		time.Sleep(2100 * time.Millisecond)
		if _, err := s.Rollout(ctx, "r"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("summary should have expired: %v", err)
		}
		if err := s.sweep(time.Now()); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Records(ctx, "r", "0"); len(got) != 10 {
			t.Fatalf("unacknowledged records were deleted: %d left", len(got))
		}
		if st := s.Stats(); st.HeldRecords != 10 || st.HeldOldestAge < 2 {
			t.Errorf("held %d, oldest %.1fs", st.HeldRecords, st.HeldOldestAge)
		}
		if dir != "" {
			// A restart forgets the counter and the summary is gone: the
			// held records say where it is.
			s.Close()
			if s, err = Open(ctx, opts); err != nil {
				t.Fatal(err)
			}
		} else {
			s.forgetIdle(time.Now().Add(time.Hour))
		}
		if seq, err := s.NextSequence(ctx, "r", "1"); err != nil || seq != 11 {
			t.Errorf("next sequence with held records: %d, %v (want 11)", seq, err)
		}

		// The outbox acknowledges up to cursor 4: those go, the rest stay.
		if err := s.SetPosition(ctx, "outbox", 4); err != nil {
			t.Fatal(err)
		}
		if err := s.sweep(time.Now()); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Records(ctx, "r", "0")
		if len(got) != 6 || got[0].Cursor != 5 {
			t.Fatalf("after acknowledging 4: %d records left, first %d", len(got), got[0].Cursor)
		}
		if st := s.Stats(); st.HeldRecords != 6 {
			t.Errorf("held %d, want 6", st.HeldRecords)
		}
		if n := indexEntries(t, s); n != 6 {
			t.Errorf("%d cursor index entries for 6 records", n)
		}
		if err := s.SetPosition(ctx, "outbox", 10); err != nil {
			t.Fatal(err)
		}
		if err := s.Reclaim(ctx); err != nil {
			t.Fatal(err)
		}
		if got, _, _ := s.Scan(ctx, 0, 100, 1<<30, "", ""); len(got) != 0 {
			t.Errorf("acknowledged records past retention still there: %d", len(got))
		}
		if st := s.Stats(); st.HeldRecords != 0 || st.HeldOldestAge != 0 || indexEntries(t, s) != 0 {
			t.Errorf("after acknowledging all: held %d (%.1fs), %d index entries", st.HeldRecords, st.HeldOldestAge, indexEntries(t, s))
		}
	})
}

// What expires and when, by configuration: records within retention stay
// whatever holds them; without a holder, records written without TTL under
// an earlier holder still go; a position never set holds everything.
func TestSweep(t *testing.T) {
	for _, tc := range []struct {
		name      string
		writeHold []string // HoldFor when the records are written
		sweepHold []string // HoldFor when the sweep runs (after a reopen)
		position  uint64   // of "a"
		age       time.Duration
		left      int
	}{
		{"within retention", []string{"a"}, []string{"a"}, 10, 0, 10},
		{"never acknowledged", []string{"a"}, []string{"a"}, 0, time.Hour, 10},
		{"all acknowledged", []string{"a"}, []string{"a"}, 10, time.Hour, 0},
		{"the slowest holder counts", []string{"a", "b"}, []string{"a", "b"}, 10, time.Hour, 10},
		{"holder removed", []string{"a"}, nil, 0, time.Hour, 0},
		{"no holder", nil, nil, 0, time.Hour, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			opts := Options{Dir: dir, Retention: time.Hour, HoldFor: tc.writeHold, Logger: zerolog.Nop()}
			s, err := Open(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 10; seq++ {
				if err := s.Append(ctx, rec("r", "0", seq, KindCall, "x")); err != nil {
					t.Fatal(err)
				}
			}
			s.SetPosition(ctx, "a", tc.position)
			s.Close()
			opts.HoldFor = tc.sweepHold
			if s, err = Open(ctx, opts); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.sweep(time.Now().Add(tc.age + time.Second)); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.Scan(ctx, 0, 100, 1<<30, "", ""); len(got) != tc.left {
				t.Errorf("%d records left, want %d", len(got), tc.left)
			}
			if n := indexEntries(t, s); n != tc.left {
				t.Errorf("%d index entries left, want %d", n, tc.left)
			}
		})
	}
}
