// Package api serves what trainers and operators read from tokentap: the
// rollout list, an attempt's calls and its training triplets (DESIGN §5),
// and the health probes. It reads the store through the exporter's span
// decoding and assembles triplets with the rollout package's rules.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/internal/httperr"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/store"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/trajectory"
)

// Config configures the API.
type Config struct {
	Store *store.Store
	// AdminToken, when set, must be presented as "Authorization: Bearer
	// <token>" on /api/v1/* and /admin/*.
	AdminToken string
	// UpstreamReady reports whether the upstream answered its health probe
	// recently (for /readyz).
	UpstreamReady func() bool
	// State, when set, gives the body of GET /admin/state.
	State func(ctx context.Context) any
	// Control, when set (with State), serves the admin levers: pause,
	// resume, policy version, replica set.
	Control Control
	// InFlight, when set, reports the attempts with calls in flight, so
	// that "latest" also names an attempt nothing of which is recorded yet.
	InFlight InFlight
	// Decoder, when set, gives the function that decodes token IDs for a
	// rollout's calls of a model (the upstream's /detokenize), for the text
	// of drift entries. Without it, or when it fails, that text is null.
	Decoder func(rolloutID, model string) trajectory.Decoder
	// OnDrift, when set, hears of the drifted calls of every attempt that
	// completes, by cause (CountDrift).
	OnDrift func(cause string, calls int)
	Logger  zerolog.Logger
}

// API is the trainer-facing handler.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// New builds the API.
func New(cfg Config) *API {
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", a.healthz)
	a.mux.HandleFunc("GET /readyz", a.readyz)
	a.mux.Handle("GET /api/v1/rollouts", a.guard(a.rollouts))
	a.mux.Handle("GET /api/v1/rollouts/{rid}/attempts/{aid}/calls", a.guard(a.calls))
	a.mux.Handle("GET /api/v1/rollouts/{rid}/attempts/{aid}/triplets", a.guard(a.triplets))
	a.mux.Handle("GET /api/v1/rollouts/{rid}/attempts/{aid}/trajectories", a.guard(a.trajectories))
	a.mux.Handle("GET /api/v1/trajectories", a.guard(a.feed))
	a.mux.Handle("GET /api/v1/traces", a.guard(a.traces))
	if cfg.State != nil {
		a.mux.Handle("GET /admin/state", a.guard(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusOK, cfg.State(r.Context()))
		}))
	}
	if cfg.Control != nil && cfg.State != nil {
		a.adminRoutes()
	}
	a.mux.Handle("/api/", a.guard(notFound))
	a.mux.Handle("/admin/", a.guard(notFound))
	a.mux.HandleFunc("/", notFound)
	return a
}

// Handle adds a route (with the admin guard for /api/ and /admin/ paths).
func (a *API) Handle(pattern string, h http.Handler) {
	path := pattern
	if i := strings.IndexByte(path, ' '); i >= 0 {
		path = path[i+1:]
	}
	if strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/admin/") {
		h = a.guard(h.ServeHTTP)
	}
	a.mux.Handle(pattern, h)
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

// guard enforces the admin token, compared in constant time.
func (a *API) guard(h http.HandlerFunc) http.Handler {
	if a.cfg.AdminToken == "" {
		return h
	}
	want := []byte("Bearer " + a.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokentap"`)
			httperr.Write(w, http.StatusUnauthorized, "this route needs Authorization: Bearer <admin token>")
			return
		}
		h(w, r)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	httperr.Write(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	storeOK := a.cfg.Store != nil && a.cfg.Store.Writable() == nil
	upstreamOK := a.cfg.UpstreamReady == nil || a.cfg.UpstreamReady()
	status := http.StatusOK
	if !storeOK || !upstreamOK {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]bool{"store": storeOK, "upstream": upstreamOK})
}

type rolloutView struct {
	RolloutID string        `json:"rollout_id"`
	Attempts  []attemptView `json:"attempts"`
	Calls     int           `json:"calls"`
	Rewards   int           `json:"rewards"`
	LastSeq   uint64        `json:"last_sequence_id"`
	UpdatedAt time.Time     `json:"updated_at"`
	// Drifted counts the drifted calls of its diagnosed attempts.
	Drifted int `json:"drifted"`
}

type attemptView struct {
	AttemptID string    `json:"attempt_id"`
	Calls     int       `json:"calls"`
	Rewards   int       `json:"rewards"`
	FirstSeq  uint64    `json:"first_sequence_id"`
	LastSeq   uint64    `json:"last_sequence_id"`
	Complete  bool      `json:"complete"`
	UpdatedAt time.Time `json:"updated_at"`
	// Drift counts its drifted calls by cause, once diagnosed (after it
	// completed); absent before.
	Drift map[string]int `json:"drift,omitempty"`
}

// rollouts lists rollouts: GET /api/v1/rollouts?limit=&after=.
func (a *API) rollouts(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", 100, 1, 10000)
	if err != nil {
		httperr.Write(w, http.StatusBadRequest, err.Error())
		return
	}
	after := r.URL.Query().Get("after")
	sums, err := a.cfg.Store.Rollouts(r.Context(), after, limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := struct {
		Rollouts []rolloutView `json:"rollouts"`
		Next     string        `json:"next"`
	}{Rollouts: make([]rolloutView, 0, len(sums))}
	for _, s := range sums {
		v := rolloutView{RolloutID: s.RolloutID, Calls: s.Calls, Rewards: s.Rewards, LastSeq: s.LastSeq, UpdatedAt: s.UpdatedAt, Attempts: []attemptView{}}
		for _, at := range s.Attempts {
			v.Attempts = append(v.Attempts, attemptView{
				AttemptID: at.AttemptID, Calls: at.Calls, Rewards: at.Rewards, FirstSeq: at.FirstSeq,
				LastSeq: at.LastSeq, Complete: at.Complete, UpdatedAt: at.UpdatedAt, Drift: at.Drift,
			})
			for _, n := range at.Drift {
				v.Drifted += n
			}
		}
		out.Rollouts = append(out.Rollouts, v)
	}
	if len(sums) == limit {
		out.Next = sums[len(sums)-1].RolloutID
	}
	writeJSON(w, http.StatusOK, out)
}

// decoded is an attempt's records read back.
type decoded struct {
	calls   []*exporter.Call
	rewards []rollout.Reward
}

// decode reads an attempt's records back, prompts whole: a call stored as
// a delta of an earlier one is put back together from the others.
func decode(recs []store.Record) (decoded, error) {
	var d decoded
	var prompts *exporter.Resolver
	for _, rec := range recs {
		data := rec.Data
		if rec.Kind == store.KindCall {
			if prompts == nil {
				prompts = exporter.NewResolver(nil)
				prompts.Add(recs...)
			}
			var err error
			if data, err = prompts.Full(context.Background(), rec); err != nil {
				return d, fmt.Errorf("record %d: %w", rec.Cursor, err)
			}
		}
		_, sp, err := exporter.DecodeRecord(data)
		if err != nil {
			return d, fmt.Errorf("record %d: %w", rec.Cursor, err)
		}
		if rec.Kind == store.KindCall || exporter.IsCall(sp) {
			c := exporter.CallFromSpan(sp)
			c.Seq = rec.Seq
			d.calls = append(d.calls, c)
			continue
		}
		if name, value, ok := exporter.RewardFromSpan(sp); ok {
			target, choice := exporter.RewardTarget(sp)
			d.rewards = append(d.rewards, rollout.Reward{Seq: rec.Seq, Name: name, Value: value, TargetSeq: target, TargetChoice: choice})
		}
	}
	return d, nil
}

type callView struct {
	SequenceID      uint64       `json:"sequence_id"`
	TraceID         string       `json:"trace_id"`
	SpanID          string       `json:"span_id"`
	Operation       string       `json:"operation"`
	Dialect         string       `json:"dialect"` // the API the agent spoke: openai.chat, anthropic.messages, ...
	Path            string       `json:"path"`
	Model           string       `json:"model"`
	RequestedModel  string       `json:"requested_model,omitempty"` // the agent's model name, when --model-map changed it
	ResponseID      string       `json:"response_id"`
	Stream          bool         `json:"stream"`
	Status          string       `json:"status"`
	HTTPStatus      int          `json:"http_status"`
	Error           *string      `json:"error"`
	StartTime       time.Time    `json:"start_time"`
	EndTime         time.Time    `json:"end_time"`
	PromptTokenIDs  []int64      `json:"prompt_token_ids"`
	Prompts         [][]int64    `json:"prompts,omitempty"`
	Choices         []choiceView `json:"choices"`
	Usage           *usageView   `json:"usage"`
	TokenIDsValid   bool         `json:"token_ids_valid"`
	TokenIDsProblem *string      `json:"token_ids_problem"`
	TokenIDsChecks  []string     `json:"token_ids_checks"` // the checks behind token_ids_valid (tokenids.Verdict.Checks); null if not recorded
	Upstream        string       `json:"upstream,omitempty"`
	PolicyVersion   string       `json:"policy_version,omitempty"`
	PolicyEnd       string       `json:"policy_version_end,omitempty"`
	Sampling        samplingView `json:"sampling"`
}

// samplingView is what the call was sampled with, as sent to vLLM (after
// --force-param): what importance ratios and on-policy checks need.
type samplingView struct {
	Temperature *float64 `json:"temperature,omitempty"`
	TopP        *float64 `json:"top_p,omitempty"`
	MaxTokens   *int64   `json:"max_tokens,omitempty"`
	Seed        *int64   `json:"seed,omitempty"`
	N           int      `json:"n,omitempty"`
	Forced      []string `json:"forced,omitempty"`
}

type choiceView struct {
	Index        int             `json:"index"`
	PromptIndex  int             `json:"prompt_index"`
	TokenIDs     []int64         `json:"token_ids"`
	Logprobs     []float64       `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
	Text         string          `json:"text"`
	ToolCalls    json.RawMessage `json:"tool_calls,omitempty"`
}

type usageView struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type rewardView struct {
	SequenceID uint64  `json:"sequence_id"`
	Name       string  `json:"name"`
	Value      float64 `json:"value"`
	// For a reward posted for one call (and choice).
	TargetSequenceID uint64 `json:"target_sequence_id,omitempty"`
	TargetChoice     *int   `json:"target_choice_index,omitempty"`
}

func viewReward(rw rollout.Reward) rewardView {
	v := rewardView{SequenceID: rw.Seq, Name: rw.Name, Value: rw.Value, TargetSequenceID: rw.TargetSeq}
	if rw.Targeted() && rw.TargetChoice >= 0 {
		c := rw.TargetChoice
		v.TargetChoice = &c
	}
	return v
}

func viewCall(c *exporter.Call) callView {
	v := callView{
		SequenceID: c.Seq, TraceID: hex.EncodeToString(c.TraceID[:]), SpanID: hex.EncodeToString(c.SpanID[:]),
		Operation: c.Request.Endpoint.Operation(), Dialect: c.DialectName(), Path: c.Path, Model: c.Request.Model, RequestedModel: c.Request.RequestedModel, Stream: c.Request.Stream,
		ResponseID: c.Response.ResponseID,
		Status:     string(c.Status), HTTPStatus: c.HTTPStatus, StartTime: c.Start, EndTime: c.End,
		PromptTokenIDs: c.Response.PromptTokenIDs, TokenIDsValid: c.Valid, TokenIDsChecks: c.Checks, Choices: []choiceView{},
		Upstream: c.Upstream, PolicyVersion: c.PolicyVersion, PolicyEnd: c.PolicyVersionEnd,
		Sampling: samplingView{
			Temperature: c.Request.Temperature, TopP: c.Request.TopP, MaxTokens: c.Request.MaxTokens,
			Seed: c.Request.Seed, N: c.Request.N, Forced: c.Request.Forced,
		},
	}
	if v.Model == "" {
		v.Model = c.Response.Model
	}
	if c.Error != "" {
		v.Error = &c.Error
	}
	if c.Problem != "" {
		v.TokenIDsProblem = &c.Problem
	}
	if len(c.Response.Prompts) > 1 {
		v.Prompts = c.Response.Prompts
	}
	if u := c.Response.Usage; u != nil {
		v.Usage = &usageView{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	}
	for _, ch := range c.Response.Choices {
		v.Choices = append(v.Choices, choiceView{
			Index: ch.Index, PromptIndex: ch.PromptIndex, TokenIDs: ch.TokenIDs, Logprobs: ch.Logprobs,
			FinishReason: ch.FinishReason, Text: ch.Text, ToolCalls: ch.ToolCalls,
		})
	}
	return v
}

// readAttempt reads and decodes the attempt a view request names; on
// failure it has answered the request.
func (a *API) readAttempt(w http.ResponseWriter, r *http.Request) (target, decoded, bool) {
	t, status, err := a.resolve(r.Context(), r.PathValue("rid"), r.PathValue("aid"), true)
	if err != nil {
		a.failStatus(w, status, err)
		return t, decoded{}, false
	}
	d, err := decode(t.recs)
	if err != nil {
		a.fail(w, err)
		return t, d, false
	}
	return t, d, true
}

// calls serves the calls view of one attempt.
func (a *API) calls(w http.ResponseWriter, r *http.Request) {
	t, d, ok := a.readAttempt(w, r)
	if !ok {
		return
	}
	out := struct {
		RolloutID string       `json:"rollout_id"`
		AttemptID string       `json:"attempt_id"`
		Complete  bool         `json:"complete"`
		InFlight  int          `json:"in_flight"`
		Calls     []callView   `json:"calls"`
		Rewards   []rewardView `json:"rewards"`
	}{RolloutID: r.PathValue("rid"), AttemptID: t.at.AttemptID, Complete: t.at.Complete, InFlight: t.inFlight, Calls: []callView{}, Rewards: []rewardView{}}
	for _, c := range d.calls {
		out.Calls = append(out.Calls, viewCall(c))
	}
	for _, rw := range d.rewards {
		out.Rewards = append(out.Rewards, viewReward(rw))
	}
	writeJSON(w, http.StatusOK, out)
}

type tripletView struct {
	SequenceID       uint64    `json:"sequence_id"`
	ChoiceIndex      int       `json:"choice_index"`
	PromptTokenIDs   []int64   `json:"prompt_token_ids"`
	ResponseTokenIDs []int64   `json:"response_token_ids"`
	ResponseLogprobs []float64 `json:"response_logprobs"`
	Reward           *float64  `json:"reward"`
	// MatchedPast lists the unusable calls the reward was moved past to
	// reach this call; absent when it matched the call right before it.
	MatchedPast   []uint64 `json:"matched_past,omitempty"`
	PolicyVersion string   `json:"policy_version,omitempty"`
	PolicyEnd     string   `json:"policy_version_end,omitempty"`
	FinishReason  string   `json:"finish_reason"`
	Model         string   `json:"model"`
}

// triplets serves the triplets view of one attempt.
func (a *API) triplets(w http.ResponseWriter, r *http.Request) {
	tg, d, ok := a.readAttempt(w, r)
	if !ok {
		return
	}
	out := struct {
		RolloutID string        `json:"rollout_id"`
		AttemptID string        `json:"attempt_id"`
		Complete  bool          `json:"complete"`
		InFlight  int           `json:"in_flight"`
		Triplets  []tripletView `json:"triplets"`
	}{RolloutID: r.PathValue("rid"), AttemptID: tg.at.AttemptID, Complete: tg.at.Complete, InFlight: tg.inFlight, Triplets: []tripletView{}}
	for _, t := range rollout.Triplets(tripletCalls(d.calls), d.rewards) {
		out.Triplets = append(out.Triplets, tripletView{
			SequenceID: t.Seq, ChoiceIndex: t.ChoiceIndex, PromptTokenIDs: t.PromptTokenIDs,
			ResponseTokenIDs: t.ResponseTokenIDs, ResponseLogprobs: t.ResponseLogprobs, Reward: t.Reward,
			MatchedPast: t.MatchedPast, PolicyVersion: t.PolicyVersion, PolicyEnd: t.PolicyVersionEnd,
			FinishReason: t.FinishReason, Model: t.Model,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// tripletCalls maps recorded calls to the rollout package's view of them.
func tripletCalls(calls []*exporter.Call) []rollout.Call {
	out := make([]rollout.Call, 0, len(calls))
	for _, c := range calls {
		rc := rollout.Call{Seq: c.Seq, Usable: c.Status == exporter.StatusOK && c.Valid,
			PolicyVersion: c.PolicyVersion, PolicyVersionEnd: c.PolicyVersionEnd, Model: modelOf(c)}
		for _, ch := range c.Response.Choices {
			rc.Choices = append(rc.Choices, rollout.Choice{
				Index: ch.Index, PromptTokenIDs: promptOf(&c.Response, ch), TokenIDs: ch.TokenIDs, Logprobs: ch.Logprobs,
				FinishReason: ch.FinishReason,
			})
		}
		out = append(out, rc)
	}
	return out
}

// modelOf is the model that answered a call: the response's model, else
// the one requested.
func modelOf(c *exporter.Call) string {
	if c.Response.Model != "" {
		return c.Response.Model
	}
	return c.Request.Model
}

func promptOf(res *tokenids.Result, ch tokenids.Choice) []int64 {
	if ch.PromptIndex >= 0 && ch.PromptIndex < len(res.Prompts) {
		return res.Prompts[ch.PromptIndex]
	}
	return res.PromptTokenIDs
}

func (a *API) fail(w http.ResponseWriter, err error) {
	a.failStatus(w, http.StatusInternalServerError, err)
}

func (a *API) failStatus(w http.ResponseWriter, status int, err error) {
	if status >= 500 {
		a.cfg.Logger.Error().Err(err).Msg("api")
	}
	httperr.Write(w, status, err.Error())
}

func intParam(r *http.Request, name string, def, lo, hi int) (int, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s must be an integer from %d to %d", name, lo, hi)
	}
	return n, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		httperr.Write(w, http.StatusInternalServerError, "encode answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}
