package store

import "time"

// Stats are figures for /metrics and /admin/state.
type Stats struct {
	LSMBytes         int64         `json:"lsm_bytes"`
	VLogBytes        int64         `json:"vlog_bytes"`
	Cursor           uint64        `json:"cursor"`
	Commits          uint64        `json:"commits"`           // transactions committed
	CommitTime       time.Duration `json:"commit_time_ns"`    // total time spent committing
	CommittedRecords uint64        `json:"committed_records"` // records in those transactions
	// CommitLatency is the distribution of commit durations (for the
	// Prometheus histogram; /admin/state keeps the totals above).
	CommitLatency Histogram `json:"-"`
	// Held are the records past retention kept because a position in
	// Options.HoldFor has not reached them yet (see Sweep).
	RetentionHolders []string `json:"retention_holders,omitempty"`
	HeldRecords      uint64   `json:"held_records"`
	HeldOldestAge    float64  `json:"held_oldest_age_seconds"` // age of the oldest held record; 0 when none
}

// Histogram is a distribution of durations: Counts[i] observations were at
// most Bounds[i] and above the bound before (not cumulative); the last count
// is of those above the last bound.
type Histogram struct {
	Bounds []time.Duration
	Counts []uint64
	Sum    time.Duration
	Count  uint64
}

// commitBuckets bound the commit latency histogram: from a small group
// commit into the page cache (50 µs) to an fsync on a busy disk (1 s).
var commitBuckets = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second,
}

// commitBucket is the index in commitHist of a commit that took d.
func commitBucket(d time.Duration) int {
	for i, b := range commitBuckets {
		if d <= b {
			return i
		}
	}
	return len(commitBuckets)
}

// Stats returns the store's current figures.
func (s *Store) Stats() Stats {
	lsm, vlog := s.db.Size()
	st := Stats{
		LSMBytes: lsm, VLogBytes: vlog, Cursor: s.Cursor(),
		Commits: s.commits.Load(), CommitTime: time.Duration(s.commitNanos.Load()),
		CommittedRecords: s.batchRecords.Load(),
		RetentionHolders: s.opts.HoldFor,
	}
	h := Histogram{Bounds: commitBuckets[:], Counts: make([]uint64, len(s.commitHist)), Sum: st.CommitTime}
	for i := range s.commitHist {
		h.Counts[i] = s.commitHist[i].Load()
		h.Count += h.Counts[i]
	}
	st.CommitLatency = h
	if held := s.held.Load(); held != nil && held.count > 0 {
		st.HeldRecords = held.count
		st.HeldOldestAge = time.Since(held.oldest).Seconds()
	}
	return st
}
