package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// Requests that reach the queue while Close drains it, or after, are
// answered (committed, or ErrClosed), never left waiting forever: here a
// commit is held so that the queue is full when Close starts, and more
// writers are blocked on it.
func TestRequestsQueuedAtCloseAreAnswered(t *testing.T) {
	release := make(chan struct{})
	var once sync.Once
	held := make(chan struct{})
	s, err := Open(context.Background(), Options{InMemory: true, Logger: zerolog.Nop(), BeforeCommit: func() error {
		once.Do(func() { close(held) })
		<-release
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	const writers = maxBatch + 1024 + 2000 // a held batch, a full queue, and writers blocked on it
	answers := make(chan error, writers)
	for i := range writers {
		go func() {
			if i%2 == 0 {
				answers <- s.Append(context.Background(), rec("r", "0", uint64(i+1), KindCall, "x"))
				return
			}
			_, err := s.Complete(context.Background(), "c", string(rune('a'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676)))
			if errors.Is(err, ErrAttemptComplete) {
				err = nil
			}
			answers <- err
		}()
	}
	<-held
	time.Sleep(100 * time.Millisecond) // let the writers queue up
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	time.Sleep(10 * time.Millisecond)
	close(release)
	timeout := time.After(20 * time.Second)
	var ok, refused int
	for range writers {
		select {
		case err := <-answers:
			switch {
			case err == nil:
				ok++
			case errors.Is(err, ErrClosed):
				refused++
			default:
				t.Fatalf("unexpected answer: %v", err)
			}
		case <-timeout:
			t.Fatalf("%d of %d requests never answered (%d committed, %d refused)", writers-ok-refused, writers, ok, refused)
		}
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d committed, %d refused", ok, refused)
}

// The interleaving above that loses a request: a writer checks that the
// store is open, Close runs and the committer drains the queue and stops,
// then the writer's request lands in the queue. Clearing the closed flag
// after Close puts every writer at that point; each must get ErrClosed.
func TestRequestAfterDrainGetsErrClosed(t *testing.T) {
	s, err := Open(context.Background(), Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.closed.Store(false) // as seen by a writer that checked before Close
	for i := range 32 {
		answer := make(chan error, 1)
		go func() { answer <- s.Append(context.Background(), rec("r", "0", uint64(i+1), KindCall, "x")) }()
		select {
		case err := <-answer:
			if !errors.Is(err, ErrClosed) {
				t.Fatalf("append %d after the committer stopped: %v", i, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("append %d after the committer stopped never returned", i)
		}
	}
}
