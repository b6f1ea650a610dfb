package upstream

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// parsedSpec is a validated Spec.
type parsedSpec struct {
	u      *url.URL // lower-case scheme and host, no trailing slash
	key    string   // u without user info, default port or trailing slash
	models []string // owned copy; nil for any model
}

// parseSpec validates spec. Its errors never show a password.
func parseSpec(spec Spec) (parsedSpec, error) {
	u, err := url.Parse(spec.URL)
	if err != nil {
		// url.Error repeats the raw URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return parsedSpec{}, fmt.Errorf("upstream %q: %w", redactRaw(spec.URL), err)
	}
	fail := func(format string, args ...any) (parsedSpec, error) {
		return parsedSpec{}, fmt.Errorf("upstream %q: "+format, append([]any{u.Redacted()}, args...)...)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return fail("scheme must be http or https")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return fail("no host")
	}
	if u.RawQuery != "" || u.ForceQuery {
		return fail("must not have a query")
	}
	if u.Fragment != "" {
		return fail("must not have a fragment")
	}
	path, rawPath := strings.TrimRight(u.Path, "/"), strings.TrimRight(u.RawPath, "/")
	if strings.HasSuffix(strings.ToLower(path), "/v1") {
		return fail("give vLLM's base URL, without /v1: tokentap forwards the agent's /v1/... path as is")
	}
	var models []string
	for _, m := range spec.Models {
		if m == "" {
			return fail("empty model name in models")
		}
		models = append(models, m)
	}
	n := &url.URL{
		Scheme:  scheme,
		User:    u.User,
		Host:    strings.ToLower(u.Host),
		Path:    path,
		RawPath: rawPath,
	}
	// The key leaves out what does not change which server answers, so
	// that http://vllm:80/ and http://VLLM are duplicates and rotating a
	// password does not move every rollout to another replica.
	keyHost := strings.TrimSuffix(n.Host, ":") // empty port
	if p := n.Port(); p != "" && p == defaultPort(scheme) {
		keyHost = strings.TrimSuffix(keyHost, ":"+p)
	}
	return parsedSpec{u: n, key: scheme + "://" + keyHost + n.EscapedPath(), models: models}, nil
}

func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// redactRaw hides the password of a URL that url.Parse refused, the way
// url.URL.Redacted would have. It errs towards hiding: anything between
// "://" and the last "@" before a query or fragment counts as user info.
func redactRaw(s string) string {
	i := strings.Index(s, "://")
	if i < 0 {
		return s
	}
	rest := s[i+3:]
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return s
	}
	user, _, hasPassword := strings.Cut(rest[:at], ":")
	if !hasPassword {
		return s
	}
	return s[:i+3] + user + ":xxxxx" + rest[at:]
}
