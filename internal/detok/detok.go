// Package detok decodes token IDs to text through an upstream vLLM's
// POST /detokenize, for the drift entries of the trajectories view. It is
// bounded (a timeout per request, a few requests at a time, a pause after a
// failure), cached, and only ever used by trainer-facing reads: never on an
// agent's path.
package detok

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Config configures a Client.
type Config struct {
	// Pick returns the base URL of the replica to ask (no /v1), for a
	// rollout and model, as the proxy would route its calls.
	Pick func(rolloutID, model string) (*url.URL, error)
	// APIKey, when set, is sent as "Authorization: Bearer <key>".
	APIKey string
	// Timeout bounds one request; default 2s.
	Timeout time.Duration
	// Concurrency bounds the requests in flight; default 4.
	Concurrency int
	// CacheEntries bounds the cache; default 4096.
	CacheEntries int
	// Client is the HTTP client; default one of its own.
	Client *http.Client
}

// Client decodes token IDs through the upstream. Safe for concurrent use.
type Client struct {
	cfg Config
	sem chan struct{}

	mu       sync.Mutex
	cache    map[uint64]string
	order    []uint64 // insertion order, for eviction
	downTill time.Time
}

// pauseAfterFailure is how long a failed upstream is not asked again: a
// view of an attempt with many drift entries must not wait a timeout for
// each while the upstream is down.
const pauseAfterFailure = 10 * time.Second

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.CacheEntries <= 0 {
		cfg.CacheEntries = 4096
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	return &Client{cfg: cfg, sem: make(chan struct{}, cfg.Concurrency), cache: map[uint64]string{}}
}

// Decoder returns a decoding function for one rollout's calls of model,
// with the signature trajectory.Decoder has. ok is false when the upstream
// could not be asked or did not answer.
func (c *Client) Decoder(rolloutID, model string) func(ctx context.Context, ids []int64) (string, bool) {
	return func(ctx context.Context, ids []int64) (string, bool) {
		text, err := c.Decode(ctx, rolloutID, model, ids)
		return text, err == nil
	}
}

// Decode returns the text of ids (special tokens included, as vLLM's
// /detokenize gives it).
func (c *Client) Decode(ctx context.Context, rolloutID, model string, ids []int64) (string, error) {
	if len(ids) == 0 {
		return "", nil
	}
	key := cacheKey(model, ids)
	c.mu.Lock()
	text, hit := c.cache[key]
	down := time.Now().Before(c.downTill)
	c.mu.Unlock()
	if hit {
		return text, nil
	}
	if down {
		return "", fmt.Errorf("detokenize: upstream failed recently, not asked again before %s", pauseAfterFailure)
	}
	select {
	case c.sem <- struct{}{}:
		defer func() { <-c.sem }()
	case <-ctx.Done():
		return "", ctx.Err()
	}
	text, err := c.ask(ctx, rolloutID, model, ids)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.downTill = time.Now().Add(pauseAfterFailure)
		return "", err
	}
	if len(c.order) >= c.cfg.CacheEntries {
		delete(c.cache, c.order[0])
		c.order = c.order[1:]
	}
	if _, ok := c.cache[key]; !ok {
		c.order = append(c.order, key)
	}
	c.cache[key] = text
	return text, nil
}

func (c *Client) ask(ctx context.Context, rolloutID, model string, ids []int64) (string, error) {
	base, err := c.cfg.Pick(rolloutID, model)
	if err != nil {
		return "", fmt.Errorf("detokenize: pick an upstream: %w", err)
	}
	body := make([]byte, 0, 32+len(model)+7*len(ids))
	body = append(body, `{"tokens":[`...)
	for i, id := range ids {
		if i > 0 {
			body = append(body, ',')
		}
		body = strconv.AppendInt(body, id, 10)
	}
	body = append(body, ']')
	if model != "" {
		m, _ := json.Marshal(model)
		body = append(append(body, `,"model":`...), m...)
	}
	body = append(body, '}')

	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	u := base.JoinPath("detokenize")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("detokenize: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("detokenize at %s: %w", u.Host, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("detokenize at %s: read answer: %w", u.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("detokenize at %s: HTTP %d", u.Host, resp.StatusCode)
	}
	var out struct {
		Prompt *string `json:"prompt"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.Prompt == nil {
		return "", fmt.Errorf("detokenize at %s: answer has no \"prompt\" string", u.Host)
	}
	return *out.Prompt, nil
}

func cacheKey(model string, ids []int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(model))
	var b [8]byte
	for _, id := range ids {
		for i := range b {
			b[i] = byte(id >> (8 * i))
		}
		h.Write(b[:])
	}
	return h.Sum64()
}
