package main

import (
	"context"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tokentap/tokentap/internal/vllmsim"
)

// Harnesses send their own model names: --model-map sends them as the model
// vLLM serves, and the calls view records both. A name no rule matches goes
// as sent (and vLLM answers 404 for it).
func TestModelMap(t *testing.T) {
	sim := newSim(t, vllmsim.Options{})
	sc := start(t, "--upstream", sim.URL, "--in-memory",
		"--model-map", "claude-*-haiku-*=no-such-model", "--model-map", "claude-*="+simModel)
	client := openai.NewClient(option.WithBaseURL(sc.url+"/rollout/mm/attempt/0/v1"), option.WithAPIKey("sk"), option.WithMaxRetries(0))
	ctx := context.Background()
	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model: "claude-sonnet-4-5", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != simModel {
		t.Errorf("answered by %q", resp.Model)
	}
	for _, model := range []string{"claude-3-5-haiku-1022", "gpt-5"} { // mapped to a model no one serves; not mapped
		if _, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
		}); err == nil {
			t.Errorf("%s: answered", model)
		}
	}
	var calls struct {
		Calls []struct {
			Model          string `json:"model"`
			RequestedModel string `json:"requested_model"`
			HTTPStatus     int    `json:"http_status"`
		} `json:"calls"`
	}
	getJSON(t, sc.url+"/api/v1/rollouts/mm/attempts/0/calls", &calls)
	want := []struct {
		model, requested string
		status           int
	}{{simModel, "claude-sonnet-4-5", 200}, {"no-such-model", "claude-3-5-haiku-1022", 404}, {"gpt-5", "", 404}}
	if len(calls.Calls) != len(want) {
		t.Fatalf("%d calls recorded: %+v", len(calls.Calls), calls.Calls)
	}
	for i, w := range want {
		if c := calls.Calls[i]; c.Model != w.model || c.RequestedModel != w.requested || c.HTTPStatus != w.status {
			t.Errorf("call %d: %+v, want %+v", i+1, c, w)
		}
	}
}
