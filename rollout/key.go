// Package rollout owns the rollout key: which rollout and attempt an LLM call
// belongs to, how it is read from a request path or from headers, the rules of
// sequence ids, and how a rollout's calls and rewards become training triplets.
//
// It is pure: no I/O, no state. The proxy (intercept), the store and the
// trainer API all speak in its terms.
package rollout

import (
	"errors"
	"fmt"
	"strings"
)

// Key identifies one attempt of one rollout. The zero Key (empty rollout id)
// is the key of calls that carried none.
type Key struct {
	RolloutID string
	AttemptID string
}

// IsZero reports whether k carries no rollout id.
func (k Key) IsZero() bool { return k.RolloutID == "" }

func (k Key) String() string { return k.RolloutID + "/" + k.AttemptID }

// MaxIDLen is the longest rollout or attempt id accepted.
const MaxIDLen = 128

// DefaultAttemptID is the attempt of a call that names a rollout by header
// but no attempt.
const DefaultAttemptID = "0"

// Header names of the keying fallback for calls without a path prefix.
const (
	HeaderRolloutID = "X-Rollout-Id"
	HeaderAttemptID = "X-Attempt-Id"
)

// ErrBadKey is wrapped by every validation error of this package.
var ErrBadKey = errors.New("bad rollout key")

// ValidateID checks one rollout or attempt id: 1–128 characters of
// [A-Za-z0-9._:-]. what names the id in the error ("rollout id").
func ValidateID(what, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrBadKey, what)
	}
	if len(id) > MaxIDLen {
		return fmt.Errorf("%w: %s is %d characters long, the limit is %d", ErrBadKey, what, len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return fmt.Errorf("%w: %s %q has a character outside [A-Za-z0-9._:-] at offset %d", ErrBadKey, what, truncate(id), i)
		}
	}
	return nil
}

func idChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == ':' || c == '-'
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

const (
	rolloutPrefix = "/rollout/"
	attemptSeg    = "attempt"
)

// ParsePath splits a request path of the form
// /rollout/{rid}/attempt/{aid}/{rest}. When path does not start with
// /rollout/, ok is false and err nil: the caller falls back to headers. rest
// is returned without its leading slash ("v1/chat/completions", or "" for
// /rollout/r/attempt/a and /rollout/r/attempt/a/).
//
// A path that starts with /rollout/ but is not well formed, has an invalid id,
// or whose rest has "." or ".." segments (which could climb out of the
// upstream's base path) is an error.
func ParsePath(path string) (key Key, rest string, ok bool, err error) {
	if !strings.HasPrefix(path, rolloutPrefix) {
		return Key{}, "", false, nil
	}
	p := path[len(rolloutPrefix):]
	rid, p, found := strings.Cut(p, "/")
	if !found {
		return Key{}, "", true, fmt.Errorf("%w: path must be /rollout/{rollout_id}/attempt/{attempt_id}/...", ErrBadKey)
	}
	seg, p, found := strings.Cut(p, "/")
	if seg != attemptSeg || !found {
		return Key{}, "", true, fmt.Errorf("%w: path must be /rollout/{rollout_id}/attempt/{attempt_id}/...", ErrBadKey)
	}
	aid, rest, _ := strings.Cut(p, "/")
	if err := ValidateID("rollout id", rid); err != nil {
		return Key{}, "", true, err
	}
	if err := ValidateID("attempt id", aid); err != nil {
		return Key{}, "", true, err
	}
	if err := checkRest(rest); err != nil {
		return Key{}, "", true, err
	}
	return Key{RolloutID: rid, AttemptID: aid}, rest, true, nil
}

// CheckPath rejects "." and ".." segments in a path that carries no rollout
// prefix, for the same reason ParsePath does.
func CheckPath(path string) error { return checkRest(strings.TrimPrefix(path, "/")) }

func checkRest(rest string) error {
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("%w: path segments %q and %q are not allowed", ErrBadKey, ".", "..")
		}
	}
	return nil
}

// FromHeaders builds a key from the X-Rollout-Id and X-Attempt-Id header
// values. Both empty gives the zero Key. A rollout without an attempt gets
// DefaultAttemptID; an attempt without a rollout is an error.
func FromHeaders(rolloutID, attemptID string) (Key, error) {
	if rolloutID == "" && attemptID == "" {
		return Key{}, nil
	}
	if rolloutID == "" {
		return Key{}, fmt.Errorf("%w: %s is set but %s is not", ErrBadKey, HeaderAttemptID, HeaderRolloutID)
	}
	if attemptID == "" {
		attemptID = DefaultAttemptID
	}
	if err := ValidateID(HeaderRolloutID, rolloutID); err != nil {
		return Key{}, err
	}
	if err := ValidateID(HeaderAttemptID, attemptID); err != nil {
		return Key{}, err
	}
	return Key{RolloutID: rolloutID, AttemptID: attemptID}, nil
}
