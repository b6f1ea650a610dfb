// Package exporter turns what tokentap records into OpenTelemetry spans and
// back: a traced LLM call or a reward becomes one span built with the OTel
// SDK, encoded as OTLP protobuf and committed to the store before the agent
// gets its last byte. It also reads stored spans back into calls for the
// trainer views.
package exporter

import (
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// Status is how a call ended.
type Status string

const (
	StatusOK        Status = "ok"        // the upstream answered 2xx and the answer was delivered
	StatusError     Status = "error"     // an upstream error, an unreachable upstream, a broken stream
	StatusCancelled Status = "cancelled" // the client went away before the answer was complete
)

// Call is the record of one traced LLM call.
type Call struct {
	Key  rollout.Key
	Seq  uint64
	Path string // the path the agent called, e.g. /v1/chat/completions, /v1/messages
	// Dialect is the API the agent spoke (AttrDialect: DialectOpenAIChat,
	// DialectAnthropicMessages, ...); "" means the one of Request.Endpoint.
	// Request and Response are always the chat or completions call sent
	// upstream, whatever the dialect.
	Dialect string

	Request  tokenids.Request
	Response tokenids.Result

	Status     Status
	HTTPStatus int    // the status the agent received
	ErrorType  string // e.g. the upstream error's type, "timeout", "cancelled"
	Error      string // what went wrong, "" when Status is ok

	Start, End time.Time
	// FirstToken is when the first event of a streamed answer arrived.
	FirstToken time.Time

	// Valid and Problem are the fidelity check's verdict on the IDs, Checks
	// the checks it ran (tokenids.Verdict.Checks).
	Valid   bool
	Problem string
	Checks  []string

	// Parent is the agent's span when it sent a traceparent header; the
	// call's span then joins the agent's trace.
	Parent trace.SpanContext

	Upstream         string // the replica that served the call
	PolicyVersion    string // the policy version when the call was sent
	PolicyVersionEnd string // ... and when it finished, if different

	// Set by RecordCall, and from the stored span when read back.
	TraceID trace.TraceID
	SpanID  trace.SpanID
	// InputMessages and OutputMessages are the captured content (JSON), or
	// nil when content capture is off.
	InputMessages  []byte
	OutputMessages []byte
}

// DialectName is the call's dialect: Dialect, or the OpenAI API of its
// endpoint when unset (calls recorded before the attribute existed).
func (c *Call) DialectName() string {
	if c.Dialect != "" {
		return c.Dialect
	}
	return EndpointDialect(c.Request.Endpoint)
}

// EndpointDialect is the dialect of an OpenAI call to ep, sent as is.
func EndpointDialect(ep tokenids.Endpoint) string {
	if ep == tokenids.Completions {
		return DialectOpenAICompletions
	}
	return DialectOpenAIChat
}

// Reward is the record of one reward an agent posted.
type Reward struct {
	Key   rollout.Key
	Seq   uint64
	Name  string
	Value float64
	Time  time.Time
	// TargetSeq, when not 0, is the call the reward is for, and
	// TargetChoice its choice (-1: every choice).
	TargetSeq    uint64
	TargetChoice int
}
