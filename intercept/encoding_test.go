package intercept

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/tokentap/tokentap/exporter"
	"github.com/tokentap/tokentap/rollout"
	"github.com/tokentap/tokentap/tokenids"
)

// flushWriteCloser is a compressor that can hand on what it has so far.
type flushWriteCloser interface {
	io.WriteCloser
	Flush() error
}

var encoders = map[string]func(io.Writer) flushWriteCloser{
	"gzip":    func(w io.Writer) flushWriteCloser { return gzip.NewWriter(w) },
	"deflate": func(w io.Writer) flushWriteCloser { return zlib.NewWriter(w) },
	"raw deflate": func(w io.Writer) flushWriteCloser {
		fw, _ := flate.NewWriter(w, flate.DefaultCompression)
		return fw
	},
	"zstd": func(w io.Writer) flushWriteCloser {
		zw, _ := zstd.NewWriter(w)
		return zw
	},
}

// compressing is a gateway in front of vLLM that compresses every answer,
// flushing the compressor with each write of the upstream (one SSE event).
func compressing(coding string) func(http.Handler) http.Handler {
	label := strings.TrimPrefix(coding, "raw ")
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			zw := encoders[coding](w)
			cw := &compressWriter{ResponseWriter: w, zw: zw, coding: label}
			next.ServeHTTP(cw, r)
			zw.Close()
		})
	}
}

type compressWriter struct {
	http.ResponseWriter
	zw          flushWriteCloser
	coding      string
	wroteHeader bool
}

func (c *compressWriter) WriteHeader(status int) {
	if !c.wroteHeader {
		c.wroteHeader = true
		c.Header().Del("Content-Length")
		c.Header().Set("Content-Encoding", c.coding)
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *compressWriter) Write(b []byte) (int, error) {
	if !c.wroteHeader {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.zw.Write(b)
	if err == nil {
		err = c.zw.Flush()
	}
	return n, err
}

func (c *compressWriter) Flush() {
	c.zw.Flush()
	c.ResponseWriter.(http.Flusher).Flush()
}

// rawClient does not undo a gzip answer by itself, as Go's default does.
var rawClient = &http.Client{Transport: &http.Transport{DisableCompression: true}}

func rawPostAnswer(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Request-Id", "fixed") // the simulator's ids then repeat
	resp, err := rawClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// A compressed answer, JSON or SSE, reaches the agent decoded (what an
// uncompressed upstream would have sent) and its IDs are recorded.
func TestCompressedAnswers(t *testing.T) {
	bodies := map[string]string{
		"json": `{"model":"` + model + `","messages":[{"role":"user","content":"Say hi"}],"max_tokens":8}`,
		"sse":  `{"model":"` + model + `","messages":[{"role":"user","content":"Say hi"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}`,
	}
	plain := newRig(t, rigOptions{})
	for _, coding := range []string{"gzip", "deflate", "raw deflate", "zstd"} {
		for _, shape := range []string{"json", "sse"} {
			t.Run(coding+" "+shape, func(t *testing.T) {
				body := bodies[shape]
				r := newRig(t, rigOptions{wrapSim: compressing(coding)})
				_, want := rawPostAnswer(t, plain.front.URL+"/rollout/p/attempt/0/v1/chat/completions", body)
				key := rollout.Key{RolloutID: "z", AttemptID: "0"}
				resp, got := rawPostAnswer(t, r.front.URL+"/rollout/z/attempt/0/v1/chat/completions", body)
				if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
					t.Fatalf("status %d, Content-Encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
				}
				if !bytes.Equal(got, want) {
					t.Errorf("the agent got\n%s\nwant\n%s", got, want)
				}
				if shape == "json" && resp.ContentLength != int64(len(got)) {
					t.Errorf("Content-Length %d for %d bytes", resp.ContentLength, len(got))
				}
				calls := r.calls(t, key)
				if len(calls) != 1 {
					t.Fatalf("%d calls recorded", len(calls))
				}
				c := calls[0]
				if c.Status != exporter.StatusOK || !c.Valid || len(c.Response.Choices) != 1 || len(c.Response.Choices[0].TokenIDs) == 0 {
					t.Fatalf("recorded status %s valid %v (%s), choices %+v", c.Status, c.Valid, c.Problem, c.Response.Choices)
				}
				ref := plain.calls(t, rollout.Key{RolloutID: "p", AttemptID: "0"})
				if last := ref[len(ref)-1]; !equalIDs(last.Response, c.Response) {
					t.Errorf("IDs recorded %v, uncompressed %v", c.Response.Choices[0].TokenIDs, last.Response.Choices[0].TokenIDs)
				}
			})
		}
	}
}

func equalIDs(a, b tokenids.Result) bool {
	ja, _ := json.Marshal([]any{a.Prompts, a.Choices})
	jb, _ := json.Marshal([]any{b.Prompts, b.Choices})
	return bytes.Equal(ja, jb)
}

// An encoding tokentap cannot decode passes on untouched; the call is
// recorded without IDs and says why. Untraced answers keep their encoding.
func TestUndecodableAndUntracedEncodings(t *testing.T) {
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v1/chat/completions" {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Content-Encoding", "br")
				w.Write([]byte("\x8b\x02\x80not-really-brotli"))
				return
			}
			compressing("gzip")(next).ServeHTTP(w, r)
		})
	}
	r := newRig(t, rigOptions{wrapSim: wrap})
	resp, got := rawPostAnswer(t, r.front.URL+"/rollout/b/attempt/0/v1/chat/completions", `{"model":"`+model+`","messages":[]}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "br" || string(got) != "\x8b\x02\x80not-really-brotli" {
		t.Errorf("br answer: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), got)
	}
	calls := r.calls(t, rollout.Key{RolloutID: "b", AttemptID: "0"})
	if len(calls) != 1 || calls[0].Valid || len(calls[0].Response.Choices) != 0 || !strings.Contains(calls[0].Problem, `Content-Encoding "br"`) || calls[0].ErrorType == "upstream_malformed" {
		t.Errorf("recorded %+v", calls)
	}

	mr, err := rawClient.Get(r.front.URL + "/rollout/b/attempt/0/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Body.Close()
	if mr.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("untraced answer: Content-Encoding %q", mr.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(mr.Body)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(zr); err != nil || !bytes.Contains(b, []byte(model)) {
		t.Errorf("untraced answer: %s, %v", b, err)
	}
}
