package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// RolloutSummary is what the store keeps about a rollout besides its records.
type RolloutSummary struct {
	RolloutID string           `json:"rollout_id"`
	Attempts  []AttemptSummary `json:"attempts"`
	Calls     int              `json:"calls"`
	Rewards   int              `json:"rewards"`
	Spans     int              `json:"spans"`
	LastSeq   uint64           `json:"last_sequence_id"`
	UpdatedAt time.Time        `json:"updated_at"`
}

// AttemptSummary is what the store keeps about one attempt.
type AttemptSummary struct {
	AttemptID   string    `json:"attempt_id"`
	FirstSeq    uint64    `json:"first_sequence_id"`
	LastSeq     uint64    `json:"last_sequence_id"`
	Calls       int       `json:"calls"`
	Rewards     int       `json:"rewards"`
	Spans       int       `json:"spans"`
	UpdatedAt   time.Time `json:"updated_at"`
	Complete    bool      `json:"complete"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// Drift counts the attempt's drifted calls by cause, once its
	// trajectories were diagnosed (SetDrift); nil before.
	Drift map[string]int `json:"drift,omitempty"`
}

func (r *RolloutSummary) attempt(aid string) *AttemptSummary {
	for i := range r.Attempts {
		if r.Attempts[i].AttemptID == aid {
			return &r.Attempts[i]
		}
	}
	r.Attempts = append(r.Attempts, AttemptSummary{AttemptID: aid})
	return &r.Attempts[len(r.Attempts)-1]
}

func (r *RolloutSummary) add(rec *Record) {
	a := r.attempt(rec.AttemptID)
	switch rec.Kind {
	case KindCall:
		r.Calls++
		a.Calls++
	case KindReward:
		r.Rewards++
		a.Rewards++
	default:
		r.Spans++
		a.Spans++
	}
	if a.FirstSeq == 0 || rec.Seq < a.FirstSeq {
		a.FirstSeq = rec.Seq
	}
	a.LastSeq = max(a.LastSeq, rec.Seq)
	r.LastSeq = max(r.LastSeq, rec.Seq)
	t := rec.Time.UTC()
	if t.After(a.UpdatedAt) {
		a.UpdatedAt = t
	}
	if t.After(r.UpdatedAt) {
		r.UpdatedAt = t
	}
}

// Latest returns the attempt started last: the one whose first record has
// the highest sequence id (a retry's records all come after the attempt it
// replaces). ok is false when the rollout has no attempt.
func (r *RolloutSummary) Latest() (a AttemptSummary, ok bool) {
	for _, x := range r.Attempts {
		if !ok || x.FirstSeq > a.FirstSeq {
			a, ok = x, true
		}
	}
	return a, ok
}

// Rollout returns the summary of one rollout, or ErrNotFound.
func (s *Store) Rollout(ctx context.Context, rid string) (RolloutSummary, error) {
	var sum RolloutSummary
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(rolloutKey(rid))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &sum) })
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return sum, fmt.Errorf("read rollout %q: %w", rid, err)
	}
	return sum, err
}

// Rollouts lists rollout summaries in id order, starting after the id
// after, at most limit of them.
func (s *Store) Rollouts(ctx context.Context, after string, limit int) ([]RolloutSummary, error) {
	var out []RolloutSummary
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRollout}, PrefetchValues: false})
		defer it.Close()
		it.Seek(rolloutKey(after))
		for ; it.Valid() && len(out) < limit; it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			if string(item.Key()[1:]) == after && after != "" {
				continue
			}
			var sum RolloutSummary
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &sum) }); err != nil {
				return err
			}
			out = append(out, sum)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list rollouts: %w", err)
	}
	return out, nil
}

// Records returns the records of one attempt of a rollout, or of all its
// attempts when aid is "", ordered by sequence id (then commit order).
func (s *Store) Records(ctx context.Context, rid, aid string) ([]Record, error) {
	var out []Record
	err := s.db.View(func(txn *badger.Txn) error {
		prefix := recordPrefix(rid, aid)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			rec, err := s.readItem(txn, it.Item())
			if err != nil {
				return err
			}
			out = append(out, rec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read records of %q: %w", rid, err)
	}
	if aid == "" {
		sort.SliceStable(out, func(i, j int) bool {
			if out[i].Seq != out[j].Seq {
				return out[i].Seq < out[j].Seq
			}
			return out[i].Cursor < out[j].Cursor
		})
	}
	return out, nil
}

// Scan returns up to limit records committed after cursor, in commit
// order, stopping early once maxBytes of data were gathered (at least one
// record is always returned). next is the cursor to resume from. With a
// rollout id, only that rollout's records (and attempt's, with aid) are
// returned.
func (s *Store) Scan(ctx context.Context, after uint64, limit, maxBytes int, rid, aid string) (recs []Record, next uint64, err error) {
	next = after
	if rid != "" {
		return s.scanRollout(ctx, after, limit, maxBytes, rid, aid)
	}
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCursor}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		size := 0
		for it.Seek(cursorKey(after + 1)); it.Valid() && len(recs) < limit && (size < maxBytes || len(recs) == 0); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			idx, err := parseIndex(v)
			if err != nil {
				return fmt.Errorf("cursor index at %x: %w", it.Item().Key(), err)
			}
			item, err := txn.Get(idx.key)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue // expired between the two reads
			}
			if err != nil {
				return err
			}
			rec, err := s.readItem(txn, item)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
			size += len(rec.Data)
			next = rec.Cursor
		}
		return nil
	})
	if err != nil {
		return nil, after, fmt.Errorf("scan after cursor %d: %w", after, err)
	}
	return recs, next, nil
}

// scanRollout serves Scan for one rollout: its records are one prefix, read
// whole and ordered by cursor (rollouts are small).
func (s *Store) scanRollout(ctx context.Context, after uint64, limit, maxBytes int, rid, aid string) ([]Record, uint64, error) {
	all, err := s.Records(ctx, rid, aid)
	if err != nil {
		return nil, after, err
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Cursor < all[j].Cursor })
	var out []Record
	size, next := 0, after
	for _, r := range all {
		if r.Cursor <= after {
			continue
		}
		if len(out) >= limit || (size >= maxBytes && len(out) > 0) {
			break
		}
		out = append(out, r)
		size += len(r.Data)
		next = r.Cursor
	}
	return out, next, nil
}

// readItem decodes a record item, joining the parts of a large record.
func (s *Store) readItem(txn *badger.Txn, item *badger.Item) (Record, error) {
	var rec Record
	key := item.KeyCopy(nil)
	value, err := item.ValueCopy(nil)
	if err != nil {
		return rec, err
	}
	if err := decodeRecord(key, value, &rec); err != nil {
		return rec, err
	}
	if len(value) < maxPart {
		return rec, nil
	}
	// A head of maxPart bytes may have parts: the cursor index says.
	ci, err := txn.Get(cursorKey(rec.Cursor))
	if err != nil {
		return rec, fmt.Errorf("cursor index of %d: %w", rec.Cursor, err)
	}
	v, err := ci.ValueCopy(nil)
	if err != nil {
		return rec, fmt.Errorf("cursor index of %d: %w", rec.Cursor, err)
	}
	idx, err := parseIndex(v)
	if err != nil || !bytes.Equal(idx.key, key) {
		return rec, fmt.Errorf("corrupt cursor index of %d", rec.Cursor)
	}
	for p := uint32(1); p <= idx.parts; p++ {
		pi, err := txn.Get(partKey(rec.Cursor, p))
		if err != nil {
			return rec, fmt.Errorf("part %d of record %d: %w", p, rec.Cursor, err)
		}
		part, err := pi.ValueCopy(nil)
		if err != nil {
			return rec, err
		}
		value = append(value, part...)
	}
	return rec, decodeRecord(key, value, &rec)
}
