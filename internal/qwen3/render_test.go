package qwen3

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The conversations of trajectories.md §3 and their §7 vectors.
const (
	system = `{"role":"system","content":"You are a helpful assistant."}`
	// §3.3 leaves the user query and the tool's description unstated; this
	// pair is one that gives len(P1) = 151 ("What is x?" with description
	// "Search" or "Search.", or "Search for x." / "Look up x.", do too).
	toolUser    = `{"role":"user","content":"What is x?"}`
	searchTools = `[{"type":"function","function":{"name":"search","description":"Search.","parameters":{"type":"object","properties":{"query":{"type":"string"}},"required":["query"]}}}]`
	toolResult  = `{"role":"tool","tool_call_id":"call_1","content":"x is 42"}`
)

var (
	p1Plain = []int64{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198,
		151644, 872, 198, 3838, 374, 220, 17, 10, 17, 30, 151645, 198, 151644, 77091, 198}
	r1Plain = []int64{151667, 198, 10061, 752, 1744, 624, 151668, 271, 785, 4226, 374, 220, 19, 13, 151645}
	r1Tool  = []int64{151667, 198, 40, 1265, 2711, 624, 151668, 271, 151657, 198, 4913, 606, 788,
		330, 1836, 497, 330, 16370, 788, 5212, 1631, 788, 330, 87, 95642, 151658, 151645}
	o2 = []int64{198, 151644, 872, 198, 151665, 198, 87, 374, 220, 19, 17, 198, 151666, 151645, 198, 151644, 77091, 198}
)

func msgs(ms ...string) []byte { return []byte("[" + strings.Join(ms, ",") + "]") }

func assistantToolCall(args string, extra string) string {
	a, _ := json.Marshal(args)
	return `{"role":"assistant","content":null` + extra + `,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":` + string(a) + `}}]}`
}

func render(t *testing.T, m *Model, messages, tools []byte, gen bool, kwargs string) []int64 {
	t.Helper()
	var kw []byte
	if kwargs != "" {
		kw = []byte(kwargs)
	}
	out, err := m.Render(messages, tools, gen, false, kw)
	if err != nil {
		t.Fatal(err)
	}
	ids := m.Encode(out)
	if got := m.Decode(ids); got != out {
		t.Fatalf("Decode(Encode(rendered)) differs:\n%q\n%q", got, out)
	}
	return ids
}

// lcp is the first index where a and b differ (d in trajectories.md).
func lcp(a, b []int64) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

func TestThinkStrippedNewUserQuery(t *testing.T) {
	m := testModel(t)
	user := `{"role":"user","content":"What is 2+2?"}`
	p1 := render(t, m, msgs(system, user), nil, true, "")
	if !slices.Equal(p1, p1Plain) {
		t.Fatalf("P1 = %v\nwant %v", p1, p1Plain)
	}
	if got := m.Encode("<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>"); !slices.Equal(got, r1Plain) {
		t.Fatalf("R1 = %v, want %v", got, r1Plain)
	}
	c := append(slices.Clone(p1), r1Plain...)
	for _, reasoning := range []string{``, `,"reasoning_content":"Let me think."`} {
		asst := `{"role":"assistant","content":"The answer is 4."` + reasoning + `}`
		p2 := render(t, m, msgs(system, user, asst, `{"role":"user","content":"And 3+3?"}`), nil, true, "")
		d := lcp(c, p2)
		if len(c) != 41 || d != 26 || c[d] != 151667 || p2[d] != 785 {
			t.Fatalf("reasoning %q: len(C)=%d d=%d C[d]=%d P2[d]=%d", reasoning, len(c), d, c[d], p2[d])
		}
		if want := []int64{785, 4226, 374, 220, 19, 13, 151645, 198, 151644, 872, 198}; !slices.Equal(p2[26:37], want) {
			t.Fatalf("P2[26:37] = %v, want %v", p2[26:37], want)
		}
	}
}

func TestToolLoop(t *testing.T) {
	m := testModel(t)
	tools := []byte(searchTools)
	p1 := render(t, m, msgs(system, toolUser), tools, true, "")
	if len(p1) != 151 || !slices.Equal(p1[148:], []int64{151644, 77091, 198}) {
		t.Fatalf("len(P1) = %d, tail %v; want 151 ending 151644,77091,198", len(p1), p1[len(p1)-3:])
	}
	c := append(slices.Clone(p1), r1Tool...)
	if len(c) != 178 {
		t.Fatalf("len(C) = %d, want 178", len(c))
	}
	spaced := `{"query": "x"}`

	t.Run("reasoning dropped", func(t *testing.T) {
		p2 := render(t, m, msgs(system, toolUser, assistantToolCall(spaced, ""), toolResult), tools, true, "")
		if d := lcp(c, p2); d != 151 || c[d] != 151667 || p2[d] != 151657 {
			t.Fatalf("d=%d C[d]=%d P2[d]=%d", d, c[d], p2[d])
		}
	})
	for name, field := range map[string]string{"reasoning_content": "reasoning_content", "reasoning": "reasoning"} {
		t.Run("echoed as "+name, func(t *testing.T) {
			asst := assistantToolCall(spaced, `,"`+field+`":"I should search."`)
			p2 := render(t, m, msgs(system, toolUser, asst, toolResult), tools, true, "")
			if !slices.Equal(p2[:len(c)], c) || !slices.Equal(p2[len(c):], o2) {
				t.Fatalf("P2 does not extend C with O2: d=%d, tail %v", lcp(c, p2), p2[min(len(c), len(p2)):])
			}
		})
	}
	t.Run("think whitespace", func(t *testing.T) {
		sampled := append(slices.Clone(p1), m.Encode("<think>\n\nI should search.\n\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call><|im_end|>")...)
		asst := assistantToolCall(spaced, `,"reasoning_content":"\nI should search.\n"`)
		p2 := render(t, m, msgs(system, toolUser, asst, toolResult), tools, true, "")
		if d := lcp(sampled, p2); len(sampled) != 178 || d != 152 || sampled[d] != 271 || p2[d] != 198 {
			t.Fatalf("len(C)=%d d=%d C[d]=%d P2[d]=%d", len(sampled), d, sampled[d], p2[d])
		}
	})
	t.Run("compact tool args", func(t *testing.T) {
		compact := `{"query":"x"}`
		sampled := append(slices.Clone(p1), m.Encode("<think>\nI should search.\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": "+compact+"}\n</tool_call><|im_end|>")...)
		asst := assistantToolCall(compact, `,"reasoning_content":"I should search."`)
		p2 := render(t, m, msgs(system, toolUser, asst, toolResult), tools, true, "")
		if d := lcp(sampled, p2); len(sampled) != 177 || d != 172 || sampled[d] != 3252 || p2[d] != 788 {
			t.Fatalf("len(C)=%d d=%d C[d]=%d P2[d]=%d", len(sampled), d, sampled[d], p2[d])
		}
	})
	t.Run("enable_thinking false", func(t *testing.T) {
		kw := `{"enable_thinking": false}`
		p1 := render(t, m, msgs(system, toolUser), tools, true, kw)
		if len(p1) != 155 || !slices.Equal(p1[151:], []int64{151667, 271, 151668, 271}) {
			t.Fatalf("len(P1) = %d, tail %v", len(p1), p1[len(p1)-4:])
		}
		c := append(slices.Clone(p1), r1Tool[8:]...)
		p2 := render(t, m, msgs(system, toolUser, assistantToolCall(spaced, ""), toolResult), tools, true, kw)
		if d := lcp(c, p2); len(c) != 174 || d != 151 || c[d] != 151667 || p2[d] != 151657 {
			t.Fatalf("len(C)=%d d=%d C[d]=%d P2[d]=%d", len(c), d, c[d], p2[d])
		}
		if !slices.Equal(p2[len(p2)-4:], []int64{151667, 271, 151668, 271}) {
			t.Fatalf("P2 lacks a fresh empty think block: %v", p2[len(p2)-4:])
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	m := testModel(t)
	want := render(t, m, msgs(system, toolUser), []byte(searchTools), true, "")
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for range 8 {
		wg.Go(func() {
			out, err := m.Render(msgs(system, toolUser), []byte(searchTools), true, false, nil)
			if err != nil {
				errs <- err.Error()
				return
			}
			if got := m.Encode(out); !slices.Equal(got, want) {
				errs <- "different ids"
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
