package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// The Responses history: what tokentap keeps of each finished OpenAI
// Responses answer whose request allowed storing it, so that a later
// request naming it in previous_response_id can be translated (package
// responses). tokentap, not vLLM, resolves those ids, so they must survive
// a restart of the sidecar like the records do.
//
//	h | response id -> len(input) u32 | input | output
//
// Entries expire with Retention: a conversation continued after its
// records are gone would have no trace to join anyway.
const prefixResponse = 'h'

func responseKey(id string) []byte {
	k := make([]byte, 0, 1+len(id))
	return append(append(k, prefixResponse), id...)
}

// SetResponseHistory stores the input and output items (JSON arrays) of the
// finished response id, replacing what was stored under id before.
func (s *Store) SetResponseHistory(ctx context.Context, id string, input, output []byte) error {
	if id == "" {
		return errors.New("store response history: empty response id")
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store response history %s: %w", id, err)
	}
	v := make([]byte, 0, 4+len(input)+len(output))
	v = binary.BigEndian.AppendUint32(v, uint32(len(input)))
	v = append(append(v, input...), output...)
	err := s.db.Update(func(txn *badger.Txn) error {
		return txn.SetEntry(s.entry(responseKey(id), v))
	})
	if err != nil {
		return fmt.Errorf("store response history %s: %w", id, err)
	}
	return nil
}

// ResponseHistory returns the input and output items stored under the
// response id, and false when there are none (never stored, or expired).
func (s *Store) ResponseHistory(ctx context.Context, id string) (input, output []byte, ok bool, err error) {
	if s.closed.Load() {
		return nil, nil, false, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, false, fmt.Errorf("read response history %s: %w", id, err)
	}
	v, err := s.meta(responseKey(id))
	if err != nil {
		return nil, nil, false, fmt.Errorf("read response history %s: %w", id, err)
	}
	if v == nil {
		return nil, nil, false, nil
	}
	if len(v) < 4 || uint64(binary.BigEndian.Uint32(v)) > uint64(len(v)-4) {
		return nil, nil, false, fmt.Errorf("read response history %s: malformed entry", id)
	}
	n := 4 + int(binary.BigEndian.Uint32(v))
	return v[4:n:n], v[n:], true, nil
}
