package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"

	"github.com/tokentap/tokentap/anthropic"
	"github.com/tokentap/tokentap/internal/vllmsim"
	"github.com/tokentap/tokentap/tokenids"
	"github.com/tokentap/tokentap/upstream"
)

// config is the sidecar's configuration, from flags and SIDECAR_* variables.
type config struct {
	Listen          string
	Upstreams       listFlag
	ConfigFile      string
	Routing         string
	ForceParams     paramFlag
	ModelMap        listFlag
	Data            string
	InMemory        bool
	Retention       time.Duration
	AdminToken      string
	Logprobs        bool
	RequireRollout  bool
	CaptureContent  bool
	Sync            bool
	MaxBody         byteSize
	Demo            bool
	DemoTemplate    string
	DemoMaxModelLen int
	InlineSystem    string
	LogLevel        string
	LogFormat       string
	UpstreamTimeout time.Duration
	RetryAfterWrite bool
	AccessLog       bool
	ShutdownTimeout time.Duration
	OTLPEndpoint    string
	OTLPHeaders     listFlag
	Pprof           bool
	MaxDisk         byteSize
	UpstreamAPIKey  string
	BodyTimeout     time.Duration
	HeaderTimeout   time.Duration
	TLSCert         string
	TLSKey          string

	// From the flags and the config file: the replica set, its routing, and
	// the parsed --force-param values.
	upstreams         []upstream.Spec
	routing           upstream.Routing
	upstreamsFromFile bool
	routingFromFile   bool
	force             []tokenids.Param
	modelMap          []tokenids.ModelRule
	level             zerolog.Level
}

// parseConfig reads args and the environment. Every flag also reads
// SIDECAR_<FLAG> (upper case, '-' → '_'); a flag given on the command line
// beats the variable.
func parseConfig(args []string, env func(string) string, usage io.Writer) (*config, error) {
	c := &config{MaxBody: 64 << 20}
	fs := flag.NewFlagSet("sidecar", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&c.Listen, "listen", "127.0.0.1:8100", "address for agents, trainers and admin")
	fs.Var(&c.Upstreams, "upstream", "vLLM base URL (no /v1); repeat for several replicas (default http://127.0.0.1:8000)")
	fs.StringVar(&c.ConfigFile, "config", "", "YAML file: upstreams: [{url, models}], routing, and any flag by its name")
	fs.StringVar(&c.Routing, "routing", "", "how calls are spread over replicas: sticky (a rollout stays on one replica) or least-loaded (default sticky)")
	fs.Var(&c.ForceParams, "force-param", "key=JSON-value set on every traced call, e.g. temperature=1.0 (repeatable)")
	fs.Var(&c.ModelMap, "model-map", "pattern=model: traced calls naming a model that matches pattern (* for any run) are sent as model, e.g. claude-*=Qwen/Qwen3-8B (repeatable, first match wins)")
	fs.StringVar(&c.Data, "data", "./sidecar-data", "Badger directory")
	fs.BoolVar(&c.InMemory, "in-memory", false, "keep spans in memory only (nothing on disk)")
	fs.DurationVar(&c.Retention, "retention", 168*time.Hour, "records older than this expire (0: never)")
	fs.StringVar(&c.AdminToken, "admin-token", "", "when set, /api/v1/* and /admin/* need Authorization: Bearer <token>")
	fs.BoolVar(&c.Logprobs, "logprobs", false, "also request (and record) logprobs when the client did not ask")
	fs.BoolVar(&c.RequireRollout, "require-rollout", false, "answer 400 to traced calls that carry no rollout key")
	fs.BoolVar(&c.CaptureContent, "capture-content", true, "also keep request messages and output text on the span")
	fs.BoolVar(&c.Sync, "sync", false, "fsync every commit (survives power loss, not only a crash)")
	fs.Var(&c.MaxBody, "max-body", "larger request bodies get 413 (e.g. 64MiB)")
	fs.BoolVar(&c.Demo, "demo", false, "start an embedded simulated vLLM and use it as upstream")
	fs.StringVar(&c.DemoTemplate, "demo-template", "qwen2.5", "the --demo vLLM's chat template: qwen2.5 (history renders back as sampled; serves Qwen/Qwen2.5-1.5B-Instruct) or qwen3 (drops earlier <think> blocks; serves Qwen/Qwen3-8B)")
	fs.IntVar(&c.DemoMaxModelLen, "demo-max-model-len", 131072, "the --demo vLLM's context length in tokens (--max-model-len): a prompt plus max_tokens beyond it gets vLLM's 400; the default is a long-context model's, which takes the prompts of Claude Code and Codex")
	fs.StringVar(&c.InlineSystem, "anthropic-inline-system", string(anthropic.InlinePreserve), "where role:\"system\" messages inside an Anthropic request's messages go, as the deployed vLLM places them: preserve (in place, as system turns) or fold (into the neighbouring user turn); changes the prompt tokens")
	fs.StringVar(&c.LogLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "json, or console for humans")
	fs.BoolVar(&c.AccessLog, "access-log", true, "log one line per traced call at info (key, model, status, tokens, duration, trace id; never content or keys)")
	fs.DurationVar(&c.UpstreamTimeout, "upstream-timeout", 0, "bound on the wait for the upstream's response headers (0: none)")
	fs.BoolVar(&c.RetryAfterWrite, "retry-after-write", false, "also send a call to another replica when its connection failed after the request was written (may resend a generation)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", time.Minute, "on SIGTERM, how long calls in flight may take to finish")
	fs.StringVar(&c.OTLPEndpoint, "otlp-endpoint", "", "push spans to an OTLP collector: http://host:4318 (OTLP/HTTP) or grpc://host:4317 (OTLP/gRPC)")
	fs.Var(&c.MaxDisk, "max-disk", "bound on the store's disk space (e.g. 50GiB); at it new calls get 507 (0: the filesystem's free space only)")
	fs.StringVar(&c.UpstreamAPIKey, "upstream-api-key", "", "vLLM's --api-key: sent upstream as Authorization: Bearer on every request, so agents need none")
	fs.DurationVar(&c.BodyTimeout, "body-timeout", time.Minute, "how long a client may take to send a traced call's body (then 408)")
	fs.DurationVar(&c.HeaderTimeout, "header-timeout", 10*time.Second, "how long a client may take to send a request's headers (then the connection is closed)")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS with this certificate (PEM; with --tls-key)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "the certificate's private key (PEM)")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve Go's profiler at /debug/pprof/ (behind --admin-token when set)")
	fs.Var(&c.OTLPHeaders, "otlp-header", "key=value header sent with every OTLP export (repeatable; in SIDECAR_OTLP_HEADER comma-separated)")

	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := env(name)
		if set[f.Name] || v == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("invalid value %q for %s: %v", v, name, err)
		}
	})
	if envErr != nil {
		return nil, envErr
	}
	if c.ConfigFile != "" {
		file, err := readConfigFile(c.ConfigFile)
		if err != nil {
			return nil, err
		}
		// The file fills in what neither a flag nor the environment set.
		for name, values := range file.flags {
			f := fs.Lookup(name)
			if f == nil || name == "config" {
				return nil, fmt.Errorf("--config %s: unknown key %q (want upstreams, routing, or a flag's name)", c.ConfigFile, name)
			}
			if set[name] || env(envName(name)) != "" {
				continue
			}
			for _, v := range values {
				if err := fs.Set(name, v); err != nil {
					return nil, fmt.Errorf("--config %s: %s: %v", c.ConfigFile, name, err)
				}
			}
		}
		if len(c.Upstreams) == 0 && len(file.upstreams) > 0 {
			c.upstreams, c.upstreamsFromFile = file.upstreams, true
		}
		if c.Routing == "" {
			c.Routing, c.routingFromFile = file.routing, true
		}
	}
	return c, c.validate()
}

// envName is the variable a flag also reads.
func envName(flag string) string {
	return "SIDECAR_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// configFile is what a --config YAML file holds.
type configFile struct {
	upstreams []upstream.Spec
	routing   string
	flags     map[string][]string // any other key: a flag's name and its values
}

// readConfigFile reads a --config file: upstreams and routing, and flags by
// name (scalars, or lists for repeatable flags).
func readConfigFile(path string) (*configFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	out := &configFile{flags: map[string][]string{}}
	for key, node := range doc {
		switch {
		case key == "upstreams":
			err = node.Decode(&out.upstreams)
		case key == "routing":
			err = node.Decode(&out.routing)
		case node.Kind == yaml.SequenceNode:
			var values []string
			err = node.Decode(&values)
			out.flags[key] = values
		case node.Kind == yaml.ScalarNode:
			out.flags[key] = []string{node.Value}
		default:
			err = errors.New("want a value or a list of values")
		}
		if err != nil {
			return nil, fmt.Errorf("--config %s: %s: %w", path, key, err)
		}
	}
	return out, nil
}

func (c *config) validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("--listen %q: want host:port", c.Listen)
	}
	if !c.upstreamsFromFile {
		if len(c.Upstreams) == 0 {
			c.Upstreams = listFlag{"http://127.0.0.1:8000"}
		}
		c.upstreams = nil
		for _, u := range c.Upstreams {
			c.upstreams = append(c.upstreams, upstream.Spec{URL: u})
		}
	}
	var err error
	if c.routing, err = upstream.ParseRouting(c.Routing); err != nil {
		return fmt.Errorf("--routing: %w", err)
	}
	// Validates every URL (scheme, host, no /v1, no duplicates).
	if _, err := upstream.New(c.upstreams, c.routing, upstream.Options{}); err != nil {
		return fmt.Errorf("--upstream: %w", err)
	}
	for _, p := range c.ForceParams {
		param, err := tokenids.ParseParam(p)
		if err != nil {
			return fmt.Errorf("--force-param %w", err)
		}
		c.force = append(c.force, param)
	}
	c.modelMap = nil
	for _, m := range c.ModelMap {
		rule, err := tokenids.ParseModelRule(m)
		if err != nil {
			return fmt.Errorf("--model-map %w", err)
		}
		c.modelMap = append(c.modelMap, rule)
	}
	if c.Retention < 0 {
		return fmt.Errorf("--retention %v: must not be negative", c.Retention)
	}
	if err := vllmsim.ValidTemplate(c.DemoTemplate); err != nil {
		return fmt.Errorf("--demo-template: %w", err)
	}
	switch anthropic.InlineSystem(c.InlineSystem) {
	case anthropic.InlinePreserve, anthropic.InlineFold:
	default:
		return fmt.Errorf("--anthropic-inline-system %q: want %s or %s", c.InlineSystem, anthropic.InlinePreserve, anthropic.InlineFold)
	}
	if c.DemoMaxModelLen <= 0 {
		return fmt.Errorf("--demo-max-model-len %d: must be positive", c.DemoMaxModelLen)
	}
	if c.MaxBody <= 0 {
		return fmt.Errorf("--max-body: must be positive")
	}
	if !c.InMemory && c.Data == "" {
		return errors.New("--data: give a directory, or use --in-memory")
	}
	if c.level, err = zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return fmt.Errorf("--log-level %q: want trace, debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		return fmt.Errorf("--log-format %q: want json or console", c.LogFormat)
	}
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "grpc" && u.Scheme != "grpcs") {
			return fmt.Errorf("--otlp-endpoint %q: want http://host:4318 or grpc://host:4317", c.OTLPEndpoint)
		}
	}
	for _, h := range c.OTLPHeaders {
		if k, _, ok := strings.Cut(h, "="); !ok || k == "" {
			return fmt.Errorf("--otlp-header %q: want key=value", h)
		}
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.MaxDisk < 0 || c.BodyTimeout < 0 {
		return errors.New("--max-disk and --body-timeout must not be negative")
	}
	if c.UpstreamTimeout < 0 || c.ShutdownTimeout < 0 || c.HeaderTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	return nil
}

// logger builds the zerolog logger the configuration asks for.
func (c *config) logger(w io.Writer) zerolog.Logger {
	if c.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(c.level).With().Timestamp().Logger()
}

// byteSize is a flag value such as 64MiB, 10MB, 512k or 1048576.
type byteSize int64

func (b *byteSize) String() string {
	v := int64(*b)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if v >= u.size && v%u.size == 0 {
			return strconv.FormatInt(v/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(v, 10)
}

func (b *byteSize) Set(s string) error {
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a size like 64MiB")
	}
	mult := map[string]int64{
		"": 1, "b": 1,
		"k": 1 << 10, "kb": 1000, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1000 * 1000, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1000 * 1000 * 1000, "gib": 1 << 30,
	}[unit]
	if mult == 0 {
		return fmt.Errorf("unknown unit %q: want B, KiB, MiB, GiB (or KB, MB, GB)", unit)
	}
	if n > (1<<62)/mult {
		return fmt.Errorf("size too large")
	}
	*b = byteSize(n * mult)
	return nil
}

// paramFlag is a repeatable flag whose values may hold commas (JSON); from
// the environment it takes one value per line.
type paramFlag []string

func (l *paramFlag) String() string { return strings.Join(*l, "\n") }

func (l *paramFlag) Set(s string) error { return appendParts((*[]string)(l), s, "\n") }

// listFlag is a repeatable flag; from the environment it takes a
// comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error { return appendParts((*[]string)(l), s, ",") }

// appendParts appends the non-empty, trimmed parts of s split at sep.
func appendParts(l *[]string, s, sep string) error {
	for part := range strings.SplitSeq(s, sep) {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}
