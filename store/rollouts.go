package store

import (
	"context"
	"sync"
	"time"
)

// rolloutState is the in-memory side of a rollout: its sequence counter and
// the attempts known complete, loaded from the store on first use. ready is
// closed once loaded (err says if that failed); forgotten is set when
// forgetIdle dropped it, and users then load a fresh one.
type rolloutState struct {
	ready     chan struct{}
	err       error
	mu        sync.Mutex
	allocated uint64 // last sequence id handed out
	persisted uint64 // highest sequence id committed
	complete  map[string]bool
	lastUsed  time.Time
	forgotten bool
}

// state returns the in-memory state of a rollout, loading it the first
// time. Concurrent first uses of one rollout wait for a single load.
func (s *Store) state(ctx context.Context, rid string) (*rolloutState, error) {
	v, ok := s.rollouts.Load(rid)
	if !ok {
		fresh := &rolloutState{ready: make(chan struct{}), complete: map[string]bool{}}
		if v, ok = s.rollouts.LoadOrStore(rid, fresh); !ok {
			s.load(rid, fresh)
		}
	}
	st := v.(*rolloutState)
	select {
	case <-st.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if st.err != nil {
		return nil, st.err
	}
	return st, nil
}

// load fills a new rollout state from the store. The committer may publish
// into it meanwhile: both sides merge by maximum and union, so the order does
// not matter.
func (s *Store) load(rid string, st *rolloutState) {
	last, complete, err := s.loadRollout(rid)
	st.mu.Lock()
	if err != nil {
		st.err = err
	} else {
		st.allocated, st.persisted = max(st.allocated, last), max(st.persisted, last)
		for _, aid := range complete {
			st.complete[aid] = true
		}
	}
	st.mu.Unlock()
	if err != nil {
		s.rollouts.CompareAndDelete(rid, st) // the next use tries again
	}
	close(st.ready)
}

// withState runs f with the state of rid locked.
func (s *Store) withState(ctx context.Context, rid string, f func(*rolloutState) error) error {
	for {
		st, err := s.state(ctx, rid)
		if err != nil {
			return err
		}
		st.mu.Lock()
		if st.forgotten {
			st.mu.Unlock()
			continue // dropped by forgetIdle after we found it: load it again
		}
		err = f(st)
		st.mu.Unlock()
		return err
	}
}

// NextSequence allocates the next sequence id of a rollout: per rollout,
// shared by its attempts, starting at 1, strictly increasing, never handed
// out twice while the rollout's records are retained. It fails with
// ErrAttemptComplete when the attempt was marked complete.
func (s *Store) NextSequence(ctx context.Context, rid, aid string) (uint64, error) {
	if s.closed.Load() {
		return 0, ErrClosed
	}
	var seq uint64
	err := s.withState(ctx, rid, func(st *rolloutState) error {
		if st.complete[aid] {
			return ErrAttemptComplete
		}
		st.allocated++
		st.lastUsed = time.Now()
		seq = st.allocated
		return nil
	})
	return seq, err
}

// ObserveSequence tells the counter of a rollout about a sequence id that
// arrived from outside (a received span): later allocations go past it.
func (s *Store) ObserveSequence(ctx context.Context, rid string, seq uint64) error {
	return s.withState(ctx, rid, func(st *rolloutState) error {
		st.allocated = max(st.allocated, seq)
		st.lastUsed = time.Now()
		return nil
	})
}

// IsComplete reports whether an attempt was marked complete.
func (s *Store) IsComplete(ctx context.Context, rid, aid string) (bool, error) {
	var done bool
	err := s.withState(ctx, rid, func(st *rolloutState) error {
		done = st.complete[aid]
		return nil
	})
	return done, err
}

// forgetIdle drops the state of rollouts unused since before cutoff whose
// every allocated sequence id is committed, so reloading it from the store
// gives the same counter. A user that found the state just before is told
// by forgotten to load it again, so no increment lands in a dropped state.
func (s *Store) forgetIdle(cutoff time.Time) {
	s.rollouts.Range(func(rid, v any) bool {
		st := v.(*rolloutState)
		select {
		case <-st.ready:
		default:
			return true // still loading
		}
		st.mu.Lock()
		idle := st.err == nil && st.lastUsed.Before(cutoff) && st.allocated == st.persisted
		st.forgotten = idle
		st.mu.Unlock()
		if idle {
			s.rollouts.CompareAndDelete(rid, st)
		}
		return true
	})
}
