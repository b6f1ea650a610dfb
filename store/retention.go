package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Retention. Without Options.HoldFor, records get Badger's TTL and expire on
// their own, Retention after their commit. With holding positions they are
// written without TTL and the sweep deletes them: in cursor order, those
// committed more than Retention ago whose cursor every holding position has
// reached. The sweep also runs without holders, so records written without
// TTL under an earlier configuration still go. Rollout summaries keep their
// TTL either way (see loadRollout for the sequence counter).

// heldRecords is what the last sweep found past retention but still needed.
type heldRecords struct {
	count  uint64    // by cursor: an upper bound if some of them expired on their own
	oldest time.Time // commit time of the first of them
}

// sweepBatch bounds the records deleted in one transaction.
const sweepBatch = 512

// recordEntry is a record's key (record, part, cursor index, prompt child
// reference): it expires by TTL only when no position holds retention and
// no record's prompt parent must outlive it (Options.Rebase).
func (s *Store) recordEntry(key, value []byte) *badger.Entry {
	e := badger.NewEntry(key, value)
	if s.opts.Retention > 0 && len(s.opts.HoldFor) == 0 && s.opts.Rebase == nil {
		e = e.WithTTL(s.opts.Retention)
	}
	return e
}

// Holds reports whether the named position holds retention back.
func (s *Store) Holds(name string) bool { return slices.Contains(s.opts.HoldFor, name) }

// sweepInterval is how often maintain sweeps: often enough that a record
// outlives its retention by little once it is no longer held.
func (s *Store) sweepInterval() time.Duration {
	if s.opts.Retention <= 0 {
		return time.Hour
	}
	return min(max(s.opts.Retention/8, time.Second), time.Minute)
}

// Cursor index values. Version 2: indexV2, commit time (unix ns), part
// count, record key. Version 1 (written before retention could be held) is
// the record key then the part count; record keys start with prefixRecord,
// which tells them apart.
const indexV2 = 0x02

type indexEntry struct {
	cursor    uint64
	key       []byte // the record's key
	parts     uint32
	committed int64 // unix ns; for version 1, the record's own time
}

func indexValue(committed time.Time, key []byte, parts int) []byte {
	return indexValueAt(committed.UnixNano(), key, parts)
}

func indexValueAt(committed int64, key []byte, parts int) []byte {
	v := make([]byte, 0, 1+8+4+len(key))
	v = append(v, indexV2)
	v = binary.BigEndian.AppendUint64(v, uint64(committed))
	v = binary.BigEndian.AppendUint32(v, uint32(parts))
	return append(v, key...)
}

func parseIndex(v []byte) (indexEntry, error) {
	var e indexEntry
	switch {
	case len(v) > 13 && v[0] == indexV2:
		e.committed = int64(binary.BigEndian.Uint64(v[1:9]))
		e.parts = binary.BigEndian.Uint32(v[9:13])
		e.key = v[13:]
	case len(v) > 4+recordKeyTail && v[0] == prefixRecord:
		e.key = v[:len(v)-4]
		e.parts = binary.BigEndian.Uint32(v[len(v)-4:])
		e.committed = int64(binary.BigEndian.Uint64(e.key[len(e.key)-8:]))
	default:
		return e, fmt.Errorf("corrupt cursor index value (%d bytes)", len(v))
	}
	return e, nil
}

// holdPosition is the lowest of the holding positions: records after it
// are not deleted. MaxUint64 when nothing holds retention.
func (s *Store) holdPosition(ctx context.Context) (uint64, error) {
	hold := uint64(math.MaxUint64)
	for _, name := range s.opts.HoldFor {
		pos, err := s.Position(ctx, name)
		if err != nil {
			return 0, err
		}
		hold = min(hold, pos)
	}
	return hold, nil
}

// sweep deletes, in cursor order and in bounded transactions, the records
// committed before now-Retention that every holding position has passed,
// then measures what is held. Each record goes whole (its key, parts and
// cursor index) in one transaction, so a crash mid-sweep leaves no dangling
// index entry; the next sweep carries on.
func (s *Store) sweep(now time.Time) error {
	if s.opts.Retention <= 0 {
		return nil
	}
	s.sweepMu.Lock()
	defer s.sweepMu.Unlock()
	hold, err := s.holdPosition(context.Background())
	if err != nil {
		return err
	}
	cutoff := now.Add(-s.opts.Retention).UnixNano()
	for {
		select {
		case <-s.closing:
			return nil
		default:
		}
		batch, err := s.sweepCandidates(s.swept, hold, cutoff)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		if err := s.deleteRecords(batch); err != nil {
			return err
		}
		s.swept = batch[len(batch)-1].cursor
		if len(batch) < sweepBatch {
			break
		}
	}
	if err := s.noteOldest(s.swept, now); err != nil {
		return err
	}
	held := heldRecords{}
	if len(s.opts.HoldFor) > 0 {
		if held, err = s.measureHeld(max(s.swept, hold), cutoff); err != nil {
			return err
		}
	}
	s.held.Store(&held)
	return nil
}

// sweepCandidates lists up to sweepBatch records after cursor after that
// may go: at or before hold, committed at or before cutoff.
func (s *Store) sweepCandidates(after, hold uint64, cutoff int64) ([]indexEntry, error) {
	var out []indexEntry
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCursor}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(cursorKey(after + 1)); it.Valid() && len(out) < sweepBatch; it.Next() {
			e, err := readIndex(it.Item())
			if err != nil {
				return err
			}
			if e.cursor > hold || e.committed > cutoff {
				return nil
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find records past retention: %w", err)
	}
	return out, nil
}

func readIndex(item *badger.Item) (indexEntry, error) {
	k := item.Key()
	if len(k) != 9 {
		return indexEntry{}, fmt.Errorf("corrupt cursor index key %x", k)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return indexEntry{}, err
	}
	e, err := parseIndex(v)
	if err != nil {
		return e, fmt.Errorf("cursor index at %x: %w", k, err)
	}
	e.cursor = binary.BigEndian.Uint64(k[1:])
	return e, nil
}

// deleteRecords deletes the records in batch, each whole in one
// transaction, as many per transaction as fit.
func (s *Store) deleteRecords(batch []indexEntry) error {
	for len(batch) > 0 {
		n, err := s.deleteTxn(batch)
		if err != nil {
			return fmt.Errorf("delete records past retention: %w", err)
		}
		batch = batch[n:]
	}
	return nil
}

func (s *Store) deleteTxn(batch []indexEntry) (int, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	// The records' prompt children that stay are rewritten whole first,
	// in cursor order, from the store as it was before any deletion here.
	snap := s.db.NewTransaction(false)
	defer snap.Discard()
	gone := make(map[uint64]bool, len(batch))
	for _, e := range batch {
		gone[e.cursor] = true
	}
	for i, e := range batch {
		err := s.rebaseChildren(txn, snap, e, gone)
		if err == nil {
			err = txn.Delete(e.key)
		}
		for p := uint32(1); p <= e.parts && err == nil; p++ {
			err = txn.Delete(partKey(e.cursor, p))
		}
		if err == nil {
			err = txn.Delete(cursorKey(e.cursor))
		}
		if errors.Is(err, badger.ErrTxnTooBig) && i > 0 {
			// This record does not fit whole: commit the ones before it alone.
			txn.Discard()
			snap.Discard()
			return s.deleteTxn(batch[:i])
		}
		if err != nil {
			return 0, err
		}
	}
	return len(batch), txn.Commit()
}

// measureHeld finds the records after cursor from committed at or before
// cutoff. Commit times grow with cursors, so they are a run of cursors found
// by bisection rather than by reading them all (an outage can hold
// millions).
func (s *Store) measureHeld(from uint64, cutoff int64) (heldRecords, error) {
	var held heldRecords
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCursor}})
		defer it.Close()
		at := func(c uint64) (indexEntry, bool, error) {
			it.Seek(cursorKey(c))
			if !it.Valid() {
				return indexEntry{}, false, nil
			}
			e, err := readIndex(it.Item())
			return e, err == nil, err
		}
		first, ok, err := at(from + 1)
		if err != nil || !ok || first.committed > cutoff {
			return err
		}
		lo, hi := first.cursor, max(s.Cursor(), first.cursor)
		for lo < hi {
			mid := lo + (hi-lo+1)/2
			e, ok, err := at(mid)
			if err != nil {
				return err
			}
			if ok && e.cursor <= hi && e.committed <= cutoff {
				lo = e.cursor
			} else {
				hi = mid - 1
			}
		}
		held = heldRecords{count: lo - first.cursor + 1, oldest: time.Unix(0, first.committed)}
		return nil
	})
	if err != nil {
		return held, fmt.Errorf("measure held records: %w", err)
	}
	return held, nil
}

// loadRollout reads what a rollout's in-memory state starts from: the last
// sequence id and the completed attempts. Its summary says, or, when the
// summary expired while its records were held past retention, the records
// do: a sequence id is never handed out twice while the rollout's records
// are retained.
func (s *Store) loadRollout(rid string) (last uint64, complete []string, err error) {
	if !s.known.mayHold(rid) && !s.mayOutliveSummaries(time.Now()) {
		return 0, nil, nil // a new rollout, known without a read
	}
	s.rolloutReads.Add(1)
	err = s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(rolloutKey(rid))
		if err == nil {
			var sum RolloutSummary
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &sum) }); err != nil {
				return err
			}
			for _, a := range sum.Attempts {
				if a.Complete {
					complete = append(complete, a.AttemptID)
				}
			}
			last = sum.LastSeq
			return nil
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if !s.mayOutliveSummaries(time.Now()) {
			return nil // the common case, and cheap: a new rollout
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: recordPrefix(rid, "")})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) >= recordKeyTail {
				last = max(last, binary.BigEndian.Uint64(k[len(k)-recordKeyTail:]))
			}
		}
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("read rollout %q: %w", rid, err)
	}
	return last, complete, nil
}

// mayOutliveSummaries reports whether a record may have passed its
// retention, and so may be held (or not yet swept) while its rollout's
// summary expired. It is false while every record is younger than
// Retention, which spares the first use of a new rollout a scan.
func (s *Store) mayOutliveSummaries(now time.Time) bool {
	return s.opts.Retention > 0 && now.Add(-s.opts.Retention).UnixNano() >= s.oldest.Load()
}

// noteOldest sets the lower bound of the commit times of the records after
// cursor after: the first one's (commit times grow with cursors), or now
// when there is none (later records are committed after now).
func (s *Store) noteOldest(after uint64, now time.Time) error {
	oldest := now.UnixNano()
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixCursor}})
		defer it.Close()
		it.Seek(cursorKey(after + 1))
		if !it.Valid() {
			return nil
		}
		e, err := readIndex(it.Item())
		if err != nil {
			return err
		}
		oldest = min(oldest, e.committed)
		return nil
	})
	if err != nil {
		return fmt.Errorf("find the oldest record: %w", err)
	}
	s.oldest.Store(oldest)
	return nil
}
