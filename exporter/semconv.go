package exporter

// Span attribute keys. The GenAI names are those of OpenTelemetry semantic
// conventions v1.41.0; the Go semconv packages after it dropped them (they
// moved to a GenAI conventions repository with no release yet), so they are
// defined here. Token IDs have no standard name: the bare keys are the ones
// Agent Lightning's adapters read.
const (
	AttrRolloutID     = "rollout.id"
	AttrAttemptID     = "rollout.attempt_id"
	AttrSequenceID    = "rollout.sequence_id"
	AttrPolicyVersion = "rollout.policy_version"
	AttrPolicyEnd     = "rollout.policy_version.end"
	AttrUpstream      = "rollout.upstream"
	// AttrForcedParams lists the request fields --force-param set.
	AttrForcedParams = "tokentap.request.forced_params"
	// AttrRequestedModel is the model the agent named when --model-map
	// sent another upstream (gen_ai.request.model).
	AttrRequestedModel = "tokentap.request.model_requested"
	// AttrDialect is the API the agent spoke (Dialect* below): a call
	// tokentap translated (Anthropic Messages) is recorded as the chat call
	// it became, and this says what the agent sent and received.
	AttrDialect = "tokentap.dialect"

	AttrAGLRolloutID  = "agentlightning.rollout_id"
	AttrAGLAttemptID  = "agentlightning.attempt_id"
	AttrAGLSequenceID = "agentlightning.span_sequence_id"

	AttrPromptTokenIDs   = "prompt_token_ids"
	AttrResponseTokenIDs = "response_token_ids"
	AttrResponseLogprobs = "response_logprobs"

	AttrOperation      = "gen_ai.operation.name"
	AttrProvider       = "gen_ai.provider.name"
	AttrRequestModel   = "gen_ai.request.model"
	AttrTemperature    = "gen_ai.request.temperature"
	AttrTopP           = "gen_ai.request.top_p"
	AttrMaxTokens      = "gen_ai.request.max_tokens"
	AttrSeed           = "gen_ai.request.seed"
	AttrStream         = "gen_ai.request.stream"
	AttrChoiceCount    = "gen_ai.request.choice.count"
	AttrResponseID     = "gen_ai.response.id"
	AttrResponseModel  = "gen_ai.response.model"
	AttrFinishReasons  = "gen_ai.response.finish_reasons"
	AttrTimeToFirst    = "gen_ai.response.time_to_first_chunk"
	AttrInputTokens    = "gen_ai.usage.input_tokens"
	AttrOutputTokens   = "gen_ai.usage.output_tokens"
	AttrInputMessages  = "gen_ai.input.messages"
	AttrOutputMessages = "gen_ai.output.messages"

	AttrHTTPStatus = "http.response.status_code"
	AttrURLPath    = "url.path"
	AttrErrorType  = "error.type"

	AttrCallStatus      = "tokentap.call.status"
	AttrTokenIDsValid   = "tokentap.token_ids.valid"
	AttrTokenIDsProblem = "tokentap.token_ids.problem"
	AttrTokenIDsChecks  = "tokentap.token_ids.checks"

	// Event gen_ai.choice, one per choice.
	EventChoice           = "gen_ai.choice"
	AttrChoiceIndex       = "index"
	AttrChoicePromptIndex = "prompt_index"
	AttrChoiceTokenIDs    = "token_ids"
	AttrChoiceLogprobs    = "logprobs"
	AttrChoiceFinish      = "finish_reason"
	AttrChoiceText        = "text"
	AttrChoiceReasoning   = "reasoning"
	AttrChoiceToolCalls   = "tool_calls"

	// Event tokentap.prompt, one per prompt of a completions call with
	// several prompts.
	EventPrompt           = "tokentap.prompt"
	AttrPromptIndex       = "prompt_index"
	AttrPromptEventTokens = "token_ids"

	// Rewards, as Agent Lightning's emit_reward writes them.
	SpanNameAnnotation = "agentlightning.annotation"
	AttrRewardName     = "agentlightning.reward.0.name"
	AttrRewardValue    = "agentlightning.reward.0.value"
	// A reward the agent posted for one call ("sequence_id") and maybe
	// one choice of it ("choice_index"; absent: every choice).
	AttrRewardTargetSeq    = "tokentap.reward.sequence_id"
	AttrRewardTargetChoice = "tokentap.reward.choice_index"

	// The values of AttrDialect.
	DialectOpenAIChat        = "openai.chat"
	DialectOpenAICompletions = "openai.completions"
	DialectAnthropicMessages = "anthropic.messages"
	DialectOpenAIResponses   = "openai.responses"

	ProviderVLLM = "vllm"
	ServiceName  = "tokentap"
)
