package store_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// A call stored as a delta outlives its prompt parent: retention deletes
// the parent in cursor order and rewrites the child whole first, in the
// same transaction, so every call left reads back with its whole prompt,
// and grand-children still resolve through the rewritten child.
func TestPromptParentExpiresFirst(t *testing.T) {
	for _, hold := range [][]string{nil, {"outbox"}} {
		t.Run(fmt.Sprintf("hold %v", hold), func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, store.Options{
				Dir: t.TempDir(), Retention: 4 * time.Second, HoldFor: hold, Rebase: exporter.Rebase, Logger: zerolog.Nop(),
			})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if !st.KeepsPromptParents() {
				t.Fatal("a store with Rebase does not keep prompt parents")
			}
			rec := exporter.NewRecorder(st, true, "test")
			key := rollout.Key{RolloutID: "r", AttemptID: "0"}
			var prompt []int64
			var prompts [][]int64
			record := func(from, to int) {
				for seq := from; seq <= to; seq++ {
					for i := range 200 {
						prompt = append(prompt, int64(seq*1000+i))
					}
					answer := []int64{int64(seq), 1, 2}
					prompts = append(prompts, append([]int64(nil), prompt...))
					c := &exporter.Call{
						Key: key, Seq: uint64(seq), Path: "/v1/chat/completions",
						Request:  tokenids.Request{Endpoint: tokenids.Chat, N: 1, Prompts: 1},
						Response: tokenids.Result{PromptTokenIDs: prompts[len(prompts)-1], Choices: []tokenids.Choice{{TokenIDs: answer}}},
						Status:   exporter.StatusOK, HTTPStatus: 200, Start: time.Now(), End: time.Now(), Valid: true,
					}
					if err := rec.RecordCall(ctx, c); err != nil {
						t.Fatal(err)
					}
					prompt = append(prompt, answer...)
				}
			}
			record(1, 3)
			time.Sleep(1200 * time.Millisecond) // call 3 stays young enough to be a parent
			record(4, 6)
			recs, _ := st.Records(ctx, "r", "0")
			if len(recs) != 6 || !exporter.IsDelta(recs[3]) || !exporter.IsDelta(recs[4]) {
				t.Fatalf("before the sweep: %d records, call 4 delta %v", len(recs), len(recs) > 3 && exporter.IsDelta(recs[3]))
			}
			if hold != nil {
				st.SetPosition(ctx, "outbox", st.Cursor())
			}
			// Calls 1-3 go past retention, 4-6 do not (the store's own
			// sweep may run meanwhile: the same path).
			time.Sleep(3 * time.Second)
			if err := st.Reclaim(ctx); err != nil {
				t.Fatal(err)
			}
			recs, err = st.Records(ctx, "r", "0")
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != 3 || recs[0].Seq != 4 {
				t.Fatalf("after the sweep: %d records, want calls 4-6", len(recs))
			}
			if exporter.IsDelta(recs[0]) || !exporter.IsDelta(recs[1]) {
				t.Errorf("call 4 should be whole now (%v), call 5 still a delta (%v)", exporter.IsDelta(recs[0]), exporter.IsDelta(recs[1]))
			}
			res := exporter.NewResolver(nil)
			res.Add(recs...)
			for _, r := range recs {
				data, err := res.Full(ctx, r)
				if err != nil {
					t.Fatal(err)
				}
				_, sp, err := exporter.DecodeRecord(data)
				if err != nil {
					t.Fatal(err)
				}
				if got := exporter.CallFromSpan(sp).Response.PromptTokenIDs; !reflect.DeepEqual(got, prompts[r.Seq-1]) {
					t.Errorf("call %d: prompt of %d tokens, want %d", r.Seq, len(got), len(prompts[r.Seq-1]))
				}
			}
			// Gone by seq too; the rest by seq from the store.
			if _, err := st.Record(ctx, "r", "0", 3); err != store.ErrNotFound {
				t.Errorf("record 3 after the sweep: %v", err)
			}
			if _, err := exporter.AppendTracesFrom(ctx, nil, recs[2:], st); err != nil {
				t.Errorf("export of call 6 alone: %v", err)
			}
		})
	}
}
