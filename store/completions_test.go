package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestCompletionLog(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTest(t, dir)
	if err := s.Append(ctx, rec("r1", "0", 1, KindCall, "a"), rec("r2", "0", 1, KindCall, "b")); err != nil {
		t.Fatal(err)
	}
	// Completes racing in one group commit still get distinct positions.
	var wg sync.WaitGroup
	for _, k := range [][2]string{{"r2", "0"}, {"r1", "0"}, {"r3", "7"}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Complete(ctx, k[0], k[1]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := s.Complete(ctx, "r1", "0"); !errors.Is(err, ErrAttemptComplete) {
		t.Fatalf("second complete: %v", err)
	}
	got, next, err := s.Completions(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || next != 3 || s.LastCompletion() != 3 {
		t.Fatalf("got %+v next %d last %d", got, next, s.LastCompletion())
	}
	seen := map[string]bool{}
	for i, c := range got {
		if c.Position != uint64(i+1) || c.CompletedAt.IsZero() {
			t.Errorf("entry %d: %+v", i, c)
		}
		seen[c.RolloutID+"/"+c.AttemptID] = true
	}
	if !seen["r1/0"] || !seen["r2/0"] || !seen["r3/7"] {
		t.Errorf("entries %+v", got)
	}
	page, next, err := s.Completions(ctx, 1, 1)
	if err != nil || len(page) != 1 || page[0].Position != 2 || next != 2 {
		t.Fatalf("page after 1: %+v %d %v", page, next, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Positions survive a restart and are never reused.
	s = openTest(t, dir)
	defer s.Close()
	if s.LastCompletion() != 3 {
		t.Fatalf("after reopen: last %d", s.LastCompletion())
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done <- s.WaitCompletion(wctx, 3)
	}()
	if _, err := s.Complete(ctx, "r4", "0"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("wait: %v", err)
	}
	got, next, err = s.Completions(ctx, 3, 10)
	if err != nil || len(got) != 1 || got[0].Position != 4 || got[0].RolloutID != "r4" || next != 4 {
		t.Fatalf("after restart: %+v %d %v", got, next, err)
	}
	none, next, err := s.Completions(ctx, 4, 10)
	if err != nil || len(none) != 0 || next != 4 {
		t.Fatalf("past the end: %+v %d %v", none, next, err)
	}
}
