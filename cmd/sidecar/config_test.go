package main

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tokentap/tokentap/upstream"
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
	if c.Listen != "127.0.0.1:8100" || !reflect.DeepEqual(c.upstreams, []upstream.Spec{{URL: "http://127.0.0.1:8000"}}) || c.routing != upstream.Sticky || c.Data != "./sidecar-data" ||
		c.Retention != 168*time.Hour || !c.CaptureContent || c.MaxBody != 64<<20 || c.LogLevel != "info" || c.LogFormat != "json" ||
		c.InMemory || c.Sync || c.Logprobs || c.RequireRollout || c.Demo || c.AdminToken != "" {
		t.Errorf("defaults = %+v", c)
	}
}

// Every flag reads SIDECAR_<FLAG>; a flag on the command line wins.
func TestConfigEnv(t *testing.T) {
	env := envOf(
		"SIDECAR_LISTEN", "0.0.0.0:9000",
		"SIDECAR_UPSTREAM", "http://vllm-0:8000,http://vllm-1:8000",
		"SIDECAR_FORCE_PARAM", "temperature=1.0\nstop=[\"a\",\"b\"]",
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
	if len(c.upstreams) != 2 || c.upstreams[1].URL != "http://vllm-1:8000" || len(c.force) != 2 || string(c.force[1].Value) != `["a","b"]` || !c.InMemory || c.CaptureContent || c.Retention != 24*time.Hour || c.AdminToken != "t" || !c.RequireRollout {
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
		{[]string{"--upstream", "http://a:8000", "--upstream", "http://A:8000/"}, nil, "--upstream"},
		{[]string{"--routing", "random"}, nil, "--routing"},
		{[]string{"--force-param", "model=\"x\""}, nil, "--force-param"},
		{[]string{"--force-param", "temperature=hot"}, nil, "--force-param"},
		{[]string{"--config", "/nonexistent.yaml"}, nil, "--config"},
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

// A --config file gives the replica set and any flag by name; flags and
// the environment beat it.
func TestConfigFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokentap.yaml")
	os.WriteFile(file, []byte(`
upstreams:
  - url: http://vllm-0:8000
    models: [Qwen/Qwen3-8B]
  - url: http://vllm-1:8000
routing: least-loaded
retention: 72h
admin-token: from-file
force-param: ["temperature=1.0", "top_p=1.0"]
`), 0o600)
	c, err := parseConfig([]string{"--config", file, "--admin-token", "from-flag"}, envOf("SIDECAR_RETENTION", "24h"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []upstream.Spec{{URL: "http://vllm-0:8000", Models: []string{"Qwen/Qwen3-8B"}}, {URL: "http://vllm-1:8000"}}
	if !reflect.DeepEqual(c.upstreams, want) || c.routing != upstream.LeastLoaded || !c.upstreamsFromFile {
		t.Errorf("upstreams %+v routing %s", c.upstreams, c.routing)
	}
	if c.AdminToken != "from-flag" || c.Retention != 24*time.Hour || len(c.force) != 2 {
		t.Errorf("precedence: token %q retention %v force %v", c.AdminToken, c.Retention, c.force)
	}
	// --upstream on the command line replaces the file's replicas.
	c, err = parseConfig([]string{"--config", file, "--upstream", "http://other:8000"}, envOf(), io.Discard)
	if err != nil || len(c.upstreams) != 1 || c.upstreams[0].URL != "http://other:8000" || c.upstreamsFromFile {
		t.Errorf("flag over file: %+v %v", c.upstreams, err)
	}
	for _, bad := range []string{"nope: 1\n", "upstreams: [{url: ftp://x}]\n", "routing: random\n", "upstreams: {url: x}\n", "listen: [a, b]\n"} {
		os.WriteFile(file, []byte(bad), 0o600)
		if _, err := parseConfig([]string{"--config", file}, envOf(), io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
