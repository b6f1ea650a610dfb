package vllmsim

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

const searchR1Prompt = "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. " +
	"After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. " +
	"You can search as many times as your want. If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: %s\n"

func TestSearchR1Policy(t *testing.T) {
	if got := SearchR1Policy([]Message{{Role: "user", Content: "Say hi"}}, 0); got != "" {
		t.Errorf("took a conversation that is not Search-R1's: %q", got)
	}
	info := "<information>Doc 1(Title: \"Germany\") Germany is a country in Europe. The capital city of Germany is Berlin. It is the seat of the national government.\n" +
		"Doc 2(Title: \"France\") France is a country in Europe. The capital city of France is Paris.\n</information>"
	answers := map[string]int{}
	for _, q := range []string{"What is the capital of Germany?", "What is the capital city of Germany?", "What is the capital of germany?", "Which is the capital of Germany?"} {
		for sample := range 8 {
			msgs := []Message{{Role: "user", Content: strings.Replace(searchR1Prompt, "%s", q, 1)}}
			first := SearchR1Policy(msgs, sample)
			switch {
			case strings.Contains(first, "<answer>"):
				answers["guess"]++
				continue
			case !strings.Contains(first, "<search>") || !strings.Contains(first, "</search>"):
				t.Fatalf("first turn %q", first)
			}
			msgs = append(msgs, Message{Role: "assistant", Content: first}, Message{Role: "user", Content: info})
			next := SearchR1Policy(msgs, sample)
			if strings.Contains(next, "<search>") { // a second, sharper search
				msgs = append(msgs, Message{Role: "assistant", Content: next}, Message{Role: "user", Content: info})
				next = SearchR1Policy(msgs, sample)
			}
			_, ans, ok := strings.Cut(next, "<answer>")
			if !ok {
				t.Fatalf("no answer after information: %q", next)
			}
			answers[strings.TrimSpace(strings.TrimSuffix(ans, "</answer>"))]++
		}
	}
	if answers["Berlin"] == 0 || answers["Berlin"] == 32 {
		t.Errorf("answers %v: a policy that is right sometimes, not always", answers)
	}
}

// A request's seed is another draw of a scripted policy, as of vLLM's
// sampling: the same seed (or none) gives the same answer, other seeds
// other answers, so a GRPO group of one question gets rewards that differ.
func TestPolicyDrawsBySeed(t *testing.T) {
	s := New(Options{Policy: SearchR1Policy})
	content := func(seed string) string {
		prompt, _ := json.Marshal(strings.Replace(searchR1Prompt, "%s", "What is the capital of Germany?", 1))
		body := `{"model":"Qwen/Qwen2.5-1.5B-Instruct","messages":[{"role":"user","content":` + string(prompt) + `}],"max_tokens":64` + seed + `}`
		r := post(t, s, "/v1/chat/completions", body)
		mustOK(t, r, "application/json")
		_, after, _ := strings.Cut(string(r.body), `"content":`)
		return after[:strings.Index(after, `","`)]
	}
	if a, b := content(""), content(""); a != b {
		t.Errorf("no seed, two answers: %s / %s", a, b)
	}
	if a, b := content(`,"seed":7`), content(`,"seed":7`); a != b {
		t.Errorf("seed 7, two answers: %s / %s", a, b)
	}
	seen := map[string]bool{}
	for seed := range 16 {
		seen[content(fmt.Sprintf(`,"seed":%d`, seed+1))] = true
	}
	if len(seen) < 2 {
		t.Errorf("16 seeds, one answer: %v", seen)
	}
}
