package vllmsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var fixedTime = time.Unix(1760000000, 0)

const testModel = "Qwen/Qwen2.5-1.5B-Instruct"

// newSim returns a Server with a fixed clock unless opts sets one.
func newSim(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = func() time.Time { return fixedTime }
	}
	return New(opts)
}

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do runs one request through h. hdr is a list of name, value pairs.
func do(t testing.TB, h http.Handler, method, path, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return response{code: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func post(t testing.TB, h http.Handler, path, body string, hdr ...string) response {
	t.Helper()
	return do(t, h, http.MethodPost, path, body, hdr...)
}

// mustOK fails unless r is a 200 with the given content type.
func mustOK(t testing.TB, r response, contentType string) {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("status %d, body %s", r.code, r.body)
	}
	if got := r.header.Get("Content-Type"); got != contentType {
		t.Fatalf("content type %q, want %q", got, contentType)
	}
}

// sseEvents splits an SSE body into its data payloads, checking the framing
// byte for byte: only "data: <payload>\n\n" events, ending with [DONE].
func sseEvents(t testing.TB, body []byte) []string {
	t.Helper()
	s := string(body)
	var out []string
	for len(s) > 0 {
		if !strings.HasPrefix(s, "data: ") {
			t.Fatalf("event does not start with %q: %q", "data: ", s[:min(len(s), 40)])
		}
		end := strings.Index(s, "\n\n")
		if end < 0 {
			t.Fatalf("unterminated event: %q", s)
		}
		payload := s[len("data: "):end]
		if strings.Contains(payload, "\n") {
			t.Fatalf("multi-line event: %q", payload)
		}
		out = append(out, payload)
		s = s[end+2:]
	}
	if len(out) == 0 || out[len(out)-1] != "[DONE]" {
		t.Fatalf("stream does not end with [DONE]: %q", out)
	}
	return out
}

// chunks returns the JSON events of a stream, [DONE] excluded.
func chunks(t testing.TB, body []byte) []*node {
	t.Helper()
	ev := sseEvents(t, body)
	out := make([]*node, 0, len(ev)-1)
	for _, e := range ev[:len(ev)-1] {
		out = append(out, parseNode(t, []byte(e)))
	}
	return out
}

// node is an order-preserving JSON tree built with json.Decoder.Token, so
// that tests can assert key order as well as values.
type node struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	keys  []string
	vals  []*node
	items []*node
	str   string
	num   json.Number
	b     bool
}

func parseNode(t testing.TB, data []byte) *node {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := decodeNode(dec)
	if err != nil {
		t.Fatalf("bad JSON %q: %v", data, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after JSON value: %q", data)
	}
	return n
}

func decodeNode(dec *json.Decoder) (*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		if v == '{' {
			n := &node{kind: 'o'}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				child, err := decodeNode(dec)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k.(string))
				n.vals = append(n.vals, child)
			}
			_, err := dec.Token()
			return n, err
		}
		n := &node{kind: 'a'}
		for dec.More() {
			child, err := decodeNode(dec)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, child)
		}
		_, err := dec.Token()
		return n, err
	case string:
		return &node{kind: 's', str: v}, nil
	case json.Number:
		return &node{kind: 'n', num: v}, nil
	case bool:
		return &node{kind: 'b', b: v}, nil
	}
	return &node{kind: 'z'}, nil
}

// at follows a dotted path ("choices.0.message.content"); nil when absent.
func (n *node) at(path string) *node {
	if path == "" {
		return n
	}
	cur := n
	for _, part := range strings.Split(path, ".") {
		if cur == nil {
			return nil
		}
		switch cur.kind {
		case 'o':
			i := slices.Index(cur.keys, part)
			if i < 0 {
				return nil
			}
			cur = cur.vals[i]
		case 'a':
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(cur.items) {
				return nil
			}
			cur = cur.items[i]
		default:
			return nil
		}
	}
	return cur
}

// keysAt lists the keys of the object at path, in document order.
func keysAt(t testing.TB, n *node, path string) []string {
	t.Helper()
	o := n.at(path)
	if o == nil || o.kind != 'o' {
		t.Fatalf("no object at %q", path)
	}
	return o.keys
}

func (n *node) has(path string) bool { return n.at(path) != nil }

func (n *node) isNull(path string) bool {
	v := n.at(path)
	return v != nil && v.kind == 'z'
}

func (n *node) s(t testing.TB, path string) string {
	t.Helper()
	v := n.at(path)
	if v == nil || v.kind != 's' {
		t.Fatalf("no string at %q", path)
	}
	return v.str
}

func (n *node) i(t testing.TB, path string) int64 {
	t.Helper()
	v := n.at(path)
	if v == nil || v.kind != 'n' {
		t.Fatalf("no number at %q", path)
	}
	x, err := v.num.Int64()
	if err != nil {
		t.Fatalf("%q: %v", path, err)
	}
	return x
}

func (n *node) f(t testing.TB, path string) float64 {
	t.Helper()
	v := n.at(path)
	if v == nil || v.kind != 'n' {
		t.Fatalf("no number at %q", path)
	}
	x, err := v.num.Float64()
	if err != nil {
		t.Fatalf("%q: %v", path, err)
	}
	return x
}

func (n *node) ids(t testing.TB, path string) []int64 {
	t.Helper()
	v := n.at(path)
	if v == nil || v.kind != 'a' {
		t.Fatalf("no array at %q", path)
	}
	out := make([]int64, len(v.items))
	for i, it := range v.items {
		x, err := it.num.Int64()
		if err != nil {
			t.Fatalf("%q[%d]: %v", path, i, err)
		}
		out[i] = x
	}
	return out
}

func (n *node) length(t testing.TB, path string) int {
	t.Helper()
	v := n.at(path)
	if v == nil || v.kind != 'a' {
		t.Fatalf("no array at %q", path)
	}
	return len(v.items)
}

// shape renders n with every scalar replaced by its type, runs of identical
// array elements collapsed, and the objects at mapPaths (dicts keyed by
// data: token strings, token IDs) reduced to one "*" key. Two bodies with
// the same shape have the same keys, order, nesting and null-ness.
func shape(n *node, mapPaths ...string) string {
	var sb strings.Builder
	writeShape(&sb, n, "", mapPaths)
	return sb.String()
}

func writeShape(sb *strings.Builder, n *node, path string, mapPaths []string) {
	switch n.kind {
	case 'o':
		if slices.Contains(mapPaths, path) {
			sb.WriteString("{*:")
			if len(n.vals) > 0 {
				writeShape(sb, n.vals[0], path+".*", mapPaths)
			}
			sb.WriteString("}")
			return
		}
		sb.WriteString("{")
		for i, k := range n.keys {
			if i > 0 {
				sb.WriteString(",")
			}
			sb.WriteString(k + ":")
			p := k
			if path != "" {
				p = path + "." + k
			}
			writeShape(sb, n.vals[i], p, mapPaths)
		}
		sb.WriteString("}")
	case 'a':
		sb.WriteString("[")
		prev := ""
		first := true
		for _, it := range n.items {
			var e strings.Builder
			writeShape(&e, it, path+"[]", mapPaths)
			if e.String() == prev {
				continue
			}
			if !first {
				sb.WriteString(",")
			}
			sb.WriteString(e.String())
			prev, first = e.String(), false
		}
		sb.WriteString("]")
	case 's':
		sb.WriteString("s")
	case 'n':
		sb.WriteString("n")
	case 'b':
		sb.WriteString("b")
	default:
		sb.WriteString("null")
	}
}

// hiPolicy makes the model answer "Hi!" like the examples of vllm-wire.md.
func hiPolicy([]Message, int) string { return "Hi!" }

// streamIDs concatenates the token_ids of the stream chunks of one choice index.
func streamIDs(t testing.TB, cs []*node, index int64) []int64 {
	t.Helper()
	var out []int64
	for _, c := range cs {
		if c.length(t, "choices") == 0 || c.i(t, "choices.0.index") != index {
			continue
		}
		if v := c.at("choices.0.token_ids"); v != nil && v.kind == 'a' {
			out = append(out, c.ids(t, "choices.0.token_ids")...)
		}
	}
	return out
}
