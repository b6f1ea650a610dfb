package exporter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// conversation is a multi-turn chat: each prompt is the previous prompt,
// its answer and added new tokens; the messages grow the same way, with
// the uneven separators agents send.
func conversation(key rollout.Key, turns, added, answer int) []*Call {
	rng := rand.New(rand.NewPCG(uint64(len(key.RolloutID)), 7))
	ids := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = rng.Int64N(150000)
		}
		return out
	}
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var calls []*Call
	var prompt []int64
	msgs := []string{`{"role":"system","content":"` + strings.Repeat("be brief. ", 40) + `"}`}
	for turn := range turns {
		prompt = append(append([]int64(nil), prompt...), ids(added)...)
		msgs = append(msgs, fmt.Sprintf(`{"role":"user","content":"turn %d: %s"}`, turn, strings.Repeat("é", 50)))
		input := "[ " + strings.Join(msgs, ",\n  ") + " ]"
		out := ids(answer)
		lps := make([]float64, answer)
		for i := range lps {
			lps[i] = -float64(i) / 100
		}
		t0 := start.Add(time.Duration(turn) * time.Second)
		calls = append(calls, &Call{
			Key: key, Seq: uint64(turn + 1), Path: "/v1/chat/completions",
			Request: tokenids.Request{Endpoint: tokenids.Chat, Model: "Qwen/Qwen3-8B", N: 1, Prompts: 1, Input: []byte(input)},
			Response: tokenids.Result{
				ResponseID: fmt.Sprintf("chatcmpl-%d", turn), Model: "Qwen/Qwen3-8B", PromptTokenIDs: prompt,
				Choices: []tokenids.Choice{{Index: 0, TokenIDs: out, Logprobs: lps, FinishReason: "stop", Text: fmt.Sprintf("answer %d", turn)}},
				Usage:   &tokenids.Usage{PromptTokens: int64(len(prompt)), CompletionTokens: int64(answer), TotalTokens: int64(len(prompt) + answer)},
			},
			Status: StatusOK, HTTPStatus: 200, Start: t0, End: t0.Add(500 * time.Millisecond), Valid: true,
		})
		msgs = append(msgs, fmt.Sprintf(`{"role":"assistant","content":"answer %d"}`, turn))
		prompt = append(prompt, out...)
	}
	return calls
}

func recordAll(t testing.TB, rec *Recorder, calls []*Call) {
	t.Helper()
	for _, c := range calls {
		if err := rec.RecordCall(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}

func storedBytes(t testing.TB, st *store.Store, key rollout.Key) (int, []store.Record) {
	t.Helper()
	recs, err := st.Records(context.Background(), key.RolloutID, key.AttemptID)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		n += len(r.Data)
	}
	return n, recs
}

// wholeCalls reads an attempt back as the trainer views do.
func wholeCalls(t testing.TB, recs []store.Record) []*Call {
	t.Helper()
	res := NewResolver(nil)
	res.Add(recs...)
	var out []*Call
	for _, rec := range recs {
		data, err := res.Full(context.Background(), rec)
		if err != nil {
			t.Fatal(err)
		}
		_, sp, err := DecodeRecord(data)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range sp.Attributes {
			if strings.HasPrefix(kv.Key, "tokentap.prompt.") || strings.HasPrefix(kv.Key, "tokentap.input.") {
				t.Errorf("call %d read back with storage attribute %s", rec.Seq, kv.Key)
			}
		}
		out = append(out, CallFromSpan(sp))
	}
	return out
}

// A 30-turn conversation is stored in bytes that grow with the tokens each
// turn adds, not with its context; read back, every call has its whole
// prompt and messages, and its span is what it is when stored whole.
func TestDeltaConversation(t *testing.T) {
	key := rollout.Key{RolloutID: "conv", AttemptID: "0"}
	calls := conversation(key, 30, 300, 40)

	whole, delta := testStore(t), testStore(t)
	recordAll(t, NewRecorder(whole, true, "test", WithWholePrompts()), calls)
	recordAll(t, NewRecorder(delta, true, "test"), calls)
	wholeSize, wholeRecs := storedBytes(t, whole, key)
	deltaSize, deltaRecs := storedBytes(t, delta, key)
	t.Logf("30 turns: %d bytes whole, %d as deltas", wholeSize, deltaSize)

	// Linear: every delta record is about one turn's worth, the first
	// (whole) aside.
	for i, r := range deltaRecs[1:] {
		if first := len(deltaRecs[1].Data); len(r.Data) > first*3/2 {
			t.Errorf("call %d stored in %d bytes, call 2 in %d: not linear", i+2, len(r.Data), first)
		}
		if !IsDelta(r) {
			t.Errorf("call %d stored whole", r.Seq)
		}
		if bytes.Contains(r.Data, []byte("be brief. be brief.")) {
			t.Errorf("call %d stores its parent's messages again", r.Seq)
		}
	}
	if deltaSize*5 > wholeSize {
		t.Errorf("deltas take %d bytes, whole prompts %d", deltaSize, wholeSize)
	}

	got := wholeCalls(t, deltaRecs)
	for i, c := range got {
		want := calls[i]
		if !reflect.DeepEqual(c.Response.PromptTokenIDs, want.Response.PromptTokenIDs) {
			t.Fatalf("call %d: prompt of %d tokens read back as %d", i+1, len(want.Response.PromptTokenIDs), len(c.Response.PromptTokenIDs))
		}
		if !bytes.Equal(c.InputMessages, want.Request.Input) {
			t.Fatalf("call %d: messages read back as\n%s\nwant\n%s", i+1, c.InputMessages, want.Request.Input)
		}
	}
	// The whole spans equal the ones stored whole, ids aside.
	checkReadBackWhole(t, deltaRecs, wholeRecs)

	// The OTLP export shows the same: whole prompts.
	pb, err := EncodeTraces(deltaRecs, Protobuf)
	if err != nil {
		t.Fatal(err)
	}
	pbWhole, _ := EncodeTraces(wholeRecs, Protobuf)
	if len(pb) != len(pbWhole) {
		t.Errorf("export of deltas: %d bytes, of whole prompts %d", len(pb), len(pbWhole))
	}
	// A batch without the parents reads them from the store.
	pb, err = AppendTracesFrom(context.Background(), nil, deltaRecs[29:], delta)
	if err != nil {
		t.Fatal(err)
	}
	one, _ := AppendTraces(nil, wholeRecs[29:])
	if len(pb) != len(one) {
		t.Errorf("last call exported alone: %d bytes, %d stored whole", len(pb), len(one))
	}
	if _, err := AppendTraces(nil, deltaRecs[29:]); !errors.Is(err, ErrPromptParentMissing) {
		t.Errorf("export without a source for the parents: %v", err)
	}
}

// checkReadBackWhole holds every record of recs, read through a resolver
// holding them all, to the same call stored whole, ids aside.
func checkReadBackWhole(t *testing.T, recs, wholeRecs []store.Record) {
	t.Helper()
	res := NewResolver(nil)
	res.Add(recs...)
	for i := range recs {
		data, err := res.Full(context.Background(), recs[i])
		if err != nil {
			t.Fatal(err)
		}
		want, err := ExportForm(wholeRecs[i].Data)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != len(want) {
			t.Errorf("call %d: %d bytes whole again, %d stored whole", i+1, len(data), len(want))
		}
		_, a, _ := DecodeRecord(data)
		_, b, _ := DecodeRecord(want)
		a.TraceId, a.SpanId, b.TraceId, b.SpanId = nil, nil, nil, nil
		if !proto.Equal(a, b) {
			t.Errorf("call %d: span read back differs from the span stored whole", i+1)
		}
	}
}

// Deltas stored before XXH64, with the earlier hashes, still read back
// whole and still fail loudly when they do not match.
func TestDeltaLegacyHashes(t *testing.T) {
	key := rollout.Key{RolloutID: "legacy", AttemptID: "0"}
	calls := conversation(key, 6, 300, 40)
	whole, legacy := testStore(t), testStore(t)
	recordAll(t, NewRecorder(whole, true, "test", WithWholePrompts()), calls)
	rec := NewRecorder(legacy, true, "test")
	rec.legacyHashes = true
	recordAll(t, rec, calls)
	_, wholeRecs := storedBytes(t, whole, key)
	_, recs := storedBytes(t, legacy, key)
	for _, r := range recs[1:] {
		if !bytes.Contains(r.Data, []byte(AttrPromptHash)) || !bytes.Contains(r.Data, []byte(AttrInputHash)) ||
			bytes.Contains(r.Data, []byte("xxhash")) {
			t.Fatalf("call %d is not stored with the earlier hashes", r.Seq)
		}
	}
	checkReadBackWhole(t, recs, wholeRecs)
	for i, c := range wholeCalls(t, recs) {
		if !reflect.DeepEqual(c.Response.PromptTokenIDs, calls[i].Response.PromptTokenIDs) || !bytes.Equal(c.InputMessages, calls[i].Request.Input) {
			t.Fatalf("call %d reads back differently", i+1)
		}
	}
	// The earlier hashes are still checked: a delta whose hash is off
	// by one is refused.
	bad := append([]store.Record(nil), recs...)
	i := bytes.Index(recs[2].Data, []byte(AttrPromptHash))
	bad[2].Data = bytes.Clone(recs[2].Data)
	bad[2].Data[i+len(AttrPromptHash)+4] ^= 1 // inside the hash's varint
	res := NewResolver(nil)
	res.Add(bad...)
	if _, err := res.Full(context.Background(), bad[2]); err == nil {
		t.Error("a delta whose stored hash does not match was read back")
	}
}

// Every maxDeltaDepth levels a call is stored whole, so reading any call
// reads a bounded chain.
func TestDeltaSnapshot(t *testing.T) {
	key := rollout.Key{RolloutID: "snap", AttemptID: "0"}
	calls := conversation(key, 2*maxDeltaDepth+2, 70, 3)
	st := testStore(t)
	recordAll(t, NewRecorder(st, false, "test"), calls)
	_, recs := storedBytes(t, st, key)
	for _, r := range recs {
		want := (r.Seq-1)%maxDeltaDepth != 0
		if IsDelta(r) != want {
			t.Errorf("call %d: delta %v, want %v", r.Seq, IsDelta(r), want)
		}
	}
	for i, c := range wholeCalls(t, recs) {
		if !reflect.DeepEqual(c.Response.PromptTokenIDs, calls[i].Response.PromptTokenIDs) {
			t.Fatalf("call %d: prompt differs", i+1)
		}
	}
}

// A prompt that does not match its stored hash fails loudly, naming the
// call; so does a missing parent.
func TestDeltaCorrupt(t *testing.T) {
	key := rollout.Key{RolloutID: "bad", AttemptID: "0"}
	calls := conversation(key, 3, 100, 5)
	for _, c := range calls {
		c.Response.PromptTokenIDs[3] = 7777 // a marker, to tamper with in call 1
	}
	st := testStore(t)
	// Unpacked, so that the marker is easy to find (packed.go).
	recordAll(t, NewRecorder(st, false, "test", WithUnpackedArrays()), calls)
	_, recs := storedBytes(t, st, key)

	marker := []byte{0x0a, 3, 0x18}
	marker = protowire.AppendVarint(marker, 7777)
	tampered := protowire.AppendVarint([]byte{0x0a, 3, 0x18}, 7778)
	i := bytes.Index(recs[0].Data, marker)
	if i < 0 {
		t.Fatal("marker not found")
	}
	bad := append([]store.Record(nil), recs...)
	bad[0].Data = bytes.Clone(recs[0].Data)
	copy(bad[0].Data[i:], tampered)
	res := NewResolver(nil)
	res.Add(bad...)
	_, err := res.Full(context.Background(), bad[2])
	if err == nil || !strings.Contains(err.Error(), "hash") || !strings.Contains(err.Error(), "call 2") {
		t.Errorf("tampered parent: %v", err)
	}
	res = NewResolver(nil)
	res.Add(recs[2])
	if _, err := res.Full(context.Background(), recs[2]); !errors.Is(err, ErrPromptParentMissing) {
		t.Errorf("missing parent: %v", err)
	}
}

// The index picks the context with the longest common prefix, ties to the
// latest call, and reuses the common prefix of a prompt that does not
// extend any context (a think-stripped one).
func TestPromptIndex(t *testing.T) {
	x := newPromptIndex()
	key := rollout.Key{RolloutID: "r", AttemptID: "0"}
	seq := func(n int, from int64) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = from + int64(i)
		}
		return out
	}
	cat := func(parts ...[]int64) []int64 {
		var out []int64
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	add := func(s uint64, prompt []int64, choices map[int][]int64) {
		x.add(key, s, 0, time.Now(), prompt, x.chain(nil, prompt, 0), choices, messageBounds{})
	}
	a := seq(100, 0)
	add(1, a, map[int][]int64{0: seq(30, 1000), 1: seq(30, 2000)})
	look := func(p []int64) (promptMatch, bool) { return x.lookup(key, p, x.chain(nil, p, 0), time.Time{}) }

	for _, tc := range []struct {
		name   string
		prompt []int64
		ok     bool
		ref    contextRef
		fork   int
	}{
		{"extends choice 1", cat(a, seq(30, 2000), seq(50, 5000)), true, contextRef{1, 1}, 130},
		{"extends choice 0", cat(a, seq(30, 1000), seq(50, 5000)), true, contextRef{1, 0}, 130},
		{"shares the prompt's first block only", cat(seq(70, 0), seq(50, 9000)), true, contextRef{1, 1}, 64},
		{"shorter than a block in common", cat(seq(63, 0), seq(100, 9000)), false, contextRef{}, 0},
		{"nothing in common", seq(200, 50000), false, contextRef{}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, ok := look(tc.prompt)
			if ok != tc.ok || (ok && (m.ref != tc.ref || m.fork != tc.fork)) {
				t.Errorf("got %+v %v, want %+v fork %d", m.ref, ok, tc.ref, tc.fork)
			}
		})
	}

	// A later call with the same context wins the tie, even when it
	// commits first.
	add(3, a, map[int][]int64{0: seq(30, 1000)})
	add(2, a, map[int][]int64{0: seq(30, 1000)})
	if m, _ := look(cat(a, seq(30, 1000), seq(10, 7))); m.ref != (contextRef{3, 0}) || m.fork != 130 {
		t.Errorf("tie: %+v fork %d, want call 3", m.ref, m.fork)
	}
	// Another attempt shares nothing.
	if _, ok := x.lookup(rollout.Key{RolloutID: "r", AttemptID: "1"}, a, x.chain(nil, a, 0), time.Time{}); ok {
		t.Error("a parent from another attempt")
	}
	// Too old for retention: not a parent.
	if _, ok := x.lookup(key, a, x.chain(nil, a, 0), time.Now().Add(time.Minute)); ok {
		t.Error("a parent retention may be deleting")
	}
}

// Concurrent turns of many attempts index and look up side by side.
func TestPromptIndexConcurrent(t *testing.T) {
	x := newPromptIndex()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := rollout.Key{RolloutID: fmt.Sprintf("r%d", g%3), AttemptID: "0"}
			var prompt []int64
			for turn := range 50 {
				for i := range 70 {
					prompt = append(prompt, int64(g*1e6+turn*100+i))
				}
				blocks := x.chain(nil, prompt, 0)
				if m, ok := x.lookup(key, prompt, blocks, time.Time{}); turn > 0 && (!ok || m.fork < len(prompt)-70) {
					t.Errorf("goroutine %d turn %d: %+v %v", g, turn, m, ok)
				}
				x.add(key, uint64(g*1000+turn+1), 0, time.Now(), prompt, blocks, nil, messageBounds{})
			}
		}()
	}
	wg.Wait()
}

func TestJSONArrayEnds(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{`[]`, nil},
		{` [ 1 , "a,]" ,{"b":[1,2]} ]`, []int{4, 12, 25}},
		{`["\"]",2]`, []int{6, 8}},
		{`{"a":1}`, nil},
		{`[1,2`, nil},
		{`"text"`, nil},
	} {
		if got := jsonArrayEnds(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The index holds a bounded number of blocks over all attempts: the least
// recently used attempts go first, so memory stays bounded however many
// attempts never complete.
func TestPromptIndexBudget(t *testing.T) {
	x := newPromptIndex()
	x.maxSize = 100
	prompt := func(a int) []int64 {
		out := make([]int64, 10*promptBlock)
		for i := range out {
			out[i] = int64(a*1e6 + i)
		}
		return out
	}
	key := func(a int) rollout.Key { return rollout.Key{RolloutID: fmt.Sprint("r", a), AttemptID: "0"} }
	for a := range 20 {
		p := prompt(a)
		x.add(key(a), 1, 0, time.Now(), p, x.chain(nil, p, 0), map[int][]int64{0: {1, 2, 3}}, messageBounds{})
		if x.size > x.maxSize {
			t.Fatalf("after attempt %d: %d blocks and calls indexed, budget %d", a, x.size, x.maxSize)
		}
	}
	found := func(a int) bool {
		p := append(prompt(a), 1, 2, 3, 4)
		_, ok := x.lookup(key(a), p, x.chain(nil, p, 0), time.Time{})
		return ok
	}
	if !found(19) || !found(18) {
		t.Error("the most recent attempts were evicted")
	}
	if found(0) {
		t.Error("the oldest attempt is still indexed past the budget")
	}
	x.forget(key(19))
	if found(19) {
		t.Error("a forgotten attempt is still indexed")
	}
	want := 0
	for _, el := range x.attempts {
		a := el.Value.(*attemptIndex)
		want += len(a.blocks) + len(a.calls)
	}
	if x.size != want {
		t.Errorf("size %d, the attempts hold %d", x.size, want)
	}
}
