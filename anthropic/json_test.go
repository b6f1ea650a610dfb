package anthropic

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidDocument(t *testing.T) {
	good := []string{`0`, `-0.5e+3`, `"a\u00e9\n"`, ` {"a":[1,{"b":null}],"c":true} `, `[]`, `{}`, `"😀"`}
	bad := []string{``, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `"\x"`, "\"a\x01\"", "\"\xff\"", `tru`, `nul`, `1 2`, `{"a":1}}`, `NaN`, `[1 2]`}
	for _, s := range good {
		if err := validDocument([]byte(s)); err != nil {
			t.Errorf("validDocument(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if validDocument([]byte(s)) == nil {
			t.Errorf("validDocument(%q) accepted", s)
		}
	}
	if validDocument([]byte(strings.Repeat("[", maxDepth)+strings.Repeat("]", maxDepth))) != nil {
		t.Error("nesting of maxDepth refused")
	}
}

// FuzzValidDocument holds the scanner to encoding/json's verdict (which
// also checks UTF-8 only leniently, so invalid UTF-8 is left out).
func FuzzValidDocument(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c\u00e9"}]}`, `[1e5,-0,true,false,null]`, `"\ud83d\ude00"`, `{"a":}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ours := validDocument(b) == nil
		if !utf8.Valid(b) {
			if ours {
				t.Fatalf("accepted invalid UTF-8 %q", b)
			}
			return
		}
		deep := strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth
		if theirs := json.Valid(b); ours != theirs && !deep {
			t.Fatalf("validDocument %v, json.Valid %v on %q", ours, theirs, b)
		}
		if ours {
			// What appendPyJSON writes is valid too, and the same value.
			out, err := (pyJSON{allowNaN: false}).appendPyJSON(nil, b[skipWS(b, 0):])
			if err == nil && !json.Valid(out) {
				t.Fatalf("appendPyJSON(%q) = %q, invalid", b, out)
			}
		}
	})
}

func TestAppendPyFloat(t *testing.T) {
	tests := []struct {
		f    float64
		want string
	}{
		{0, "0.0"}, {math.Copysign(0, -1), "-0.0"}, {1, "1.0"}, {1.5, "1.5"}, {100000, "100000.0"},
		{1e15, "1000000000000000.0"}, {1e16, "1e+16"}, {1.5e16, "1.5e+16"}, {0.0001, "0.0001"},
		{0.00001, "1e-05"}, {1.5e-7, "1.5e-07"}, {123.456, "123.456"}, {1.2345678901234568e+17, "1.2345678901234568e+17"},
		{1e100, "1e+100"}, {-2.5, "-2.5"}, {0.1, "0.1"}, {1.0 / 3, "0.3333333333333333"},
	}
	for _, tt := range tests {
		if got := string(appendPyFloat(nil, tt.f)); got != tt.want {
			t.Errorf("appendPyFloat(%v) = %s, want %s", tt.f, got, tt.want)
		}
	}
}

func TestAppendPyJSON(t *testing.T) {
	in := `{"b": 1, "a": [1.0, 2E3, -0, "é\u00e9\n\"\\\u007f\u0001😀"], "b": {"x": null, "y": true}}`
	tests := []struct {
		p    pyJSON
		want string
	}{
		{pyJSON{ascii: true, spaced: true}, `{"b": {"x": null, "y": true}, "a": [1.0, 2000.0, 0, "\u00e9\u00e9\n\"\\\u007f\u0001\ud83d\ude00"]}`},
		{pyJSON{}, "{\"b\":{\"x\":null,\"y\":true},\"a\":[1.0,2000.0,0,\"éé\\n\\\"\\\\\x7f\\u0001😀\"]}"},
	}
	for _, tt := range tests {
		got, err := tt.p.appendPyJSON(nil, []byte(in))
		if err != nil || string(got) != tt.want {
			t.Errorf("%+v: %s, %v\nwant %s", tt.p, got, err, tt.want)
		}
	}
	if _, err := (pyJSON{}).appendPyJSON(nil, []byte(`[1e400]`)); err == nil {
		t.Error("1e400 written without allowNaN")
	}
	if got, _ := (pyJSON{allowNaN: true}).appendPyJSON(nil, []byte(`[1e400,-1e400]`)); string(got) != `[Infinity,-Infinity]` {
		t.Errorf("allowNaN: %s", got)
	}
}

func TestAppendPyRepr(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"it's"`, `it's`},
		{`["it's"]`, `["it's"]`},
		{`["a'b\"c"]`, `['a\'b"c']`},
		{`[{"k":"v\n\t\\","n":-0,"f":1e400,"t":false}]`, `[{'k': 'v\n\t\\', 'n': 0, 'f': inf, 't': False}]`},
		{`["\u0001\u007fé\u200b😀"]`, `['\x01\x7fé\u200b😀']`},
	}
	for _, tt := range tests {
		v := []byte(tt.in)
		var got string
		if isString(v) {
			got = str(v)
		} else {
			got = string(appendPyRepr(nil, v))
		}
		if got != tt.want {
			t.Errorf("str(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
