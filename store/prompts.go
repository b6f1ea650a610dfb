package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prompt parents. A call record may hold only the tokens its prompt adds to
// an earlier record of its attempt (Record.PromptParent). The store keeps a
// reverse reference per such child, so that retention, which deletes in
// cursor order and so always takes a parent before its children, can first
// rewrite the children that stay as self-contained records (Options.Rebase).
//
//	p | rid 0 aid 0 | parent seq u64 | child seq u64 | child cursor u64 -> child's k key
const prefixPromptChild = 'p'

// childPrefix is the prefix of the reverse references to a record's
// prompt children.
func childPrefix(rid, aid string, parent uint64) []byte {
	k := make([]byte, 0, 3+len(rid)+len(aid)+8)
	k = append(k, prefixPromptChild)
	k = append(k, rid...)
	k = append(k, 0)
	k = append(k, aid...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, parent)
}

func childKey(rec *Record, cursor uint64) []byte {
	k := childPrefix(rec.RolloutID, rec.AttemptID, rec.PromptParent)
	k = binary.BigEndian.AppendUint64(k, rec.Seq)
	return binary.BigEndian.AppendUint64(k, cursor)
}

// KeepsPromptParents reports whether records may refer to a prompt parent:
// either nothing expires, or retention rewrites the children of the records
// it deletes (Options.Rebase).
func (s *Store) KeepsPromptParents() bool {
	return s.opts.Retention <= 0 || s.opts.Rebase != nil
}

// Retention is how long records are kept (0: forever).
func (s *Store) Retention() time.Duration { return s.opts.Retention }

// Record returns the record with sequence id seq of one attempt (a call's,
// when several records share it), or ErrNotFound.
func (s *Store) Record(ctx context.Context, rid, aid string, seq uint64) (Record, error) {
	var rec Record
	err := s.db.View(func(txn *badger.Txn) error {
		var err error
		rec, err = s.recordBySeq(txn, rid, aid, seq)
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return rec, fmt.Errorf("read record %d of %q/%q: %w", seq, rid, aid, err)
	}
	return rec, err
}

func (s *Store) recordBySeq(txn *badger.Txn, rid, aid string, seq uint64) (Record, error) {
	prefix := binary.BigEndian.AppendUint64(recordPrefix(rid, aid), seq)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	var found *badger.Item
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(k) != len(prefix)+recordKeyTail-8 {
			continue // a longer rollout or attempt id that starts the same way cannot match: ids hold no 0
		}
		if found == nil || Kind(k[len(k)-9]) == KindCall {
			found = item
		}
		if Kind(k[len(k)-9]) == KindCall {
			break
		}
	}
	if found == nil {
		return Record{}, ErrNotFound
	}
	return s.readItem(txn, found)
}

// rebaseChildren rewrites, within the delete transaction txn, the prompt
// children of the record e that are not deleted with it (their cursors are
// not in gone), and deletes the reverse references to them. Ancestors are
// read from snap, the store as it was before this transaction, where every
// one of them still is.
func (s *Store) rebaseChildren(txn, snap *badger.Txn, e indexEntry, gone map[uint64]bool) error {
	rid, rest, ok := cut0(e.key[1:])
	if !ok || len(rest) < 1+recordKeyTail {
		return fmt.Errorf("corrupt record key %q", e.key)
	}
	aid := rest[:len(rest)-recordKeyTail-1]
	seq := binary.BigEndian.Uint64(rest[len(rest)-recordKeyTail:])
	prefix := childPrefix(string(rid), string(aid), seq)
	var refs, children [][]byte
	it := snap.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true})
	for it.Rewind(); it.Valid(); it.Next() {
		v, err := it.Item().ValueCopy(nil)
		if err != nil {
			it.Close()
			return err
		}
		refs = append(refs, it.Item().KeyCopy(nil))
		children = append(children, v)
	}
	it.Close()
	for i, childKey := range children {
		if err := txn.Delete(refs[i]); err != nil {
			return err
		}
		if len(childKey) < recordKeyTail {
			return fmt.Errorf("corrupt prompt child reference %x", refs[i])
		}
		cursor := binary.BigEndian.Uint64(childKey[len(childKey)-recordKeyTail+8:])
		if gone[cursor] {
			continue
		}
		if err := s.rebase(txn, snap, childKey, cursor); err != nil {
			return fmt.Errorf("rewrite record %d whole before its prompt parent %d goes: %w", cursor, e.cursor, err)
		}
	}
	return nil
}

// rebase rewrites one child record whole, in place: same key, same cursor,
// its parts and cursor index rewritten to match.
func (s *Store) rebase(txn, snap *badger.Txn, key []byte, cursor uint64) error {
	item, err := snap.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil // gone already
	}
	if err != nil {
		return err
	}
	child, err := s.readItem(snap, item)
	if err != nil {
		return err
	}
	if s.opts.Rebase == nil {
		s.log.Error().Uint64("cursor", cursor).Msg("a record loses its prompt parent: the store has no Options.Rebase; its prompt can no longer be read")
		return nil
	}
	parent := func(seq uint64) (Record, error) { return s.recordBySeq(snap, child.RolloutID, child.AttemptID, seq) }
	data, err := s.opts.Rebase(child, parent)
	if err != nil {
		return err
	}
	ci, err := snap.Get(cursorKey(cursor))
	if err != nil {
		return fmt.Errorf("cursor index: %w", err)
	}
	iv, err := ci.ValueCopy(nil)
	if err != nil {
		return err
	}
	idx, err := parseIndex(iv)
	if err != nil || !bytes.Equal(idx.key, key) {
		return fmt.Errorf("corrupt cursor index of %d", cursor)
	}
	head, parts := data, 0
	if len(data) > maxPart {
		head = data[:maxPart]
		for off := maxPart; off < len(data); off += maxPart {
			parts++
			if err := txn.SetEntry(s.recordEntry(partKey(cursor, uint32(parts)), data[off:min(off+maxPart, len(data))])); err != nil {
				return err
			}
		}
	}
	for p := uint32(parts + 1); p <= idx.parts; p++ {
		if err := txn.Delete(partKey(cursor, p)); err != nil {
			return err
		}
	}
	if err := txn.SetEntry(s.recordEntry(key, head)); err != nil {
		return err
	}
	// The commit time stays: the record expires when it would have.
	return txn.SetEntry(s.recordEntry(cursorKey(cursor), indexValueAt(idx.committed, key, parts)))
}
