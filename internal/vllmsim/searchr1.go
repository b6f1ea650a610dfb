package vllmsim

import (
	"fmt"
	"hash/fnv"
	"regexp"
	"strings"
)

// SearchR1Policy is a scripted policy for the Search-R1 recipe (the demo of
// examples/search_r1), for Options.Policy. On a conversation that uses
// Search-R1's prompt (a question to answer with <search> and <answer>
// tags) it plays the model: it searches for the question, reads the
// <information> that comes back, and answers with the phrase of a retrieved
// passage that best matches the question. Like a policy early in training
// it is not always right: by a hash of the question it sometimes searches
// vaguely first, reads the wrong passage, or answers without searching, so
// rewards vary. On any other conversation it returns "", which leaves the
// built-in generator to answer.
func SearchR1Policy(messages []Message, sample int) string {
	question := searchR1Question(messages)
	if question == "" {
		return ""
	}
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", question, sample)
	luck := h.Sum32()

	searches, info := 0, ""
	for _, m := range messages {
		if m.Role == "assistant" && strings.Contains(m.Content, "<search>") {
			searches++
		}
		if m.Role == "user" && strings.Contains(m.Content, "<information>") {
			info = m.Content
		}
	}
	switch {
	case searches == 0 && luck%10 == 9:
		// Overconfident: answers from "memory", with a word of the question.
		words := strings.Fields(strings.TrimSuffix(question, "?"))
		return fmt.Sprintf("<think>I think I know this.</think>\n<answer> %s </answer>", words[len(words)-1])
	case searches == 0 && luck%4 == 0:
		// A vague first query: the question without its subject.
		words := strings.Fields(strings.TrimSuffix(question, "?"))
		return fmt.Sprintf("<think>Let me look this up.</think>\n<search> %s </search>", strings.Join(words[:max(1, len(words)-1)], " "))
	case searches == 0, searches == 1 && luck%4 == 0:
		return fmt.Sprintf("<think>I need to find: %s</think>\n<search> %s </search>", question, question)
	}
	docs := searchR1Docs(info)
	pick := 0
	if luck%10 >= 7 && len(docs) > 1 {
		pick = 1 // reads the wrong passage
	}
	answer := "unknown"
	if pick < len(docs) {
		answer = bestPhrase(question, docs[pick])
	}
	return fmt.Sprintf("<think>The documents say it is %s.</think>\n<answer> %s </answer>", answer, answer)
}

// searchR1Question finds the question of a Search-R1 prompt.
func searchR1Question(messages []Message) string {
	for _, m := range messages {
		if m.Role != "user" {
			continue
		}
		if !strings.Contains(m.Content, "<search>") || !strings.Contains(m.Content, "<answer>") {
			return ""
		}
		_, q, ok := strings.Cut(m.Content, "Question:")
		if !ok {
			return ""
		}
		return strings.TrimSpace(strings.SplitN(strings.TrimSpace(q), "\n", 2)[0])
	}
	return ""
}

// docLine matches a passage of an <information> block in Search-R1's
// format: Doc 1(Title: "...") text.
var docLine = regexp.MustCompile(`Doc \d+\s*\(Title: ([^)]*)\)\s*(.*)`)

func searchR1Docs(info string) []string {
	var docs []string
	for _, line := range strings.Split(info, "\n") {
		if m := docLine.FindStringSubmatch(line); m != nil {
			docs = append(docs, m[2])
		}
	}
	return docs
}

// bestPhrase answers a "What is ...?" question from a passage: among its
// sentences "X is Y", the one sharing most words with the question gives Y.
func bestPhrase(question, doc string) string {
	qwords := map[string]bool{}
	for _, w := range strings.Fields(strings.ToLower(strings.Trim(question, "?"))) {
		qwords[w] = true
	}
	best, bestScore := "", -1
	for _, sentence := range strings.SplitAfter(doc, ". ") {
		sentence = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(sentence), "."))
		i := strings.LastIndex(sentence, " is ")
		if i < 0 {
			continue
		}
		score := 0
		for _, w := range strings.Fields(strings.ToLower(sentence[:i])) {
			if qwords[w] {
				score++
			}
		}
		if score > bestScore {
			best, bestScore = strings.TrimPrefix(sentence[i+len(" is "):], "the "), score
		}
	}
	return best
}
