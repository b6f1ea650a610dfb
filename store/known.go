package store

import (
	"fmt"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// knownRollouts is a Bloom filter of the rollouts whose summary the store
// may hold. A rollout it has never seen starts at sequence 1 without a
// read: every read transaction waits for the commit in flight (Badger's
// read watermark), which under load costs each new rollout's first call
// milliseconds. Every summary the committer writes is added before its
// commit, and nothing is ever removed, so the filter only errs towards a
// read (about 1% of new rollouts once it has seen 800,000).
type knownRollouts struct {
	bits [knownWords]atomic.Uint64
}

const (
	knownWords  = 1 << 17 // 1 MiB of bits
	knownHashes = 6
)

// positions are the filter's bits for rid, by double hashing.
func (k *knownRollouts) positions(rid string, f func(word int, bit uint64)) {
	h := xxhash.Sum64String(rid)
	h1, h2 := h&0xFFFFFFFF, h>>32|1
	for i := range uint64(knownHashes) {
		p := (h1 + i*h2) % (knownWords * 64)
		f(int(p/64), 1<<(p%64))
	}
}

func (k *knownRollouts) add(rid string) {
	k.positions(rid, func(w int, b uint64) {
		if k.bits[w].Load()&b == 0 {
			k.bits[w].Or(b)
		}
	})
}

// mayHold reports whether the store may hold a summary of rid.
func (k *knownRollouts) mayHold(rid string) bool {
	all := true
	k.positions(rid, func(w int, b uint64) { all = all && k.bits[w].Load()&b != 0 })
	return all
}

// loadKnown adds the rollouts whose summaries the store holds, reading
// keys only.
func (s *Store) loadKnown() error {
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{prefixRollout}})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			s.known.add(string(it.Item().Key()[1:]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list the rollouts of the store: %w", err)
	}
	return nil
}
