package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, envOf(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:8100" || c.Upstream != "http://127.0.0.1:8000" || c.Data != "./sidecar-data" ||
		c.Retention != 168*time.Hour || !c.CaptureContent || c.MaxBody != 64<<20 || c.LogLevel != "info" || c.LogFormat != "json" ||
		c.InMemory || c.Sync || c.Logprobs || c.RequireRollout || c.Demo || c.AdminToken != "" {
		t.Errorf("defaults = %+v", c)
	}
}

// Every flag reads SIDECAR_<FLAG>; a flag on the command line wins.
func TestConfigEnv(t *testing.T) {
	env := envOf(
		"SIDECAR_LISTEN", "0.0.0.0:9000",
		"SIDECAR_UPSTREAM", "http://vllm:8000",
		"SIDECAR_IN_MEMORY", "true",
		"SIDECAR_CAPTURE_CONTENT", "false",
		"SIDECAR_MAX_BODY", "1MiB",
		"SIDECAR_RETENTION", "24h",
		"SIDECAR_ADMIN_TOKEN", "t",
		"SIDECAR_REQUIRE_ROLLOUT", "1",
	)
	c, err := parseConfig([]string{"--listen", "127.0.0.1:7000", "--max-body=2MiB"}, env, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:7000" || c.MaxBody != 2<<20 {
		t.Errorf("flags did not beat the environment: %+v", c)
	}
	if c.Upstream != "http://vllm:8000" || !c.InMemory || c.CaptureContent || c.Retention != 24*time.Hour || c.AdminToken != "t" || !c.RequireRollout {
		t.Errorf("environment not read: %+v", c)
	}
}

func TestConfigRejects(t *testing.T) {
	tests := []struct {
		args []string
		env  []string
		msg  string
	}{
		{[]string{"--upstream", "ftp://x"}, nil, "--upstream"},
		{[]string{"--upstream", "http://vllm:8000/v1"}, nil, "without /v1"},
		{[]string{"--upstream", "vllm:8000"}, nil, "--upstream"},
		{[]string{"--listen", "8100"}, nil, "--listen"},
		{[]string{"--max-body", "12XB"}, nil, "max-body"},
		{[]string{"--max-body", "0"}, nil, "--max-body"},
		{[]string{"--retention", "soon"}, nil, "retention"},
		{[]string{"--log-level", "loud"}, nil, "--log-level"},
		{[]string{"--log-format", "xml"}, nil, "--log-format"},
		{[]string{"--nope"}, nil, "nope"},
		{[]string{"stray"}, nil, "unexpected argument"},
		{nil, []string{"SIDECAR_SYNC", "perhaps"}, "SIDECAR_SYNC"},
	}
	for _, tt := range tests {
		_, err := parseConfig(tt.args, envOf(tt.env...), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%v %v: err = %v, want it to mention %q", tt.args, tt.env, err, tt.msg)
		}
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{"64MiB": 64 << 20, "10MB": 10_000_000, "512k": 512 << 10, "1048576": 1 << 20, "2GiB": 2 << 30, "3 KiB": 3 << 10} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("%q = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5MiB", "-1", "1TB", "99999999999999999GiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("%q accepted as %d", in, b)
		}
	}
	b := byteSize(64 << 20)
	if b.String() != "64MiB" {
		t.Errorf("String = %s", b.String())
	}
}
