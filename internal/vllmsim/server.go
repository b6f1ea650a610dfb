// Package vllmsim is tokentap's simulated vLLM: an http.Handler that answers
// the OpenAI-compatible API of vLLM 0.10.2 and later (the releases with
// return_token_ids) byte for byte as documented in
// shared/reference/vllm-wire.md. The proxy's tests and the sidecar's --demo
// mode run against it instead of a GPU server.
//
// What it reproduces: key order (pydantic declaration order), null versus
// absent keys (model_dump vs exclude_unset/exclude_none), compact JSON, SSE
// framing, the usage chunk, stream_options rules, the echo and tool-call
// quirks, and vLLM's error bodies and statuses. The emulated release is a
// current one (nested error format, the chat message's last field named
// "reasoning"); Options.NoTokenIDs emulates a release before 0.10.2.
//
// Prompts are rendered through a Go copy of a Qwen chat template
// (Options.Template: qwen2.5, which keeps history as given, or qwen3, which
// rewrites it as Qwen3-8B's template does, so multi-turn prompts drift from
// the sampled tokens as on a real server), or through Options.ChatTemplate.
//
// What it does not reproduce: a real model. Text comes from a deterministic
// word generator (or Options.Policy / Options.AgentPolicy), and token IDs
// from a small lossless tokenizer whose special tokens are Qwen's
// (<|im_start|>=151644, <|im_end|>=151645, <|endoftext|>=151643,
// <tool_call>=151657, </tool_call>=151658, and under qwen3 <think>=151667,
// </think>=151668, <tool_response>=151665, </tool_response>=151666);
// ordinary IDs are a hash of the text piece. Options.Tokenizer plugs in a
// real one.
//
// Generation is deterministic: the output is a function of the prompt IDs,
// the sample index, seed and temperature (n samples differ even at
// temperature 0). The built-in generator writes 5 to 40 tokens of common
// English words, then EOS (<|im_end|> on chat, <|endoftext|> on completions).
// max_tokens defaults to what is left of the context on chat and to 16 on
// completions, as in vLLM. With tools, a last user message mentioning
// "weather" makes the model call the first tool (hermes <tool_call> format).
//
// Per-request test knobs are request headers:
//   - X-Request-Id: becomes the response id ("chatcmpl-<id>", "cmpl-<id>"),
//     as in vLLM;
//   - X-Vllmsim-Fault: one of the Fault constants: a broken upstream (cut
//     or malformed bodies, missing [DONE], CRLF, split or padded events,
//     comments, hangs, dropped connections, redirects);
//   - X-Vllmsim-Fail-After: N: a stream sends N token chunks, then vLLM's
//     in-stream error event and "data: [DONE]"; a non-stream request gets
//     the 500 "Internal server error" body.
package vllmsim

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Options configure a Server. Zero values give sensible defaults.
type Options struct {
	// Model is the served model name (--served-model-name); requests naming
	// another model get vLLM's 404. Default "Qwen/Qwen2.5-1.5B-Instruct".
	Model string
	// MaxModelLen is the context length (--max-model-len). A prompt of that
	// many tokens or more gets the 400 context-length error, and a prompt
	// plus max_tokens beyond it the 400 "'max_tokens' ... is too large".
	// Default 32768.
	MaxModelLen int
	// APIKey, when set, makes /v1/*, /v2/* and /inference/* require
	// "Authorization: Bearer <key>"; otherwise 401 {"error":"Unauthorized"}.
	APIKey string
	// NoTokenIDs emulates vLLM < 0.10.2: return_token_ids is ignored and the
	// prompt_token_ids / token_ids keys are absent from every body and chunk.
	NoTokenIDs bool
	// Clock gives "created" (and /v1/models' timestamps). Default time.Now.
	Clock func() time.Time
	// Version is what GET /version reports. Default "0.11.0".
	Version string
	// BeforeEvent, when set, is called before each SSE event of a streaming
	// response is written; index 0 is the first event and the final
	// "data: [DONE]" is counted too. Tests use it to hold a stream open or to
	// observe timing. It must return when ctx is done (client gone); the
	// stream then stops without writing the event.
	BeforeEvent func(ctx context.Context, index int)
	// Policy, when set, chooses the assistant text of a chat request (the
	// messages as given, the sample index) instead of the built-in generator.
	// A request with a seed is another draw: its sample indices are offset
	// by the seed (policySample), as vLLM samples differently per seed.
	// The text is tokenised and streamed like any generation; max_tokens and
	// stop strings still apply, and EOS follows it. A policy that returns ""
	// for a conversation leaves it to the built-in generator.
	Policy func(messages []Message, sample int) string
	// AgentPolicy, when set, is asked after Policy (when Policy is nil or
	// returns ""): it sees the offered tools and the thinking switch as well
	// (and the sample index as Policy does).
	// "" again leaves the conversation to the built-in generator.
	// AgentPolicy and DemoPolicy are ready-made ones.
	AgentPolicy func(req PolicyRequest) string
	// TokenDelay, when set, is slept before each token chunk of a stream so
	// that demos and timing tests see tokens arrive over time.
	TokenDelay time.Duration
	// Template selects the chat template and the output parsers:
	//   - "qwen2.5" (default): Qwen2.5-Instruct's template, which renders
	//     history as given; no reasoning parser; hermes tool parser.
	//   - "qwen3": Qwen3-8B's template, which drops the reasoning of
	//     assistant turns before the last user query (and of later turns
	//     whose reasoning the client did not send back), normalises think
	//     whitespace and re-serialises tool arguments; answers as vLLM with
	//     --reasoning-parser qwen3 --tool-call-parser hermes (message
	//     "reasoning" holds the think text). <think>, </think>,
	//     <tool_response> and </tool_response> are single tokens
	//     (151667, 151668, 151665, 151666) and the built-in generator thinks
	//     first unless chat_template_kwargs.enable_thinking is false.
	// Unknown names fall back to qwen2.5; see ValidTemplate.
	Template string
	// Tokenizer, when set, replaces the word tokenizer everywhere (prompt
	// and output IDs, /tokenize, /detokenize, completions, logprob strings).
	// IDs 151643-151645 are still treated as Qwen's special tokens.
	Tokenizer Tokenizer
	// ChatTemplate, when set, renders chat prompts (chat completions and
	// /tokenize with messages) instead of the Go template. The output
	// parsers still follow Template.
	ChatTemplate ChatTemplate
}

// Message is one chat message as vLLM hands it to the chat template (and
// as policies see it): the role, the content flattened to text (string
// content, or the text parts of a content array joined with "\n"), and the
// structured parts of assistant and tool messages.
type Message struct {
	Role    string
	Content string
	// Reasoning is an assistant message's "reasoning" or, when that is
	// absent or empty, its "reasoning_content" (vLLM copies it to both
	// before rendering).
	Reasoning string
	// ToolCalls are an assistant message's tool_calls.
	ToolCalls []ToolCall
	// ToolCallID is a tool message's tool_call_id.
	ToolCallID string

	// reasoningSet records that the client sent reasoning as a string, even
	// "": Qwen3's template then takes it instead of splitting the content
	// at </think>.
	reasoningSet bool
}

// hasReasoning is the template's "message.reasoning_content is string".
func (m Message) hasReasoning() bool { return m.reasoningSet || m.Reasoning != "" }

// ToolCall is one tool call of an assistant message.
type ToolCall struct {
	ID   string
	Name string
	// Arguments is the arguments as the client sent them: the JSON string
	// of the wire format, or an object's JSON when it sent an object.
	Arguments string
}

// Server is a simulated vLLM OpenAI-compatible server. It implements
// http.Handler and is safe for concurrent use.
type Server struct {
	opts     Options
	tok      *tokenizer
	template string // TemplateQwen25 or TemplateQwen3

	running          atomic.Int64
	promptTokens     atomic.Int64
	generationTokens atomic.Int64
	requestsOK       atomic.Int64
}

// New returns a Server with opts, defaults filled in.
func New(opts Options) *Server {
	template, specials := TemplateQwen25, qwen25Specials
	if opts.Template == TemplateQwen3 {
		template, specials = TemplateQwen3, qwen3Specials
	}
	if opts.Model == "" {
		opts.Model = "Qwen/Qwen2.5-1.5B-Instruct"
		if template == TemplateQwen3 {
			opts.Model = "Qwen/Qwen3-8B"
		}
	}
	if opts.MaxModelLen <= 0 {
		opts.MaxModelLen = 32768
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Version == "" {
		opts.Version = "0.11.0"
	}
	s := &Server{opts: opts, tok: newTokenizer(specials), template: template}
	s.registerVocabulary()
	return s
}

// registerVocabulary assigns IDs to the generator's pieces and the chat
// template's pieces in a fixed order, so that their IDs never depend on which
// requests came first (see tokenizer.idLocked on hash collisions).
func (s *Server) registerVocabulary() {
	for _, w := range wordList {
		for _, p := range []string{w, " " + w, capitalize(w), " " + capitalize(w)} {
			s.tok.id(p)
		}
	}
	for _, p := range []string{".", ",", "!", "?", "\n", " "} {
		s.tok.id(p)
	}
	s.tok.encode(renderGo(s.template, templateInput{messages: []Message{{Role: "user", Content: "Hi"}}, addGenerationPrompt: true}))
	s.tok.encode(toolCallText("get_weather"))
	if s.template == TemplateQwen3 {
		s.tok.encode(thinkBlock("Hi"))
	}
}

// Tokenize returns the simulator's token IDs for text (special tokens are
// recognised, no BOS is added), as the chat and completions paths compute
// them (through Options.Tokenizer when set).
func (s *Server) Tokenize(text string) []int64 { return s.encode(text) }

// Detokenize returns the text of ids, special tokens included, for every ID
// this server has produced or seen; unknown IDs contribute "". A server
// remembers up to 112,500 distinct pieces; pieces first seen after that keep
// their nominal ID but are not remembered.
func (s *Server) Detokenize(ids []int64) string { return s.decode(ids) }

// RenderChat returns the chat template text for messages through the
// server's template (Options.ChatTemplate, else Options.Template): for
// qwen2.5, Qwen's "<|im_start|>{role}\n{content}<|im_end|>\n" per message,
// the default system message when the first one is not a system message,
// and "<|im_start|>assistant\n" when addGenerationPrompt is set.
// Tokenize(RenderChat(msgs, true)) is the prompt_token_ids of a chat request
// without tools. A failing ChatTemplate gives "".
func (s *Server) RenderChat(messages []Message, addGenerationPrompt bool) string {
	text, _ := s.renderPrompt(&chatRequest{messages: messages, addGenerationPrompt: addGenerationPrompt})
	return text
}

// route is one registered path: its methods and handler.
type route struct {
	methods []string
	handle  func(s *Server, w http.ResponseWriter, r *http.Request)
}

var routes = map[string]route{
	"/health":              {[]string{http.MethodGet}, (*Server).handleHealth},
	"/ping":                {[]string{http.MethodGet, http.MethodPost}, (*Server).handleHealth},
	"/version":             {[]string{http.MethodGet}, (*Server).handleVersion},
	"/load":                {[]string{http.MethodGet}, (*Server).handleLoad},
	"/metrics":             {[]string{http.MethodGet}, (*Server).handleMetrics},
	"/v1/models":           {[]string{http.MethodGet}, (*Server).handleModels},
	"/tokenize":            {[]string{http.MethodPost}, (*Server).handleTokenize},
	"/detokenize":          {[]string{http.MethodPost}, (*Server).handleDetokenize},
	"/v1/chat/completions": {[]string{http.MethodPost}, (*Server).handleChat},
	"/v1/completions":      {[]string{http.MethodPost}, (*Server).handleCompletions},
}

// guardedPrefixes are the paths vLLM's --api-key middleware protects.
var guardedPrefixes = []string{"/v1", "/v2", "/inference"}

// ServeHTTP routes a request like vLLM's FastAPI app: the API-key middleware
// first, then the router (404 {"detail":"Not Found"}, 405 {"detail":"Method
// Not Allowed"}), then the endpoint.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if s.opts.APIKey != "" && r.Method != http.MethodOptions && hasGuardedPrefix(path) && !s.authorized(r) {
		writeJSON(w, http.StatusUnauthorized, []byte(`{"error":"Unauthorized"}`))
		return
	}
	rt, ok := routes[path]
	if !ok {
		writeJSON(w, http.StatusNotFound, []byte(`{"detail":"Not Found"}`))
		return
	}
	allowed := false
	var allow []string
	for _, m := range rt.methods {
		allow = append(allow, m)
		if m == http.MethodGet {
			// Starlette serves HEAD on every GET route.
			allow = append(allow, http.MethodHead)
		}
	}
	for _, m := range allow {
		if r.Method == m {
			allowed = true
		}
	}
	if !allowed {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, []byte(`{"detail":"Method Not Allowed"}`))
		return
	}
	s.withFault(w, r, func(w http.ResponseWriter, r *http.Request) { rt.handle(s, w, r) })
}

func hasGuardedPrefix(path string) bool {
	for _, p := range guardedPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// authorized checks "Authorization: Bearer <key>" (scheme case-insensitive).
func (s *Server) authorized(r *http.Request) bool {
	scheme, param, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(param), []byte(s.opts.APIKey)) == 1
}

// checkModel is _check_model: an absent or empty model means the served one.
func (s *Server) checkModel(model string) *apiError {
	if model == "" || model == s.opts.Model {
		return nil
	}
	return notFoundModel(model)
}

// responseID is vLLM's request id: the X-Request-Id header, else the body's
// request_id, else 16 random hex digits.
func responseID(prefix string, r *http.Request, bodyID string) string {
	if h := r.Header.Get("X-Request-Id"); h != "" {
		return prefix + h
	}
	if bodyID != "" {
		return prefix + bodyID
	}
	return prefix + fmt.Sprintf("%016x", rand.Uint64())
}

// failAfter reads the X-Vllmsim-Fail-After knob; -1 when absent or invalid.
func failAfter(r *http.Request) int {
	v := r.Header.Get("X-Vllmsim-Fail-After")
	if v == "" {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return -1
	}
	return n
}

// readBody reads a request body; a read error means the client is gone.
func readBody(r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(r.Body)
	return b, err == nil
}

// checkLengths is vLLM's prompt/max_tokens validation against max_model_len
// and returns the effective max_tokens (default: what is left of the
// context).
func (s *Server) checkLengths(promptLen int, maxTokens *int64) (int, *apiError) {
	ml := s.opts.MaxModelLen
	if promptLen >= ml {
		return 0, badRequest(fmt.Sprintf("This model's maximum context length is %d tokens. However, your request has %d input tokens. Please reduce the length of the input messages.", ml, promptLen), strPtr("input_tokens"))
	}
	if maxTokens == nil {
		return ml - promptLen, nil
	}
	mt := *maxTokens
	if mt > int64(ml-promptLen) { // (not promptLen+mt > ml: that can overflow)
		return 0, badRequest(fmt.Sprintf("'max_tokens' or 'max_completion_tokens' is too large: %d. This model's maximum context length is %d tokens and your request has %d input tokens (%d > %d - %d).", mt, ml, promptLen, mt, ml, promptLen), strPtr("max_tokens"))
	}
	return int(mt), nil
}

// maxLogprobs is vLLM's default --max-logprobs.
const maxLogprobs = 20

// checkSampling is SamplingParams' argument validation plus the engine's
// logprob limits. sampleLogprobs/promptLogprobs are nil when not requested.
func checkSampling(c *commonRequest, maxTokens int, sampleLogprobs, promptLogprobs *int64) *apiError {
	if c.n < 1 {
		return badRequest(fmt.Sprintf("n must be at least 1, got %d.", c.n), strPtr("n"))
	}
	if c.temperature != nil && *c.temperature < 0 {
		return badRequest("temperature must be non-negative, got "+pyFloat(*c.temperature)+".", strPtr("temperature"))
	}
	if c.topP != nil && (*c.topP <= 0 || *c.topP > 1) {
		return badRequest("top_p must be in (0, 1], got "+pyFloat(*c.topP)+".", strPtr("top_p"))
	}
	if maxTokens < 1 {
		return badRequest(fmt.Sprintf("max_tokens must be at least 1, got %d.", maxTokens), strPtr("max_tokens"))
	}
	if c.minTokens < 0 {
		return badRequest(fmt.Sprintf("min_tokens must be greater than or equal to 0, got %d.", c.minTokens), strPtr("min_tokens"))
	}
	if c.minTokens > int64(maxTokens) {
		return badRequest(fmt.Sprintf("min_tokens must be less than or equal to max_tokens=%d, got %d.", maxTokens, c.minTokens), strPtr("min_tokens"))
	}
	if sampleLogprobs != nil {
		n := *sampleLogprobs
		if n == -1 {
			n = vocabSize
		}
		if n > maxLogprobs {
			return badRequest(fmt.Sprintf("Requested sample logprobs of %d, which is greater than max allowed: %d", n, maxLogprobs), nil)
		}
	}
	if promptLogprobs != nil {
		n := *promptLogprobs
		if n == -1 {
			n = vocabSize
		}
		if n > maxLogprobs {
			return badRequest(fmt.Sprintf("Requested prompt logprobs of %d, which is greater than max allowed: %d", n, maxLogprobs), nil)
		}
	}
	return nil
}

// baseGenParams fills the engine parameters common to chat and completions.
func baseGenParams(c *commonRequest, promptIDs []int64, maxTokens int) *genParams {
	temp := 1.0
	if c.temperature != nil {
		temp = *c.temperature
	}
	return &genParams{
		promptIDs:      promptIDs,
		n:              c.n,
		maxTokens:      maxTokens,
		seed:           c.seed,
		temperature:    temp,
		stop:           c.stop,
		stopTokenIDs:   c.stopTokenIDs,
		includeStopStr: c.includeStopStr,
		ignoreEOS:      c.ignoreEOS,
		minTokens:      int(c.minTokens),
		skipSpecial:    c.skipSpecial,
	}
}

// usageFlags is should_include_usage: without stream_options no usage chunk;
// with them include_usage (default true) and continuous_usage_stats.
func usageFlags(c *commonRequest) (include, continuous bool) {
	if c.streamOpts == nil {
		return false, false
	}
	include = c.streamOpts.includeUsage
	return include, include && c.streamOpts.continuous
}

// appendUsage appends a UsageInfo. withDetails adds "prompt_tokens_details":null
// (model_dump without exclude_none).
func appendUsage(b []byte, prompt, completion int, withDetails bool) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+completion), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(completion), 10)
	if withDetails {
		b = append(b, `,"prompt_tokens_details":null`...)
	}
	return append(b, '}')
}

// sseWriter writes SSE events, one flush per event, honouring cancellation
// and the BeforeEvent hook.
type sseWriter struct {
	s     *Server
	w     http.ResponseWriter
	ctx   context.Context
	n     int
	ok    bool
	flush func()
}

// startSSE sends the 200 and the event-stream headers at once, as vLLM does
// before generation starts.
func (s *Server) startSSE(w http.ResponseWriter, r *http.Request) *sseWriter {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	sw := &sseWriter{s: s, w: w, ctx: r.Context(), ok: true, flush: func() {}}
	if f, ok := w.(http.Flusher); ok {
		sw.flush = f.Flush
	}
	sw.flush()
	return sw
}

// event writes "data: <payload>\n\n" and flushes. token marks token chunks,
// which TokenDelay paces. It reports false once the client is gone.
func (sw *sseWriter) event(payload []byte, token bool) bool {
	if !sw.ok {
		return false
	}
	if token && sw.s.opts.TokenDelay > 0 {
		t := time.NewTimer(sw.s.opts.TokenDelay)
		select {
		case <-sw.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
	if hook := sw.s.opts.BeforeEvent; hook != nil {
		hook(sw.ctx, sw.n)
	}
	if sw.ctx.Err() != nil {
		sw.ok = false
		return false
	}
	buf := make([]byte, 0, len(payload)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, payload...)
	buf = append(buf, "\n\n"...)
	if _, err := sw.w.Write(buf); err != nil {
		sw.ok = false
		return false
	}
	sw.flush()
	sw.n++
	return true
}

// done writes the terminating "data: [DONE]".
func (sw *sseWriter) done() { sw.event([]byte("[DONE]"), false) }

// fail writes vLLM's in-stream error event and the terminator.
func (sw *sseWriter) fail() {
	if sw.event([]byte(streamErrorEvent), false) {
		sw.done()
	}
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleVersion(w http.ResponseWriter, r *http.Request) {
	b := append([]byte(`{"version":`), appendJSONString(nil, s.opts.Version)...)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (s *Server) handleLoad(w http.ResponseWriter, r *http.Request) {
	b := strconv.AppendInt([]byte(`{"server_load":`), s.running.Load(), 10)
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	labels := `{model_name="` + strings.ReplaceAll(s.opts.Model, `"`, `\"`) + `",engine="0"}`
	var sb strings.Builder
	metric := func(name, typ, help string, v int64) {
		fmt.Fprintf(&sb, "# HELP %s %s\n# TYPE %s %s\n%s%s %s\n", name, help, name, typ, name, labels, pyFloat(float64(v)))
	}
	metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.", s.running.Load())
	metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.", 0)
	metric("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.", s.promptTokens.Load())
	metric("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.", s.generationTokens.Load())
	metric("vllm:request_success_total", "counter", "Count of successfully processed requests.", s.requestsOK.Load())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, sb.String())
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	created := s.opts.Clock().Unix()
	permID := fmt.Sprintf("modelperm-%016x", mix(uint64(fnv1a32(s.opts.Model))))
	b := []byte(`{"object":"list","data":[{"id":`)
	b = appendJSONString(b, s.opts.Model)
	b = append(b, `,"object":"model","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"owned_by":"vllm","root":`...)
	b = appendJSONString(b, s.opts.Model)
	b = append(b, `,"parent":null,"max_model_len":`...)
	b = strconv.AppendInt(b, int64(s.opts.MaxModelLen), 10)
	b = append(b, `,"permission":[{"id":`...)
	b = appendJSONString(b, permID)
	b = append(b, `,"object":"model_permission","created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"allow_create_engine":false,"allow_sampling":true,"allow_logprobs":true,"allow_search_indices":false,"allow_view":true,"allow_fine_tuning":false,"organization":"*","group":null,"is_blocking":false}]}]}`...)
	writeJSON(w, http.StatusOK, b)
}

func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(r)
	if !ok {
		return
	}
	req, e := parseTokenizeRequest(raw)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := s.checkModel(req.model); e != nil {
		writeAPIError(w, e)
		return
	}
	var text string
	if req.chat != nil {
		t, e := s.renderPrompt(req.chat)
		if e != nil {
			writeAPIError(w, e)
			return
		}
		text = t
	} else if req.prompt != nil {
		text = *req.prompt
	}
	ids := s.encode(text)
	b := []byte(`{"count":`)
	b = strconv.AppendInt(b, int64(len(ids)), 10)
	b = append(b, `,"max_model_len":`...)
	b = strconv.AppendInt(b, int64(s.opts.MaxModelLen), 10)
	b = append(b, `,"tokens":`...)
	b = appendInts(b, ids)
	b = append(b, `,"token_strs":`...)
	if req.returnTokStrs {
		b = append(b, '[')
		for i, id := range ids {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s.tokenString(id))
		}
		b = append(b, ']')
	} else {
		b = append(b, "null"...)
	}
	writeJSON(w, http.StatusOK, append(b, '}'))
}

func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) {
	raw, ok := readBody(r)
	if !ok {
		return
	}
	req, e := parseDetokenizeRequest(raw)
	if e != nil {
		writeAPIError(w, e)
		return
	}
	if e := s.checkModel(req.model); e != nil {
		writeAPIError(w, e)
		return
	}
	b := appendJSONString([]byte(`{"prompt":`), s.decode(req.tokens))
	writeJSON(w, http.StatusOK, append(b, '}'))
}
