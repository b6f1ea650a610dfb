package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The Search-R1 prompt (Jin et al., 2025), as Agent Lightning's recipe uses it.
const promptTemplate = "Answer the given question. You must conduct reasoning inside <think> and </think> first every time you get new information. " +
	"After reasoning, if you find you lack some knowledge, you can call a search engine by <search> query </search> and it will return the top searched results between <information> and </information>. " +
	"You can search as many times as your want. If you find no further external knowledge needed, you can directly provide the answer inside <answer> and </answer>, without detailed illustrations. For example, <answer> Beijing </answer>. Question: %s\n"

const invalidAction = "My previous action is invalid. If I want to search, I should put the query between <search> and </search>. " +
	"If I want to give the final answer, I should put the answer between <answer> and </answer>. Let me try again.\n"

type question struct {
	ID       string   `json:"id"`
	Question string   `json:"question"`
	Golden   []string `json:"golden_answers"`
}

// agent runs Search-R1 rollouts through a tokentap sidecar. Nothing in it
// is tokentap-specific except the base URL, and the reward and complete
// calls at the end.
type agent struct {
	sidecar     string // the sidecar's base URL
	apiKey      string
	model       string
	retriever   string // a Search-R1 retrieval server
	maxTurns    int
	maxTokens   int
	temperature float64
	// samplingSeed, when not 0, is sent as every call's seed: runs with
	// different seeds are different draws of the policy (a GRPO group).
	samplingSeed int64
	stream       bool
	http         *http.Client
}

// outcome is what one rollout did.
type outcome struct {
	rolloutID string
	question  question
	answer    string
	reward    float64
	turns     int
}

// rollout runs one question as rollout rid, attempt 0.
func (a *agent) rollout(ctx context.Context, rid string, q question) (outcome, error) {
	out := outcome{rolloutID: rid, question: q}
	base := fmt.Sprintf("%s/rollout/%s/attempt/0", a.sidecar, rid)
	// The only change an agent needs: its base URL names the rollout.
	client := openai.NewClient(option.WithBaseURL(base+"/v1"), option.WithAPIKey(a.apiKey), option.WithMaxRetries(2), option.WithHTTPClient(a.http))

	messages := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf(promptTemplate, q.Question))}
	for out.turns < a.maxTurns && out.answer == "" {
		out.turns++
		text, err := a.generate(ctx, client, messages)
		if err != nil {
			return out, fmt.Errorf("rollout %s turn %d: %w", rid, out.turns, err)
		}
		action, content := parseAction(text)
		// vLLM strips the stop string from the text; the transcript keeps it.
		switch action {
		case "search":
			messages = append(messages, openai.AssistantMessage(text+"</search>"))
			info, err := retrieve(ctx, a.http, a.retriever, content, 3)
			if err != nil {
				return out, err
			}
			messages = append(messages, openai.UserMessage("\n\n<information>"+strings.TrimSpace(info)+"</information>\n\n"))
		case "answer":
			messages = append(messages, openai.AssistantMessage(text+"</answer>"))
			out.answer = content
		default:
			messages = append(messages, openai.AssistantMessage(text), openai.UserMessage(invalidAction))
		}
	}
	out.reward = exactMatch(out.answer, q.Golden)
	// Tell tokentap the reward, then that the rollout is over: complete
	// waits until every call is recorded, so the trainer reads it whole.
	if err := a.post(ctx, base+"/reward", map[string]any{"value": out.reward, "name": "em"}); err != nil {
		return out, err
	}
	return out, a.post(ctx, base+"/complete", nil)
}

// generate asks for the next turn, streaming or not, stopping at the end
// of a search or an answer.
func (a *agent) generate(ctx context.Context, client openai.Client, messages []openai.ChatCompletionMessageParamUnion) (string, error) {
	params := openai.ChatCompletionNewParams{
		Model:       a.model,
		Messages:    messages,
		MaxTokens:   openai.Int(int64(a.maxTokens)),
		Temperature: openai.Float(a.temperature),
		Stop:        openai.ChatCompletionNewParamsStopUnion{OfStringArray: []string{"</search>", "</answer>"}},
	}
	if a.samplingSeed != 0 {
		params.Seed = openai.Int(a.samplingSeed)
	}
	if !a.stream {
		resp, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			return "", err
		}
		if len(resp.Choices) == 0 {
			return "", fmt.Errorf("no choices in the answer")
		}
		return resp.Choices[0].Message.Content, nil
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var text strings.Builder
	for stream.Next() {
		if ch := stream.Current().Choices; len(ch) > 0 {
			text.WriteString(ch[0].Delta.Content)
		}
	}
	return text.String(), stream.Err()
}

func (a *agent) post(ctx context.Context, url string, body any) error {
	var payload []byte
	if body != nil {
		payload, _ = json.Marshal(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, e.Error.Message)
	}
	return nil
}

// parseAction reads the last tag the model opened: a search with its query,
// an answer, or nothing usable.
func parseAction(text string) (action, content string) {
	s, ans := strings.LastIndex(text, "<search>"), strings.LastIndex(text, "<answer>")
	switch {
	case s > ans:
		return "search", strings.TrimSpace(strings.TrimSuffix(text[s+len("<search>"):], "</search>"))
	case ans > s:
		return "answer", strings.TrimSpace(strings.TrimSuffix(text[ans+len("<answer>"):], "</answer>"))
	}
	return "", ""
}

var articles = regexp.MustCompile(`\b(a|an|the)\b`)

// normalize is Search-R1's (and SQuAD's) answer normalization: lower case,
// no punctuation, no articles, single spaces.
func normalize(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsPunct(r) {
			return -1
		}
		return unicode.ToLower(r)
	}, s)
	return strings.Join(strings.Fields(articles.ReplaceAllString(s, " ")), " ")
}

// exactMatch is the reward: 1 when the answer matches a golden answer once
// both are normalized.
func exactMatch(answer string, golden []string) float64 {
	if answer == "" {
		return 0
	}
	for _, g := range golden {
		if normalize(answer) == normalize(g) {
			return 1
		}
	}
	return 0
}
