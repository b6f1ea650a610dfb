package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// writeReq is one Append or Complete waiting for the committer.
type writeReq struct {
	records  []*Record
	complete *completeReq
	drift    *driftReq
	done     chan error
}

type driftReq struct {
	rid, aid string
	counts   map[string]int
}

type completeReq struct {
	rid, aid string
	result   AttemptSummary
}

// maxBatch bounds the requests grouped into one transaction.
const maxBatch = 256

// committer is the only writer. It takes every request waiting, commits
// them in one transaction, and answers them all: group commit.
func (s *Store) committer() {
	defer s.done.Done()
	defer close(s.stopped)
	batch := make([]*writeReq, 0, maxBatch)
	for {
		select {
		case req := <-s.writes:
			batch = append(batch[:0], req)
		case <-s.closing:
			// Commit what was queued before Close, then stop.
			for {
				select {
				case req := <-s.writes:
					s.commit([]*writeReq{req})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case req := <-s.writes:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// commit writes a batch and answers every request in it.
func (s *Store) commit(batch []*writeReq) {
	start := time.Now()
	for len(batch) > 0 {
		n, errs, err := s.commitTxn(batch)
		for i, req := range batch[:n] {
			if errs[i] != nil {
				req.done <- errs[i]
			} else {
				req.done <- err
			}
		}
		batch = batch[n:]
	}
	took := time.Since(start)
	s.commits.Add(1)
	s.commitNanos.Add(uint64(took))
	s.commitHist[commitBucket(took)].Add(1)
}

// commitTxn commits the longest head of batch that fits in one transaction
// and returns its length, the errors of requests that failed on their own
// (a repeated Complete, a record too large), and the commit's error.
func (s *Store) commitTxn(batch []*writeReq) (n int, errs []error, err error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	errs = make([]error, len(batch))
	cursor := s.cursor.Load()
	completion := s.completions.Load()
	summaries := map[string]*RolloutSummary{}
	for i, req := range batch {
		if req.complete != nil {
			if err := s.setComplete(txn, summaries, req.complete, completion+1); errors.Is(err, ErrAttemptComplete) {
				errs[i] = err
				continue
			} else if err != nil {
				return s.stagingFailed(batch, i, err)
			}
			completion++
			continue
		}
		if d := req.drift; d != nil {
			sum, err := s.summaryIn(txn, summaries, d.rid)
			if err != nil {
				return s.stagingFailed(batch, i, err)
			}
			sum.attempt(d.aid).Drift = d.counts
			continue
		}
		next, err := s.setRecords(txn, summaries, req.records, cursor)
		if err != nil {
			return s.stagingFailed(batch, i, err)
		}
		cursor = next
	}
	// Summaries are rewritten once per transaction, whatever the number of
	// records they gained.
	for rid, sum := range summaries {
		s.known.add(rid) // before the commit: a load must never miss it
		v, err := json.Marshal(sum)
		if err != nil {
			return len(batch), errs, fmt.Errorf("encode summary of %q: %w", rid, err)
		}
		if err := txn.SetEntry(s.entry(rolloutKey(rid), v)); err != nil {
			return s.stagingFailed(batch, len(batch), err)
		}
	}
	var c [8]byte
	binary.BigEndian.PutUint64(c[:], cursor)
	if err := txn.Set(metaCursor, c[:]); err != nil {
		return s.stagingFailed(batch, len(batch), err)
	}
	if hook := s.opts.BeforeCommit; hook != nil {
		if err := hook(); err != nil {
			return len(batch), errs, fmt.Errorf("commit: %w", err)
		}
	}
	if err := txn.Commit(); err != nil {
		return len(batch), errs, fmt.Errorf("commit: %w", err)
	}
	s.cursor.Store(cursor)
	s.completions.Store(completion)
	s.committed()
	s.cacheSummaries(summaries)
	records := 0
	for _, req := range batch {
		records += len(req.records)
	}
	s.batchRecords.Add(uint64(records))
	s.publish(summaries)
	return len(batch), errs, nil
}

// stagingFailed handles a request that could not be staged (typically
// badger.ErrTxnTooBig): the transaction holds part of it, so it is thrown
// away and the requests before it are committed in a fresh one. A request
// that fails alone is answered with the error.
func (s *Store) stagingFailed(batch []*writeReq, i int, err error) (int, []error, error) {
	if i == len(batch) {
		i-- // the summaries or the cursor did not fit: retry with one request fewer
	}
	if i == 0 {
		return 1, []error{fmt.Errorf("stage record: %w", err)}, nil
	}
	return s.commitTxn(batch[:i])
}

// setRecords stages one request's records, assigning cursors after cursor.
func (s *Store) setRecords(txn *badger.Txn, summaries map[string]*RolloutSummary, recs []*Record, cursor uint64) (uint64, error) {
	now := time.Now()
	for _, rec := range recs {
		cursor++
		key := recordKey(rec, cursor)
		// The value is the data itself, not a copy: Badger only reads it
		// until the transaction commits, and Append returns after that.
		value := rec.Data
		head, parts := value, 0
		if len(value) > maxPart {
			head = value[:maxPart]
			for off := maxPart; off < len(value); off += maxPart {
				part := value[off:min(off+maxPart, len(value))]
				parts++
				if err := txn.SetEntry(s.recordEntry(partKey(cursor, uint32(parts)), part)); err != nil {
					return cursor, err
				}
			}
		}
		if err := txn.SetEntry(s.recordEntry(key, head)); err != nil {
			return cursor, err
		}
		// The cursor index also says when the record was committed (the
		// sweep expires records in cursor order) and how many parts follow.
		if err := txn.SetEntry(s.recordEntry(cursorKey(cursor), indexValue(now, key, parts))); err != nil {
			return cursor, err
		}
		// A record that refers to a prompt parent is listed under it, so
		// that retention rewrites it whole before the parent goes.
		if rec.PromptParent != 0 && rec.PromptParent != rec.Seq {
			if err := txn.SetEntry(s.recordEntry(childKey(rec, cursor), key)); err != nil {
				return cursor, err
			}
		}
		sum, err := s.summaryIn(txn, summaries, rec.RolloutID)
		if err != nil {
			return cursor, err
		}
		sum.add(rec)
	}
	// Cursors are only taken once the request is staged whole.
	for i, rec := range recs {
		rec.Cursor = cursor - uint64(len(recs)-1-i)
	}
	return cursor, nil
}

// setComplete marks an attempt complete and stages its completion log entry
// as number n.
func (s *Store) setComplete(txn *badger.Txn, summaries map[string]*RolloutSummary, c *completeReq, n uint64) error {
	sum, err := s.summaryIn(txn, summaries, c.rid)
	if err != nil {
		return err
	}
	a := sum.attempt(c.aid)
	if a.Complete {
		return ErrAttemptComplete
	}
	a.Complete = true
	a.CompletedAt = time.Now().UTC()
	sum.UpdatedAt = a.CompletedAt
	c.result = *a
	return s.stageCompletion(txn, n, c.rid, c.aid, a.CompletedAt)
}

// summaryIn returns the summary of rid as this transaction sees it.
func (s *Store) summaryIn(txn *badger.Txn, summaries map[string]*RolloutSummary, rid string) (*RolloutSummary, error) {
	if sum, ok := summaries[rid]; ok {
		return sum, nil
	}
	if c, ok := s.summaries[rid]; ok && time.Since(c.at) < summaryCacheAge {
		sum := c.sum.clone()
		summaries[rid] = sum
		return sum, nil
	}
	sum := &RolloutSummary{RolloutID: rid}
	item, err := txn.Get(rolloutKey(rid))
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return nil, fmt.Errorf("read summary of %q: %w", rid, err)
	default:
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, sum) }); err != nil {
			return nil, fmt.Errorf("read summary of %q: %w", rid, err)
		}
	}
	summaries[rid] = sum
	return sum, nil
}

// summaryCacheAge bounds how long the committer trusts a summary it wrote
// without reading it back (a summary may expire with its rollout).
const summaryCacheAge = time.Minute

// cachedSummary is a rollout summary as the committer last wrote it.
type cachedSummary struct {
	sum *RolloutSummary
	at  time.Time
}

// cacheSummaries remembers committed summaries, so that the next commit of
// an active rollout need not read and decode its summary again. Only the
// committer goroutine touches the cache.
func (s *Store) cacheSummaries(summaries map[string]*RolloutSummary) {
	if len(s.summaries) > 4096 {
		clear(s.summaries)
	}
	now := time.Now()
	for rid, sum := range summaries {
		s.summaries[rid] = cachedSummary{sum: sum, at: now}
	}
}

func (r *RolloutSummary) clone() *RolloutSummary {
	c := *r
	c.Attempts = append([]AttemptSummary(nil), r.Attempts...)
	return &c
}

// publish brings the in-memory rollout states up to date with what was
// just committed.
func (s *Store) publish(summaries map[string]*RolloutSummary) {
	for rid, sum := range summaries {
		v, ok := s.rollouts.Load(rid)
		if !ok {
			continue // loaded from the summary on first use
		}
		st := v.(*rolloutState)
		st.mu.Lock()
		st.persisted = max(st.persisted, sum.LastSeq)
		st.allocated = max(st.allocated, sum.LastSeq)
		for _, a := range sum.Attempts {
			if a.Complete {
				st.complete[a.AttemptID] = true
			}
		}
		st.mu.Unlock()
	}
}

// entry is a key that expires with Retention: rollout summaries. A rollout
// whose records are held past retention may lose its summary; its sequence
// counter then comes from the records themselves (loadRollout).
func (s *Store) entry(key, value []byte) *badger.Entry {
	e := badger.NewEntry(key, value)
	if s.opts.Retention > 0 {
		e = e.WithTTL(s.opts.Retention)
	}
	return e
}

func recordPrefix(rid, aid string) []byte {
	k := make([]byte, 0, 3+len(rid)+len(aid)+16)
	k = append(k, prefixRecord)
	k = append(k, rid...)
	k = append(k, 0)
	if aid != "" {
		k = append(k, aid...)
		k = append(k, 0)
	}
	return k
}

// recordKey is the key of a record: its rollout, attempt, sequence id and
// cursor (which order it), then what it is: version, kind, end time.
func recordKey(r *Record, cursor uint64) []byte {
	k := recordPrefix(r.RolloutID, "")
	k = append(k, r.AttemptID...)
	k = append(k, 0)
	k = binary.BigEndian.AppendUint64(k, r.Seq)
	k = binary.BigEndian.AppendUint64(k, cursor)
	k = append(k, recordVersion, byte(r.Kind))
	return binary.BigEndian.AppendUint64(k, uint64(r.Time.UnixNano()))
}

// recordKeyTail is the size of what follows the ids in a record key.
const recordKeyTail = 8 + 8 + 1 + 1 + 8

func cursorKey(cursor uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixCursor}, cursor)
}

func partKey(cursor uint64, part uint32) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixPart}, cursor)
	return binary.BigEndian.AppendUint32(k, part)
}

func rolloutKey(rid string) []byte { return append([]byte{prefixRollout}, rid...) }

// recordVersion is the layout of record keys and values: version 1 keeps
// the span bytes as the value, the rest in the key.
const recordVersion = 1

// decodeRecord fills r from a key and a value (all parts joined).
func decodeRecord(key, value []byte, r *Record) error {
	if len(key) < 1+2+recordKeyTail {
		return fmt.Errorf("corrupt record key %q", key)
	}
	tail := key[len(key)-recordKeyTail:]
	rid, aid, ok := cut0(key[1 : len(key)-recordKeyTail])
	if !ok || len(aid) == 0 || aid[len(aid)-1] != 0 || tail[16] != recordVersion {
		return fmt.Errorf("corrupt record key %q", key)
	}
	r.RolloutID = string(rid)
	r.AttemptID = string(aid[:len(aid)-1])
	r.Seq = binary.BigEndian.Uint64(tail[0:8])
	r.Cursor = binary.BigEndian.Uint64(tail[8:16])
	r.Kind = Kind(tail[17])
	r.Time = time.Unix(0, int64(binary.BigEndian.Uint64(tail[18:26]))).UTC()
	r.Data = value
	return nil
}

func cut0(b []byte) (before, after []byte, ok bool) {
	for i, c := range b {
		if c == 0 {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}
