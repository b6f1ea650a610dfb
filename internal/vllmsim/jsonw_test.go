package vllmsim

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`q"b\`, `"q\"b\\"`},
		{"\n\r\t\b\f", `"\n\r\t\b\f"`},
		{"\x00\x1f\x7f", `"\u0000\u001f` + "\x7f" + `"`},
		{"é🐱\u2028/", `"é🐱` + "\u2028" + `/"`},
		{"bad\xffbyte", `"bad` + "\uFFFD" + `byte"`},
		{"<tag>&", `"<tag>&"`},
	} {
		got := string(appendJSONString(nil, tc.in))
		if got != tc.want {
			t.Errorf("appendJSONString(%q) = %s, want %s", tc.in, got, tc.want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%s is not valid JSON: %v", got, err)
		}
	}
}

// TestPyFloat pins Python's repr(float) output.
func TestPyFloat(t *testing.T) {
	a, b := 0.1, 0.2 // variables: constant arithmetic would be exact
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{-0.0123, "-0.0123"},
		{-9999.0, "-9999.0"},
		{-1, "-1.0"},
		{0, "0.0"},
		{math.Copysign(0, -1), "-0.0"},
		{-0.0001, "-0.0001"},
		{-0.00001, "-1e-05"},
		{1.5e-7, "1.5e-07"},
		{a + b, "0.30000000000000004"},
		{1e16, "1e+16"},
		{123456789012345.6, "123456789012345.6"},
		{2.5, "2.5"},
	} {
		if got := pyFloat(tc.in); got != tc.want {
			t.Errorf("pyFloat(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for units := uint64(1); units < 200000; units += 997 {
		lp := lpFromUnits(units)
		if lp >= 0 || lp == math.Trunc(lp) {
			t.Fatalf("lpFromUnits(%d) = %v", units, lp)
		}
	}
	if lpFromUnits(10000) == -1 {
		t.Errorf("integral logprob produced")
	}
}

func TestPythonRendering(t *testing.T) {
	v, err := parseOrdered([]byte(`{"b":1,"a":[true,false,null,1.50,2e3,"it's",{"x":"say \"hi\"\n"}],"a":"dup"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pyRepr(v), `{'b': 1, 'a': 'dup'}`; got != want {
		t.Errorf("pyRepr = %s, want %s", got, want)
	}
	v, _ = parseOrdered([]byte(`{"b":1,"a":[true,false,null,1.50,2e3,"it's",{"x":"say \"hi\"\n"}]}`))
	if got, want := pyRepr(v), `{'b': 1, 'a': [True, False, None, 1.5, 2000.0, "it's", {'x': 'say "hi"\n'}]}`; got != want {
		t.Errorf("pyRepr = %s, want %s", got, want)
	}
	if got, want := pyDumps(v), `{"b": 1, "a": [true, false, null, 1.5, 2000.0, "it's", {"x": "say \"hi\"\n"}]}`; got != want {
		t.Errorf("pyDumps = %s, want %s", got, want)
	}
	if got := pyStrRepr("a'b\"c\x01"); got != `'a\'b"c\x01'` {
		t.Errorf("pyStrRepr = %s", got)
	}
}
