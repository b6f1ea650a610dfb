package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func openTest(t testing.TB, dir string) *Store {
	t.Helper()
	opts := Options{Dir: dir, InMemory: dir == "", Retention: time.Hour, Logger: zerolog.Nop()}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rec(rid, aid string, seq uint64, kind Kind, data string) *Record {
	return &Record{RolloutID: rid, AttemptID: aid, Seq: seq, Kind: kind, Time: time.Unix(1700000000, int64(seq)).UTC(), Data: []byte(data)}
}

func both(t *testing.T, f func(t *testing.T, dir string)) {
	t.Run("disk", func(t *testing.T) { f(t, t.TempDir()) })
	t.Run("memory", func(t *testing.T) { f(t, "") })
}

func TestAppendAndRead(t *testing.T) {
	both(t, func(t *testing.T, dir string) {
		s := openTest(t, dir)
		defer s.Close()
		ctx := context.Background()
		r1 := rec("r1", "0", 1, KindCall, "call-1")
		r2 := rec("r1", "0", 2, KindReward, "reward-2")
		r3 := rec("r1", "1", 3, KindCall, "call-3")
		r10 := rec("r10", "0", 1, KindCall, "other rollout")
		if err := s.Append(ctx, r1, r2); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, r3); err != nil {
			t.Fatal(err)
		}
		if err := s.Append(ctx, r10); err != nil {
			t.Fatal(err)
		}
		if r1.Cursor != 1 || r2.Cursor != 2 || r3.Cursor != 3 || r10.Cursor != 4 || s.Cursor() != 4 {
			t.Errorf("cursors %d %d %d %d, store at %d", r1.Cursor, r2.Cursor, r3.Cursor, r10.Cursor, s.Cursor())
		}
		got, err := s.Records(ctx, "r1", "0")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || string(got[0].Data) != "call-1" || got[1].Kind != KindReward || got[1].Seq != 2 || !got[1].Time.Equal(r2.Time) {
			t.Errorf("attempt 0 = %+v", got)
		}
		all, err := s.Records(ctx, "r1", "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 || all[2].AttemptID != "1" {
			t.Errorf("all attempts = %+v (r10 must not match r1)", all)
		}
		sum, err := s.Rollout(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if sum.Calls != 2 || sum.Rewards != 1 || sum.LastSeq != 3 || len(sum.Attempts) != 2 {
			t.Errorf("summary = %+v", sum)
		}
		if latest, _ := sum.Latest(); latest.AttemptID != "1" {
			t.Errorf("latest attempt = %q", latest.AttemptID)
		}
		if _, err := s.Rollout(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown rollout: %v", err)
		}
		list, err := s.Rollouts(ctx, "", 10)
		if err != nil || len(list) != 2 || list[0].RolloutID != "r1" || list[1].RolloutID != "r10" {
			t.Errorf("rollouts = %+v, %v", list, err)
		}
		list, _ = s.Rollouts(ctx, "r1", 10)
		if len(list) != 1 || list[0].RolloutID != "r10" {
			t.Errorf("rollouts after r1 = %+v", list)
		}
	})
}

func TestScan(t *testing.T) {
	s := openTest(t, "")
	defer s.Close()
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		rid := "a"
		if i%2 == 0 {
			rid = "b"
		}
		if err := s.Append(ctx, rec(rid, "0", uint64(i), KindCall, strings.Repeat("x", 100))); err != nil {
			t.Fatal(err)
		}
	}
	got, next, err := s.Scan(ctx, 0, 3, 1<<20, "", "")
	if err != nil || len(got) != 3 || got[0].Cursor != 1 || next != 3 {
		t.Fatalf("scan = %d records, next %d, %v", len(got), next, err)
	}
	got, next, _ = s.Scan(ctx, next, 100, 250, "", "")
	if len(got) != 3 || got[0].Cursor != 4 || next != 6 {
		t.Errorf("byte-bounded scan = %d records, next %d", len(got), next)
	}
	got, next, _ = s.Scan(ctx, 0, 100, 1, "", "")
	if len(got) != 1 || next != 1 {
		t.Errorf("a scan returns at least one record: %d, next %d", len(got), next)
	}
	got, next, _ = s.Scan(ctx, 4, 100, 1<<20, "b", "")
	if len(got) != 3 || got[0].Cursor != 6 || next != 10 {
		t.Errorf("rollout scan = %+v, next %d", got, next)
	}
	got, next, _ = s.Scan(ctx, 10, 100, 1<<20, "", "")
	if len(got) != 0 || next != 10 {
		t.Errorf("scan at the end = %d, next %d", len(got), next)
	}
}

func TestLargeRecord(t *testing.T) {
	both(t, func(t *testing.T, dir string) {
		s := openTest(t, dir)
		defer s.Close()
		ctx := context.Background()
		big := bytes.Repeat([]byte("0123456789"), 300_000) // 3 MB: several parts
		exact := bytes.Repeat([]byte("y"), maxPart)        // head exactly maxPart
		if err := s.Append(ctx, &Record{RolloutID: "r", AttemptID: "0", Seq: 1, Kind: KindCall, Data: big}, &Record{RolloutID: "r", AttemptID: "0", Seq: 2, Kind: KindCall, Data: exact}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Records(ctx, "r", "0")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !bytes.Equal(got[0].Data, big) || !bytes.Equal(got[1].Data, exact) {
			t.Fatalf("large records did not round-trip (%d records)", len(got))
		}
		scanned, _, err := s.Scan(ctx, 0, 10, 1<<30, "", "")
		if err != nil || len(scanned) != 2 || !bytes.Equal(scanned[0].Data, big) {
			t.Fatalf("scan of large records: %v", err)
		}
	})
}

func TestSequences(t *testing.T) {
	both(t, func(t *testing.T, dir string) {
		s := openTest(t, dir)
		ctx := context.Background()
		var mu sync.Mutex
		seen := map[uint64]bool{}
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				seq, err := s.NextSequence(ctx, "r", "0")
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Append(ctx, rec("r", "0", seq, KindCall, "x")); err != nil {
					t.Error(err)
				}
				mu.Lock()
				seen[seq] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		for i := uint64(1); i <= 32; i++ {
			if !seen[i] {
				t.Errorf("sequence %d not handed out (got %v)", i, seen)
			}
		}
		// Another attempt shares the counter.
		if seq, _ := s.NextSequence(ctx, "r", "1"); seq != 33 {
			t.Errorf("attempt 1 got %d, want 33", seq)
		}
		// A sequence id from outside moves the counter past it.
		s.ObserveSequence(ctx, "r", 100)
		if seq, _ := s.NextSequence(ctx, "r", "0"); seq != 101 {
			t.Errorf("after observing 100 got %d", seq)
		}
		if err := s.Append(ctx, rec("r", "0", 101, KindCall, "x")); err != nil {
			t.Fatal(err)
		}
		if dir == "" {
			s.Close()
			return
		}
		// Restart: the counter continues after the last committed id.
		s.Close()
		s = openTest(t, dir)
		defer s.Close()
		if seq, _ := s.NextSequence(ctx, "r", "0"); seq != 102 {
			t.Errorf("after reopen got %d, want 102", seq)
		}
		if seq, _ := s.NextSequence(ctx, "fresh", "0"); seq != 1 {
			t.Errorf("a new rollout starts at %d", seq)
		}
		// The rollout the store holds was read; the new one was known
		// new without a read (which waits for the commit in flight).
		if n := s.rolloutReads.Load(); n != 1 {
			t.Errorf("%d rollout reads after reopening, want 1 (r only)", n)
		}
		// A rollout first committed after the reopen, then forgotten,
		// is read again and continues.
		if err := s.Append(ctx, rec("fresh", "0", 1, KindCall, "x")); err != nil {
			t.Fatal(err)
		}
		s.forgetIdle(time.Now().Add(time.Hour))
		if seq, _ := s.NextSequence(ctx, "fresh", "0"); seq != 2 {
			t.Errorf("a forgotten rollout continues at %d, want 2", seq)
		}
	})
}

func TestComplete(t *testing.T) {
	dir := t.TempDir()
	s := openTest(t, dir)
	ctx := context.Background()
	for seq := uint64(1); seq <= 3; seq++ {
		kind := KindCall
		if seq == 3 {
			kind = KindReward
		}
		if err := s.Append(ctx, rec("r", "0", seq, kind, "x")); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := s.Complete(ctx, "r", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Complete || sum.Calls != 2 || sum.LastSeq != 3 || sum.CompletedAt.IsZero() {
		t.Errorf("complete = %+v", sum)
	}
	if _, err := s.Complete(ctx, "r", "0"); !errors.Is(err, ErrAttemptComplete) {
		t.Errorf("second complete: %v", err)
	}
	if _, err := s.NextSequence(ctx, "r", "0"); !errors.Is(err, ErrAttemptComplete) {
		t.Errorf("call after complete: %v", err)
	}
	if _, err := s.NextSequence(ctx, "r", "1"); err != nil {
		t.Errorf("another attempt is still open: %v", err)
	}
	// An attempt with no calls can complete too.
	if sum, err := s.Complete(ctx, "empty", "0"); err != nil || sum.Calls != 0 {
		t.Errorf("empty attempt: %+v %v", sum, err)
	}
	// Concurrent completes: exactly one wins.
	var wins, losses int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := s.Complete(ctx, "race", "0")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				wins++
			} else if errors.Is(err, ErrAttemptComplete) {
				losses++
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != 7 {
		t.Errorf("concurrent completes: %d won, %d refused", wins, losses)
	}
	s.Close()
	s = openTest(t, dir)
	defer s.Close()
	if done, _ := s.IsComplete(ctx, "r", "0"); !done {
		t.Error("completion lost on reopen")
	}
	if _, err := s.NextSequence(ctx, "r", "0"); !errors.Is(err, ErrAttemptComplete) {
		t.Errorf("call after reopen: %v", err)
	}
}

func TestRetention(t *testing.T) {
	s, err := Open(context.Background(), Options{InMemory: true, Retention: time.Second, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, rec("r", "0", 1, KindCall, "x")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Records(ctx, "r", "0"); len(got) != 1 {
		t.Fatal("record missing before expiry")
	}
	// Badger expires at second granularity.
	time.Sleep(2100 * time.Millisecond)
	if got, _ := s.Records(ctx, "r", "0"); len(got) != 0 {
		t.Errorf("record still there after its retention: %+v", got)
	}
	if _, err := s.Rollout(ctx, "r"); !errors.Is(err, ErrNotFound) {
		t.Errorf("summary after expiry: %v", err)
	}
	if got, _, _ := s.Scan(ctx, 0, 10, 1<<20, "", ""); len(got) != 0 {
		t.Errorf("scan after expiry: %d records", len(got))
	}
}

func TestClosed(t *testing.T) {
	s := openTest(t, "")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(context.Background(), rec("r", "0", 1, KindCall, "x")); !errors.Is(err, ErrClosed) {
		t.Errorf("append after close: %v", err)
	}
	if _, err := s.NextSequence(context.Background(), "r", "0"); !errors.Is(err, ErrClosed) {
		t.Errorf("sequence after close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestCrashKeepsCommittedRecords runs a writer in a child process, kills it
// with SIGKILL while it appends, and checks that every record whose Append
// had returned is in the store when it is reopened.
func TestCrashKeepsCommittedRecords(t *testing.T) {
	if os.Getenv("STORE_CRASH_CHILD") != "" {
		crashChild()
		return
	}
	dir := t.TempDir()
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsCommittedRecords$")
		cmd.Env = append(os.Environ(), "STORE_CRASH_CHILD="+dir, "STORE_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]bool{}
		sc := bufio.NewScanner(out)
		for sc.Scan() && len(acked) < 300 {
			if line, ok := strings.CutPrefix(sc.Text(), "acked "); ok {
				acked[line] = true
			}
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if len(acked) == 0 {
			t.Fatal("child acknowledged nothing")
		}

		s := openTest(t, dir)
		recs, _, err := s.Scan(context.Background(), 0, 1<<30, 1<<30, "", "")
		if err != nil {
			t.Fatal(err)
		}
		stored := map[string]bool{}
		for _, r := range recs {
			stored[string(r.Data)] = true
		}
		for k := range acked {
			if !stored[k] {
				t.Errorf("round %d: acknowledged record %s lost", round, k)
			}
		}
		s.Close()
	}
}

func crashChild() {
	s, err := Open(context.Background(), Options{Dir: os.Getenv("STORE_CRASH_CHILD"), Retention: time.Hour, Logger: zerolog.Nop()})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	round := os.Getenv("STORE_CRASH_ROUND")
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				rid := fmt.Sprintf("r%d", w)
				seq, err := s.NextSequence(context.Background(), rid, round)
				if err != nil {
					return
				}
				data := fmt.Sprintf("%s/%s/%d/%s", rid, round, seq, strings.Repeat("p", 2000))
				if err := s.Append(context.Background(), &Record{RolloutID: rid, AttemptID: round, Seq: seq, Kind: KindCall, Time: time.Now(), Data: []byte(data)}); err != nil {
					return
				}
				mu.Lock()
				fmt.Println("acked " + data)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// Records past their retention give their disk space back: expired keys
// leave the LSM tree at compaction, then the value log files that held
// them are rewritten or deleted. Both ways records go: Badger's TTL, and
// the sweep (what the sidecar uses, since its Rebase must see a prompt
// parent go).
func TestRetentionShrinksDisk(t *testing.T) {
	rebase := func(child Record, _ func(uint64) (Record, error)) ([]byte, error) { return child.Data, nil }
	for _, tc := range []struct {
		name   string
		rebase func(Record, func(uint64) (Record, error)) ([]byte, error)
	}{{"ttl", nil}, {"sweep", rebase}} {
		t.Run(tc.name, func(t *testing.T) { testRetentionShrinksDisk(t, tc.rebase) })
	}
}

func testRetentionShrinksDisk(t *testing.T, rebase func(Record, func(uint64) (Record, error)) ([]byte, error)) {
	dir := t.TempDir()
	// A small memtable flushes keys to tables soon, as a busy store does.
	s, err := Open(context.Background(), Options{Dir: dir, Retention: 4 * time.Second, Rebase: rebase, memTableSize: 1 << 20, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	data := bytes.Repeat([]byte("s"), 32<<10)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 750 {
				s.Append(ctx, &Record{RolloutID: fmt.Sprint("r", w), AttemptID: "0", Seq: uint64(i + 1), Kind: KindCall, Time: time.Now(), Data: data})
			}
		})
	}
	wg.Wait()
	before := dirUsage(dir)
	time.Sleep(4500 * time.Millisecond)    // past the retention
	if err := s.Reclaim(ctx); err != nil { // the sweep deletes what it must
		t.Fatal(err)
	}
	// A busy store goes on writing: fresh records keep the active value log
	// file busy (it is never collected), and fill the memtable, which flushes
	// the sweep's deletions to the tables where compaction meets the records
	// they delete. The retention outlasts the reclaim on a slow machine.
	fresh := bytes.Repeat([]byte("f"), 900) // inline in the memtable
	for i := range 1600 {
		s.Append(ctx, &Record{RolloutID: "fresh", AttemptID: "0", Seq: uint64(i + 1), Kind: KindCall, Time: time.Now(), Data: fresh})
	}
	if err := s.Reclaim(ctx); err != nil {
		t.Fatal(err)
	}
	after := dirUsage(dir)
	t.Logf("disk: %d MiB before expiry, %d MiB after reclaim", before>>20, after>>20)
	if after > before/2 {
		t.Errorf("disk went from %d to %d bytes", before, after)
	}
	if got, _ := s.Records(ctx, "fresh", "0"); len(got) != 1600 {
		t.Errorf("live records lost: %d", len(got))
	}
	if got, _ := s.Records(ctx, "r0", "0"); len(got) != 0 {
		t.Errorf("%d records past retention left", len(got))
	}
}

func TestSettingsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(ctx, Options{Dir: dir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.Setting(ctx, "policy_version"); err != nil || v != "" {
		t.Fatalf("unset: %q %v", v, err)
	}
	if err := s.SetSetting(ctx, "policy_version", "step-12"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = Open(ctx, Options{Dir: dir, Logger: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, _ := s.Setting(ctx, "policy_version"); v != "step-12" {
		t.Errorf("after reopen: %q", v)
	}
	s.SetSetting(ctx, "policy_version", "")
	if v, _ := s.Setting(ctx, "policy_version"); v != "" {
		t.Errorf("after clearing: %q", v)
	}
}
