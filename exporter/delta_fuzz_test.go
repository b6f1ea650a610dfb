package exporter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
)

// FuzzResolveStored feeds arbitrary bytes to what reads stored calls back
// whole (resolve.go): three records of one attempt (sequence ids 1, 2, 3)
// whose data the fuzzer writes, seeded with real records (a whole call, a
// delta on it, a delta on that). Whatever the bytes, reading never panics,
// never recurses without bound, allocates in proportion to its input, and
// is consistent: every order of reading gives the same answers, Rebase
// gives what Full gives, a record that is not a delta comes back as it is
// and one that is comes back without storage attributes.
func FuzzResolveStored(f *testing.F) {
	key := rollout.Key{RolloutID: "seed", AttemptID: "0"}
	for _, capture := range []bool{true, false} {
		recs := seedRecords(f, capture, key, func(rec *Recorder) error {
			for _, c := range conversation(key, 4, 100, 20) {
				if err := rec.RecordCall(context.Background(), c); err != nil {
					return err
				}
			}
			return nil
		})
		f.Add(recs[0].Data, recs[1].Data, recs[2].Data)
		f.Add(recs[2].Data, recs[3].Data, recs[0].Data) // parents out of place
	}
	// A completions call with two prompts and four choices, and a reward:
	// stored whole.
	c := sampleCall()
	recs := seedRecords(f, true, c.Key, func(rec *Recorder) error {
		if err := rec.RecordCall(context.Background(), c); err != nil {
			return err
		}
		return rec.RecordReward(context.Background(), &Reward{Key: c.Key, Seq: 2, Name: "r", Value: 1, Time: c.End})
	})
	f.Add(recs[0].Data, recs[1].Data, []byte{})
	f.Add([]byte{}, []byte{0x12, 0x00}, []byte{0x0a})

	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		checkResolveStored(t, [][]byte{a, b, c})
	})
}

// seedRecords records with a recorder of its own store, closed before it
// returns: no store runs in the background of the allocation checks.
func seedRecords(f *testing.F, capture bool, key rollout.Key, record func(*Recorder) error) []store.Record {
	st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
	if err != nil {
		f.Fatal(err)
	}
	defer st.Close()
	if err := record(NewRecorder(st, capture, "test")); err != nil {
		f.Fatal(err)
	}
	_, recs := storedBytes(f, st, key)
	return recs
}

func checkResolveStored(t *testing.T, data [][]byte) {
	// Linear in the input: a cyclic chain is followed maxChain deep by
	// each of the ten reads (resolveStored), each level reading its record
	// and its tokens (8 bytes for each 2-byte token at worst).
	in := 0
	for _, d := range data {
		in += len(d)
	}
	limit := uint64(10*maxChain*8*in + 16<<20)
	if got := resolveStored(t, data); got > limit {
		// Measured again: the count is the whole process's.
		if got = resolveStored(t, data); got > limit {
			t.Fatalf("%d bytes of input allocated %d bytes (bound %d)", in, got, limit)
		}
	}
}

// resolveStored reads data as the records 1, 2, 3 of an attempt in every
// way there is, checks the answers agree, and returns the bytes it
// allocated.
func resolveStored(t *testing.T, data [][]byte) uint64 {
	recs := make([]store.Record, len(data))
	for i, d := range data {
		recs[i] = store.Record{RolloutID: "r", AttemptID: "0", Seq: uint64(i + 1), Cursor: uint64(i + 1), Kind: store.KindCall, Data: d}
	}
	lookup := func(seq uint64) (store.Record, error) {
		if seq >= 1 && seq <= uint64(len(recs)) {
			return recs[seq-1], nil
		}
		return store.Record{}, store.ErrNotFound
	}
	ctx := context.Background()
	// The attributes of a delta that never leave the store.
	storageAttributes := []string{
		AttrPromptParentSeq, AttrPromptParentChoice, AttrPromptFork, AttrPromptLength, AttrPromptHash, AttrPromptXXHash,
		AttrPromptDelta, AttrInputParentCount, AttrInputDelta, AttrInputLength, AttrInputHash, AttrInputXXHash,
	}
	allocated := heapAllocated()

	type result struct {
		data []byte
		err  error
	}
	// Every record read in order with all records known, then in reverse
	// order from a source: the cache must not change what comes back.
	forward := make([]result, len(recs))
	res := NewResolver(nil)
	res.Add(recs...)
	for i := range recs {
		forward[i].data, forward[i].err = res.Full(ctx, recs[i])
	}
	res = NewResolver(parentFunc(lookup))
	for i := len(recs) - 1; i >= 0; i-- {
		got, err := res.Full(ctx, recs[i])
		if (err == nil) != (forward[i].err == nil) || !bytes.Equal(got, forward[i].data) {
			t.Fatalf("record %d: read in order: %v, in reverse: %v (outputs equal: %v)", i+1, forward[i].err, err, bytes.Equal(got, forward[i].data))
		}
	}
	for i, rec := range recs {
		got, err := Rebase(rec, lookup)
		if err == nil {
			// Rebase keeps the stored form; Full reads it as OTLP.
			got, err = ExportForm(got)
		}
		if (err == nil) != (forward[i].err == nil) || !bytes.Equal(got, forward[i].data) {
			t.Fatalf("record %d: Full: %v, Rebase: %v", i+1, forward[i].err, err)
		}
		if forward[i].err != nil {
			continue
		}
		if !IsDelta(rec) {
			if export, err := ExportForm(rec.Data); err != nil || !bytes.Equal(forward[i].data, export) {
				t.Fatalf("record %d is not a delta but reads back changed", i+1)
			}
			continue
		}
		out := store.Record{Kind: store.KindCall, Data: forward[i].data}
		if IsDelta(out) {
			t.Fatalf("record %d reads back still a delta", i+1)
		}
		span, err := findSpan(forward[i].data)
		if err != nil {
			t.Fatalf("record %d reads back unreadable: %v", i+1, err)
		}
		if err := eachField(span, func(num protowire.Number, _ protowire.Type, v, _ []byte) error {
			if num != fSpanAttributes {
				return nil
			}
			key, _, err := keyValue(v)
			if slices.Contains(storageAttributes, key) {
				return fmt.Errorf("storage attribute %s left", key)
			}
			return err
		}); err != nil {
			t.Fatalf("record %d reads back: %v", i+1, err)
		}
	}
	AppendTraces(nil, recs)
	jsonArrayEnds(string(data[0]))
	anyInts(data[1])
	return heapAllocated() - allocated
}

// heapAllocated is the bytes allocated on the heap so far, to the
// granularity of the runtime's per-P caches.
func heapAllocated() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// FuzzJSONArrayEnds checks the split of captured messages into elements
// against encoding/json wherever the text is valid JSON, and its bounds
// everywhere.
func FuzzJSONArrayEnds(f *testing.F) {
	for _, s := range []string{
		`[]`, ` [ 1 , "a,]" ,{"b":[1,2]} ]`, `["\"]",2]`, `{"a":1}`, `[1,2`, `"text"`,
		"[ " + `{"role":"system","content":"be brief"}` + ",\n  " + `{"role":"user","content":"h\u00e9\\\\"}` + " ]",
		`[[[]],{"a":{"b":"]"}},null,true,-1.5e3]`, "[\"\xff\",1]",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ends := jsonArrayEnds(s)
		prev := 0
		for i, e := range ends {
			if e <= prev || e > len(s) {
				t.Fatalf("element %d ends at %d (previous %d, length %d)", i, e, prev, len(s))
			}
			if isJSONSpace(s[e-1]) {
				t.Fatalf("element %d ends after a space", i)
			}
			prev = e
		}
		if !json.Valid([]byte(s)) {
			return
		}
		want, isArray := jsonElementEnds(t, s)
		if !isArray {
			if ends != nil {
				t.Fatalf("not an array, split at %v", ends)
			}
			return
		}
		if !slices.Equal(ends, want) {
			t.Fatalf("split at %v, encoding/json at %v", ends, want)
		}
	})
}

// jsonElementEnds is where encoding/json finds the top-level elements of
// the valid JSON s to end, and whether s is an array.
func jsonElementEnds(t *testing.T, s string) ([]int, bool) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber() // any number is valid JSON, not only a float64's
	tok, err := dec.Token()
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, false
	}
	var ends []int
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, int(dec.InputOffset()))
	}
	return ends, true
}

// FuzzDeltaRoundTrip is the differential check of delta storage: the
// fuzzer writes an attempt (calls whose prompts take any prefix of an
// earlier call's prompt or context and add tokens, several or no choices,
// prompts with and without IDs, completions with several prompts, captured
// messages that share earlier calls' first elements, or not, or are not
// JSON), which is recorded stored whole and as deltas. Every call read
// back from the deltas, by a resolver holding the attempt or reading the
// store, by Rebase, or in an OTLP export, is the call stored whole, trace
// and span ids aside; and no delta is larger than the call stored whole.
func FuzzDeltaRoundTrip(f *testing.F) {
	for _, seed := range deltaSeeds() {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	rt := newRoundTrip(f)
	f.Fuzz(func(t *testing.T, script []byte, capture bool) {
		rt.check(t, script, capture)
	})
}

// The seeds of FuzzDeltaRoundTrip make deltas of every kind.
func TestDeltaRoundTripSeeds(t *testing.T) {
	rt := newRoundTrip(t)
	var total roundTripCounts
	for i, seed := range deltaSeeds() {
		for _, capture := range []bool{true, false} {
			n := rt.check(t, seed, capture)
			if n.deltas == 0 {
				t.Errorf("seed %d (capture %v) stores no delta", i, capture)
			}
			total.deltas += n.deltas
			total.messageDeltas += n.messageDeltas
		}
	}
	if total.messageDeltas == 0 {
		t.Error("no seed stores messages as a delta")
	}
	t.Logf("%+v", total)
}

// deltaSeeds are scripts (scriptCalls) for FuzzDeltaRoundTrip. Their
// bytes, in the order scriptCalls reads them: an 8-byte seed, the log2 of
// the token alphabet, the number of turns, one byte per turn for the
// permutation of sequence ids, the separator and the brackets of the
// messages; then per turn: flags; with flags&1, the earlier call taken
// from, its choice (when it has choices), the length taken (2 bytes,
// unless flags&2: all of it) and its messages kept; the tokens added (2
// bytes; with flags&4, followed by the tokens); the number of choices and
// the gap between their indices; per choice a byte (&7 == 0: no token
// IDs) and its length (2 bytes); the number of new message elements and
// per element its kind, a piece of text (a length byte, the bytes) and
// its repeats; with flags&32, raw input instead (a length byte, the
// bytes, the repeats).
func deltaSeeds() [][]byte {
	head := func(turns byte, perm ...byte) []byte {
		h := []byte{1, 2, 3, 4, 5, 6, 7, 8, 16, turns - 1}
		h = append(h, perm...)
		return append(h, 2, 1) // ",\n  " between elements, "[ " and " ]"
	}
	hello := []byte{1, 0, 5, 'h', 'e', 'l', 'l', 'o', 60} // one 300-byte user message
	var conv []byte                                       // each turn extends the last context, messages too
	conv = append(conv, head(6, 0, 0, 0, 0, 0, 0)...)
	conv = append(conv, 0, 0, 100, 1, 0, 1, 0, 30, 1, 0, 10)
	conv = append(conv, "be brief. "...)
	conv = append(conv, 40)
	for i := range byte(5) {
		conv = append(conv, 3, i, 0, i+1, 0, 100, 1, 0, 1, 0, 30)
		conv = append(conv, hello...)
	}
	fork := head(5, 0, 0, 0, 0, 0) // forks mid-context, several choices, the prompt alone
	fork = append(fork, 0, 1, 44, 3, 0, 1, 0, 20, 1, 0, 70, 0)
	fork = append(fork, hello...)
	fork = append(fork, 1, 0, 1, 1, 10, 1, 0, 7, 2, 1, 1, 0, 3, 1, 0, 0, 1, 2, 3, 'a', '"', 'c', 100)
	fork = append(fork, 3, 0, 3, 1, 0, 100, 1, 0, 1, 0, 30)
	fork = append(fork, hello...)
	fork = append(fork, 7, 2, 0, 2, 0, 50)
	for i := range byte(50) {
		fork = append(fork, i%3)
	}
	fork = append(fork, 1, 0, 1, 0, 30, 1, 3, 1, 'x', 5)
	fork = append(fork, 3|64, 1, 1, 2, 0, 100, 1, 0, 1, 0, 30)
	fork = append(fork, hello...)
	mixed := head(4, 0, 1, 1, 2) // several prompts, no prompt IDs, input not JSON, ids permuted
	mixed = append(mixed, 0, 0, 200, 1, 0, 1, 0, 10)
	mixed = append(mixed, hello...)
	mixed = append(mixed, 3|16, 0, 0, 1, 0, 10, 2, 0, 1, 0, 5, 1, 0, 5, 0)
	mixed = append(mixed, 3|8, 0, 0, 1, 0, 10, 1, 0, 1, 0, 5, 0)
	mixed = append(mixed, 3|32, 0, 0, 1, 0, 10, 1, 0, 1, 0, 5, 0, 4, '[', '1', ',', ']', 100)
	return [][]byte{conv, fork, mixed}
}

// roundTrip records fuzzed attempts stored whole and as deltas. Its
// stores are replaced every so often, so that a long fuzzing run does not
// grow them without bound.
type roundTrip struct {
	tb           testing.TB
	whole, delta *store.Store
	recorders    map[[2]bool]*Recorder // by (delta, capture)
	attempts     int
}

func newRoundTrip(tb testing.TB) *roundTrip {
	rt := &roundTrip{tb: tb}
	rt.open()
	tb.Cleanup(rt.close)
	return rt
}

func (rt *roundTrip) open() {
	open := func() *store.Store {
		st, err := store.Open(context.Background(), store.Options{InMemory: true, Logger: zerolog.Nop()})
		if err != nil {
			rt.tb.Fatal(err)
		}
		return st
	}
	rt.whole, rt.delta = open(), open()
	rt.recorders = map[[2]bool]*Recorder{}
	for _, capture := range []bool{false, true} {
		rt.recorders[[2]bool{false, capture}] = NewRecorder(rt.whole, capture, "fuzz", WithWholePrompts())
		rt.recorders[[2]bool{true, capture}] = NewRecorder(rt.delta, capture, "fuzz")
	}
}

func (rt *roundTrip) close() {
	rt.whole.Close()
	rt.delta.Close()
}

type roundTripCounts struct{ deltas, messageDeltas int }

func (rt *roundTrip) check(t *testing.T, script []byte, capture bool) roundTripCounts {
	if rt.attempts++; rt.attempts%2000 == 0 {
		rt.close()
		rt.open()
	}
	ctx := context.Background()
	key := rollout.Key{RolloutID: fmt.Sprintf("f%d", rt.attempts), AttemptID: "0"}
	wholeRec, deltaRec := rt.recorders[[2]bool{false, capture}], rt.recorders[[2]bool{true, capture}]
	for _, c := range scriptCalls(key, script) {
		w := *c
		if err := wholeRec.RecordCall(ctx, &w); err != nil {
			t.Fatal(err)
		}
		if err := deltaRec.RecordCall(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	_, wholeRecs := storedBytes(t, rt.whole, key)
	_, deltaRecs := storedBytes(t, rt.delta, key)
	if len(wholeRecs) != len(deltaRecs) {
		t.Fatalf("%d calls stored whole, %d as deltas", len(wholeRecs), len(deltaRecs))
	}
	var n roundTripCounts
	all := NewResolver(nil)
	all.Add(deltaRecs...)
	parent := func(seq uint64) (store.Record, error) {
		return rt.delta.Record(ctx, key.RolloutID, key.AttemptID, seq)
	}
	for i, rec := range deltaRecs {
		stored := wholeRecs[i].Data
		want, err := ExportForm(stored)
		if err != nil {
			t.Fatal(err)
		}
		if !IsDelta(rec) {
			if err := sameSpan(rec.Data, stored); err != nil {
				t.Fatalf("call %d stored whole differs: %v", rec.Seq, err)
			}
			continue
		}
		n.deltas++
		if bytes.Contains(rec.Data, []byte(AttrInputDelta)) {
			n.messageDeltas++
		}
		if len(rec.Data) > len(stored) {
			t.Errorf("call %d: %d bytes as a delta, %d whole", rec.Seq, len(rec.Data), len(stored))
		}
		got, err := all.Full(ctx, rec)
		if err != nil {
			t.Fatalf("call %d: %v", rec.Seq, err)
		}
		if err := sameSpan(got, want); err != nil {
			t.Fatalf("call %d read back: %v", rec.Seq, err)
		}
		alone, err := NewResolver(rt.delta).Full(ctx, rec)
		if err != nil || !bytes.Equal(alone, got) {
			t.Fatalf("call %d read back with its parents from the store: %v (same: %v)", rec.Seq, err, bytes.Equal(alone, got))
		}
		rebased, err := Rebase(rec, parent)
		if err == nil {
			rebased, err = ExportForm(rebased)
		}
		if err != nil || !bytes.Equal(rebased, got) {
			t.Fatalf("call %d rebased: %v (same: %v)", rec.Seq, err, bytes.Equal(rebased, got))
		}
	}
	// The export, as the pusher builds it, in commit order.
	slices.SortFunc(deltaRecs, func(a, b store.Record) int { return int(a.Cursor) - int(b.Cursor) })
	slices.SortFunc(wholeRecs, func(a, b store.Record) int { return int(a.Cursor) - int(b.Cursor) })
	got, err := AppendTracesFrom(ctx, nil, deltaRecs, rt.delta)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	want, err := AppendTraces(nil, wholeRecs)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameTraces(got, want); err != nil {
		t.Fatalf("export: %v", err)
	}
	return n
}

// sameSpan says how two stored records differ, trace and span ids aside.
func sameSpan(got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d bytes, want %d", len(got), len(want))
	}
	a, sa, err := DecodeRecord(got)
	if err != nil {
		return err
	}
	b, sb, err := DecodeRecord(want)
	if err != nil {
		return err
	}
	sa.TraceId, sa.SpanId, sb.TraceId, sb.SpanId = nil, nil, nil, nil
	if !proto.Equal(a, b) {
		return errors.New("spans differ")
	}
	return nil
}

func sameTraces(got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d bytes, want %d", len(got), len(want))
	}
	var a, b tracepb.TracesData
	if err := proto.Unmarshal(got, &a); err != nil {
		return err
	}
	if err := proto.Unmarshal(want, &b); err != nil {
		return err
	}
	for _, td := range []*tracepb.TracesData{&a, &b} {
		for _, rs := range td.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					sp.TraceId, sp.SpanId = nil, nil
				}
			}
		}
	}
	if !proto.Equal(&a, &b) {
		return errors.New("exports differ")
	}
	return nil
}

// fuzzScript reads a fuzz input as a generator's decisions; past its end
// every decision is 0.
type fuzzScript []byte

func (s *fuzzScript) byte() byte {
	if len(*s) == 0 {
		return 0
	}
	b := (*s)[0]
	*s = (*s)[1:]
	return b
}

// upTo is a number from 0 to n.
func (s *fuzzScript) upTo(n int) int {
	v := int(s.byte())<<8 | int(s.byte())
	return v % (n + 1)
}

func (s *fuzzScript) bytes(n int) []byte {
	n = min(n, len(*s))
	b := (*s)[:n]
	*s = (*s)[n:]
	return b
}

// scriptCalls is the attempt a fuzz input describes (see deltaSeeds for
// the layout). Sequence ids are a permutation of 1..n: concurrent calls
// commit in any order, so a parent may have the higher id.
func scriptCalls(key rollout.Key, script []byte) []*Call {
	s := fuzzScript(script)
	var seed uint64
	for range 8 {
		seed = seed<<8 | uint64(s.byte())
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	alphabet := int64(1) << (s.byte() % 18) // small ones repeat blocks
	turns := 1 + int(s.byte()%8)
	seqs := make([]uint64, turns)
	for i := range seqs {
		seqs[i] = uint64(i + 1)
		j := i - int(s.byte())%(i+1) // 0: in order
		seqs[i], seqs[j] = seqs[j], seqs[i]
	}
	seps := []string{",", ", ", ",\n  ", " ,"}
	sep, open, end := seps[s.byte()%4], "[", "]"
	if s.byte()&1 != 0 {
		open, end = "[ ", " ]"
	}
	gen := func(n int) []int64 {
		out := make([]int64, n)
		for i := range out {
			out[i] = rng.Int64N(alphabet)
		}
		return out
	}
	start := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	var calls []*Call
	var elems [][]string // each call's message elements
	for turn := range turns {
		flags := s.byte()
		var prompt []int64
		var msgs []string
		if turn > 0 && flags&1 != 0 {
			j := int(s.byte()) % turn
			from := calls[j].Response.PromptTokenIDs
			if chs := calls[j].Response.Choices; len(chs) > 0 {
				if ci := int(s.byte()) % (len(chs) + 1); ci < len(chs) {
					from = slices.Concat(from, chs[ci].TokenIDs)
				}
			}
			l := len(from)
			if flags&2 == 0 {
				l = s.upTo(len(from))
			}
			prompt = append(prompt, from[:l]...)
			msgs = slices.Clone(elems[j][:int(s.byte())%(len(elems[j])+1)])
		}
		if flags&4 != 0 {
			for _, b := range s.bytes(s.upTo(160)) {
				prompt = append(prompt, int64(int8(b))) // negative IDs too: 10-byte varints
			}
		} else {
			prompt = append(prompt, gen(s.upTo(400))...)
		}
		nc, gap := int(s.byte()%4), 1+int(s.byte()%3)
		choices := make([]tokenids.Choice, nc)
		for i := range choices {
			ch := tokenids.Choice{Index: i * gap, FinishReason: "stop", Text: fmt.Sprintf("answer %d.%d", turn, i)}
			if s.byte()&7 != 0 {
				ch.TokenIDs = gen(s.upTo(160))
				ch.Logprobs = make([]float64, len(ch.TokenIDs))
				for k := range ch.Logprobs {
					ch.Logprobs[k] = -rng.Float64()
				}
			}
			choices[i] = ch
		}
		if flags&8 != 0 {
			prompt = nil
		}
		req := tokenids.Request{Endpoint: tokenids.Chat, Model: "m", N: max(nc, 1), Prompts: 1}
		res := tokenids.Result{ResponseID: fmt.Sprintf("r%d", turn), Model: "m", PromptTokenIDs: prompt, Choices: choices}
		path := "/v1/chat/completions"
		if flags&16 != 0 {
			req.Endpoint, req.Prompts, path = tokenids.Completions, 2, "/v1/completions"
			res.Prompts = [][]int64{prompt, gen(5)}
			for i := range res.Choices {
				res.Choices[i].PromptIndex = i % 2
			}
		}
		// Messages: the kept elements and new ones, or any text at all.
		for range int(s.byte() % 3) {
			kind, piece := s.byte(), s.bytes(int(s.byte()%16))
			content := strings.Repeat(string(piece), int(s.byte()))
			switch kind % 4 {
			case 0, 1:
				msgs = append(msgs, `{"role":"user","content":"`+content+`"}`)
			case 2:
				msgs = append(msgs, `{"role":"assistant","content":null,"tool_calls":[{"arguments":"{\"q\":[`+content+`]}"}]}`)
			default:
				msgs = append(msgs, content)
			}
		}
		turnSep := sep
		if flags&64 != 0 {
			turnSep = seps[(slices.Index(seps, sep)+1)%len(seps)]
		}
		req.Input = []byte(open + strings.Join(msgs, turnSep) + end)
		if flags&32 != 0 {
			req.Input = bytes.Repeat(s.bytes(int(s.byte()%16)), int(s.byte()))
		}
		elems = append(elems, msgs)
		t0 := start.Add(time.Duration(turn) * time.Second)
		calls = append(calls, &Call{
			Key: key, Seq: seqs[turn], Path: path, Request: req, Response: res,
			Status: StatusOK, HTTPStatus: 200, Start: t0, End: t0.Add(300 * time.Millisecond), Valid: true,
		})
	}
	return calls
}
