package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The completion log lists completed attempts in the order they completed,
// so that a trainer tailing it (the trajectories feed) sees every completed
// attempt exactly once, across restarts: an entry is committed in the same
// transaction that marks its attempt complete, and its number is never
// reused.
//
//	q | n u64 -> rid 0 aid 0 completed-at unix ns u64
//
// Entries expire with Retention, like the records of their attempt.
const prefixCompletion = 'q'

var metaCompletions = []byte("m/completions")

// Completion is one entry of the completion log.
type Completion struct {
	Position    uint64 // the entry's number: 1, 2, ... in completion order
	RolloutID   string
	AttemptID   string
	CompletedAt time.Time
}

// Completions returns up to limit entries of the completion log after
// position after, in completion order, and the position to pass as after
// next time (after itself when there are none).
func (s *Store) Completions(ctx context.Context, after uint64, limit int) ([]Completion, uint64, error) {
	if s.closed.Load() {
		return nil, after, ErrClosed
	}
	var out []Completion
	next := after
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCompletion}})
		defer it.Close()
		for it.Seek(completionKey(after + 1)); it.Valid() && len(out) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			key := item.Key()
			if len(key) != 9 {
				continue
			}
			c := Completion{Position: binary.BigEndian.Uint64(key[1:])}
			err := item.Value(func(v []byte) error {
				rid, rest, ok := cut0(v)
				aid, at, ok2 := cut0(rest)
				if !ok || !ok2 || len(at) != 8 {
					return fmt.Errorf("completion %d: malformed entry", c.Position)
				}
				c.RolloutID, c.AttemptID = string(rid), string(aid)
				c.CompletedAt = time.Unix(0, int64(binary.BigEndian.Uint64(at))).UTC()
				return nil
			})
			if err != nil {
				return err
			}
			out = append(out, c)
			next = c.Position
		}
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("read completions after %d: %w", after, err)
	}
	return out, next, nil
}

// LastCompletion is the position of the newest entry of the completion log.
func (s *Store) LastCompletion() uint64 { return s.completions.Load() }

// WaitCompletion returns once an attempt completes past position after, or
// when ctx ends (with ctx's error) or the store closes (ErrClosed).
func (s *Store) WaitCompletion(ctx context.Context, after uint64) error {
	for {
		s.notifyMu.Lock()
		ch := s.notify
		s.notifyMu.Unlock()
		if s.completions.Load() > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return ErrClosed
		}
	}
}

func completionKey(n uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefixCompletion
	binary.BigEndian.PutUint64(k[1:], n)
	return k
}

// stageCompletion writes the log entry of a completed attempt as number n.
func (s *Store) stageCompletion(txn *badger.Txn, n uint64, rid, aid string, at time.Time) error {
	v := make([]byte, 0, len(rid)+len(aid)+10)
	v = append(append(append(append(v, rid...), 0), aid...), 0)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	if err := txn.SetEntry(s.entry(completionKey(n), v)); err != nil {
		return err
	}
	return txn.Set(metaCompletions, binary.BigEndian.AppendUint64(nil, n))
}

func (s *Store) loadCompletions() error {
	v, err := s.meta(metaCompletions)
	if err != nil {
		return fmt.Errorf("read completion log position: %w", err)
	}
	switch {
	case v == nil:
	case len(v) != 8:
		return errors.New("read completion log position: want 8 bytes")
	default:
		s.completions.Store(binary.BigEndian.Uint64(v))
	}
	return nil
}

// SetDrift records how many calls of a completed attempt drifted, by cause
// (the trajectories diagnosis), in the attempt's summary.
func (s *Store) SetDrift(ctx context.Context, rid, aid string, counts map[string]int) error {
	if counts == nil {
		counts = map[string]int{}
	}
	if err := s.submit(ctx, &writeReq{drift: &driftReq{rid: rid, aid: aid, counts: counts}}); err != nil {
		return fmt.Errorf("record drift of %s/%s: %w", rid, aid, err)
	}
	return nil
}
