// Package store keeps tokentap's records durably in an embedded Badger
// database: every call, reward and received span under its rollout, attempt
// and sequence id, a global cursor that orders them as they were committed
// (the OTLP outbox and trainers' incremental pulls follow it), per-rollout
// sequence counters that survive restarts, rollout summaries, and retention.
//
// Records are opaque bytes to the store (the exporter puts OTLP spans in
// them). Writes go through one committer goroutine that groups whatever is
// waiting into a single transaction, so concurrent calls share commits
// instead of queueing on them, and cursors are handed out in commit order.
// Append returns once the record is committed: it then survives a crash of
// the process (and a power loss with Options.Sync).
package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/rs/zerolog"
)

// Kind says what a record holds.
type Kind uint8

const (
	KindCall   Kind = 1 // an LLM call traced by the proxy
	KindReward Kind = 2 // a reward posted by an agent
	KindSpan   Kind = 3 // a span received from an agent's own tracer
)

func (k Kind) String() string {
	switch k {
	case KindCall:
		return "call"
	case KindReward:
		return "reward"
	case KindSpan:
		return "span"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record is one stored item.
type Record struct {
	Cursor    uint64 // position in the global commit order, set by Append
	RolloutID string
	AttemptID string
	Seq       uint64 // sequence id within the rollout
	Kind      Kind
	Time      time.Time // when the call or reward ended
	Data      []byte    // the encoded span
	// PromptParent is the sequence id of the record (same rollout and
	// attempt) whose context Data reuses instead of holding the whole
	// prompt; 0 for none. Set by the writer, it lets retention rewrite the
	// record whole before the parent goes (Options.Rebase). It is not read
	// back: the data names its parent itself.
	PromptParent uint64
}

// Options configure Open.
type Options struct {
	Dir       string        // Badger directory; ignored with InMemory
	InMemory  bool          // keep everything in memory only
	Sync      bool          // fsync every commit (survive power loss, not only a crash)
	Retention time.Duration // records expire after this long; 0 keeps them forever
	// HoldFor names the positions (SetPosition) that hold retention back:
	// a record past Retention is deleted only once every one of them has
	// reached its cursor, so a reader that has fallen behind (the OTLP
	// outbox during a collector outage) loses nothing. A position never set
	// holds everything.
	HoldFor []string
	// GCInterval is how often expired data is reclaimed from the value log;
	// 0 means every 5 minutes, or a quarter of a shorter Retention.
	GCInterval time.Duration
	// MaxDisk bounds the bytes of the store's files; at the bound Writable
	// says ErrDiskFull. 0: only the filesystem's free space bounds it.
	MaxDisk int64
	Logger  zerolog.Logger
	// BeforeCommit, when set, runs in the committer before every
	// transaction commits; an error fails the whole batch as a failed
	// commit would. It is the seam that lets tests hold a commit pending
	// (by blocking) or make it fail, to check what agents see meanwhile.
	BeforeCommit func() error
	// Rebase rewrites a record whose data refers to its PromptParent into a
	// self-contained one, reading its ancestors with parent (same rollout
	// and attempt, by sequence id). Retention calls it before deleting a
	// record that still has such children. With Rebase set, records are
	// deleted by the sweep only (no TTL), since a TTL would let a parent go
	// before its child; without it, a store with Retention cannot keep
	// prompt parents (KeepsPromptParents).
	Rebase func(child Record, parent func(seq uint64) (Record, error)) ([]byte, error)

	memTableSize int64 // tests: a small memtable flushes (and so compacts) sooner
}

// Errors.
var (
	ErrClosed          = errors.New("store is closed")
	ErrNotFound        = errors.New("not found")
	ErrAttemptComplete = errors.New("attempt is complete")
)

// Store is the durable record store. Its methods are safe for concurrent use.
type Store struct {
	db        *badger.DB
	opts      Options
	log       zerolog.Logger
	writes    chan *writeReq
	closing   chan struct{}
	stopped   chan struct{} // closed once the committer has answered its last request
	done      sync.WaitGroup
	closeOnce sync.Once
	closed    atomic.Bool
	cursor    atomic.Uint64 // last committed cursor
	// completions is the number of the newest completion log entry
	// (completions.go).
	completions atomic.Uint64

	// rollouts maps a rollout id to its *rolloutState. No lock spans
	// rollouts: the first uses of thousands of new rollouts at the start of
	// an RL step read the store side by side.
	rollouts sync.Map
	// known says which rollouts the store may hold (known.go).
	known knownRollouts

	rolloutReads atomic.Uint64 // rollout states loaded by reading the store
	commits      atomic.Uint64
	commitNanos  atomic.Uint64
	commitHist   [len(commitBuckets) + 1]atomic.Uint64
	batchRecords atomic.Uint64

	sweepMu sync.Mutex // one sweep at a time
	swept   uint64     // cursor the sweep has deleted up to (under sweepMu)
	held    atomic.Pointer[heldRecords]
	oldest  atomic.Int64 // unix ns at or before the commit of every record (noteOldest)
	// reclaimMu: one compaction and value-log GC at a time. Badger refuses
	// a second value-log GC while one runs (ErrRejected), so without it an
	// explicit Reclaim that meets maintain's would give up having freed
	// nothing.
	reclaimMu sync.Mutex

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced on every commit

	summaries map[string]cachedSummary // the committer's own cache

	full     atomic.Pointer[error] // why the store refuses records, nil when it takes them
	diskUsed atomic.Int64
}

// Key layout. Every record key starts with its rollout and attempt so one
// attempt is one prefix scan; ids never contain 0x00 (rollout.ValidateID),
// which separates them.
//
//	k | rid 0 aid 0 | seq u64 | cursor u64      -> record
//	x | cursor u64 | part u32                    -> further parts of a large record
//	c | cursor u64                               -> the record's k key
//	r | rid                                      -> rollout summary
//	m | name                                     -> store metadata (no expiry)
const (
	prefixRecord  = 'k'
	prefixPart    = 'x'
	prefixCursor  = 'c'
	prefixRollout = 'r'
	prefixMeta    = 'm'
)

var metaCursor = []byte("m/cursor")

// maxPart bounds the bytes of one stored value. Badger keeps values in its
// memtables in memory mode and refuses those above 1 MiB, so larger records
// are split.
const maxPart = 768 << 10

// Open opens (or creates) the store.
func Open(ctx context.Context, opts Options) (*Store, error) {
	bo := badger.DefaultOptions(opts.Dir).
		WithLogger(badgerLogger{opts.Logger}).
		WithSyncWrites(opts.Sync).
		// Spans are write-once and read rarely: no compression, no block
		// cache (which only serves compression), a bounded index cache,
		// small memtables, and values beyond 1 KiB in the value log so
		// compaction moves keys, not spans. See go-deps-perf.md §3.
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(32 << 20).
		WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithNumLevelZeroTables(2).
		WithNumLevelZeroTablesStall(4).
		WithValueLogFileSize(64 << 20).
		WithValueThreshold(1 << 10).
		WithNumCompactors(2).
		WithDetectConflicts(false).
		WithMetricsEnabled(false)
	if opts.memTableSize > 0 {
		bo = bo.WithMemTableSize(opts.memTableSize)
	}
	if opts.InMemory {
		bo = bo.WithDir("").WithValueDir("").WithInMemory(true).
			WithMemTableSize(64 << 20).WithValueThreshold(1 << 20)
	}
	db, err := badger.Open(bo)
	if err != nil {
		if opts.InMemory {
			return nil, fmt.Errorf("open in-memory store: %w", err)
		}
		return nil, fmt.Errorf("open store %s: %w", opts.Dir, err)
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = 5 * time.Minute
		if opts.Retention > 0 {
			opts.GCInterval = min(opts.GCInterval, max(opts.Retention/4, 10*time.Second))
		}
	}
	s := &Store{
		db:        db,
		opts:      opts,
		log:       opts.Logger,
		writes:    make(chan *writeReq, 1024),
		closing:   make(chan struct{}),
		stopped:   make(chan struct{}),
		notify:    make(chan struct{}),
		summaries: map[string]cachedSummary{},
	}
	if err := s.loadCursor(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadCompletions(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadKnown(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.noteOldest(0, time.Now()); err != nil {
		db.Close()
		return nil, err
	}
	s.checkDisk()
	s.done.Add(3)
	go s.committer()
	go s.maintain()
	go s.watchDisk()
	return s, nil
}

func (s *Store) loadCursor() error {
	return s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaCursor)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read cursor: %w", err)
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("read cursor: %d bytes, want 8", len(v))
			}
			s.cursor.Store(binary.BigEndian.Uint64(v))
			return nil
		})
	})
}

// Close stops accepting writes, commits what is queued, and closes the
// database. It is safe to call more than once.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		close(s.closing)
		s.done.Wait()
		err = s.db.Close()
	})
	return err
}

// Cursor is the cursor of the last committed record.
func (s *Store) Cursor() uint64 { return s.cursor.Load() }

// WaitCommit returns once a record is committed past cursor after, or when
// ctx ends (with ctx's error) or the store closes (ErrClosed).
func (s *Store) WaitCommit(ctx context.Context, after uint64) error {
	for {
		s.notifyMu.Lock()
		ch := s.notify
		s.notifyMu.Unlock()
		if s.cursor.Load() > after {
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

// committed wakes the WaitCommit callers.
func (s *Store) committed() {
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// Position reads a named position kept by a reader of the cursor (the OTLP
// outbox): 0 when never set. Positions do not expire.
func (s *Store) Position(ctx context.Context, name string) (uint64, error) {
	v, err := s.meta(positionKey(name))
	if err == nil && v != nil && len(v) != 8 {
		err = fmt.Errorf("%d bytes, want 8", len(v))
	}
	if err != nil {
		return 0, fmt.Errorf("read position %q: %w", name, err)
	}
	if v == nil {
		return 0, nil
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetPosition durably records a named position.
func (s *Store) SetPosition(ctx context.Context, name string, pos uint64) error {
	if err := s.setMeta(positionKey(name), binary.BigEndian.AppendUint64(nil, pos)); err != nil {
		return fmt.Errorf("write position %q: %w", name, err)
	}
	return nil
}

func positionKey(name string) []byte { return append([]byte("m/position/"), name...) }

// Setting reads a named operator setting that outlives restarts (the
// policy version): "" when never set.
func (s *Store) Setting(ctx context.Context, name string) (string, error) {
	v, err := s.meta(settingKey(name))
	if err != nil {
		return "", fmt.Errorf("read setting %q: %w", name, err)
	}
	return string(v), nil
}

// SetSetting durably records a named setting; "" removes it.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	var v []byte
	if value != "" {
		v = []byte(value)
	}
	if err := s.setMeta(settingKey(name), v); err != nil {
		return fmt.Errorf("write setting %q: %w", name, err)
	}
	return nil
}

func settingKey(name string) []byte { return append([]byte("m/setting/"), name...) }

// meta reads a metadata key (positions, settings): nil when absent. Meta
// keys do not expire.
func (s *Store) meta(key []byte) ([]byte, error) {
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		v, err = item.ValueCopy(nil)
		return err
	})
	return v, err
}

// setMeta writes a metadata key, or deletes it when value is nil.
func (s *Store) setMeta(key, value []byte) error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.db.Update(func(txn *badger.Txn) error {
		if value == nil {
			return txn.Delete(key)
		}
		return txn.Set(key, value)
	})
}

// Append commits records and returns once they are durable (see the package
// doc), setting each one's Cursor. The records of one call commit together.
// Cancelling ctx stops the wait, not the commit.
func (s *Store) Append(ctx context.Context, recs ...*Record) error {
	if len(recs) == 0 {
		return nil
	}
	return s.submit(ctx, &writeReq{records: recs})
}

// Complete marks an attempt complete and returns its summary. It fails with
// ErrAttemptComplete when it already was. The caller makes sure no call of
// the attempt is still in flight.
func (s *Store) Complete(ctx context.Context, rid, aid string) (AttemptSummary, error) {
	err := s.withState(ctx, rid, func(st *rolloutState) error {
		if st.complete[aid] {
			return ErrAttemptComplete
		}
		return nil
	})
	if err != nil {
		return AttemptSummary{}, err
	}
	req := &writeReq{complete: &completeReq{rid: rid, aid: aid}}
	if err := s.submit(ctx, req); err != nil {
		return AttemptSummary{}, err
	}
	return req.complete.result, nil
}

func (s *Store) submit(ctx context.Context, req *writeReq) error {
	if s.closed.Load() {
		return ErrClosed
	}
	req.done = make(chan error, 1)
	select {
	case s.writes <- req:
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-s.stopped:
		// The committer answered everything it took before it stopped; a
		// request that reached the queue after its last look never will be.
		select {
		case err := <-req.done:
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// maintain deletes the records retention let go (sweep), reclaims the
// space of deleted and expired records, and forgets the in-memory state of
// rollouts idle for a long time.
func (s *Store) maintain() {
	defer s.done.Done()
	t := time.NewTicker(min(s.opts.GCInterval, s.sweepInterval()))
	defer t.Stop()
	lastGC := time.Now()
	// Expired keys leave the LSM tree only when compaction reaches them, and
	// only then does the value log know its records are garbage: compact
	// everything once an hour, or once per retention period when that is
	// shorter, so the disk never holds much more than the retention window.
	compactEvery := time.Hour
	if s.opts.Retention > 0 {
		compactEvery = min(compactEvery, s.opts.Retention)
	}
	lastCompact := time.Now()
	for {
		select {
		case <-s.closing:
			return
		case now := <-t.C:
			if err := s.sweep(now); err != nil {
				s.log.Warn().Err(err).Msg("delete records past retention")
			}
			if now.Sub(lastGC) < s.opts.GCInterval {
				continue
			}
			lastGC = now
			compact := now.Sub(lastCompact) >= compactEvery
			if compact {
				lastCompact = now
			}
			s.reclaim(compact)
			s.forgetIdle(now.Add(-time.Hour))
		}
	}
}

// Reclaim deletes the records past retention that no holding position
// needs, compacts the whole LSM tree, which drops deleted and expired keys,
// then rewrites the value log files that became mostly garbage, giving their
// space back. maintain runs it periodically; it is exported for operators'
// tools and tests.
func (s *Store) Reclaim(ctx context.Context) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.sweep(time.Now()); err != nil {
		return err
	}
	s.reclaim(true)
	return nil
}

func (s *Store) reclaim(compact bool) {
	if s.opts.InMemory {
		return
	}
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	if compact {
		if err := s.db.Flatten(2); err != nil {
			s.log.Warn().Err(err).Msg("compact the store")
		}
	}
	for i := 0; i < 64; i++ {
		select {
		case <-s.closing:
			return
		default:
		}
		if err := s.db.RunValueLogGC(0.5); err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				s.log.Warn().Err(err).Msg("value log GC")
			}
			return
		}
	}
}

// badgerLogger sends Badger's log lines to zerolog, one level down: Badger
// is chatty at INFO about routine compactions.
type badgerLogger struct{ log zerolog.Logger }

func (l badgerLogger) Errorf(f string, a ...any) { l.emit(l.log.Error(), f, a) }
func (l badgerLogger) Warningf(f string, a ...any) {
	if strings.Contains(f, "doCompact") {
		// "Unable to fill tables" and kin: a compaction that found
		// nothing to do, routine when Reclaim flattens the tree.
		l.emit(l.log.Debug(), f, a)
		return
	}
	l.emit(l.log.Warn(), f, a)
}
func (l badgerLogger) Infof(f string, a ...any)  { l.emit(l.log.Debug(), f, a) }
func (l badgerLogger) Debugf(f string, a ...any) { l.emit(l.log.Trace(), f, a) }

func (l badgerLogger) emit(ev *zerolog.Event, f string, a []any) {
	if ev == nil {
		return // level disabled: skip the formatting
	}
	ev.Str("component", "badger").Msg(strings.TrimSpace(fmt.Sprintf(f, a...)))
}
