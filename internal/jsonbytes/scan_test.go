package jsonbytes

import (
	"errors"
	"testing"
)

// TestOffsets checks the skippers that return an offset: where the
// whitespace ends and where a trusted value ends.
func TestOffsets(t *testing.T) {
	skipWS, skipTrusted := "SkipWS", "SkipTrusted"
	funcs := map[string]func([]byte, int) int{skipWS: SkipWS, skipTrusted: SkipTrusted}
	for _, tt := range []struct {
		fn   string
		in   string
		from int
		want int
	}{
		{skipWS, "", 0, 0}, {skipWS, "  x", 0, 2}, {skipWS, " \t\r\nx", 1, 4}, {skipWS, "x ", 0, 0}, {skipWS, "   ", 1, 3},
		{skipTrusted, `"a\"b",1`, 0, 6},
		{skipTrusted, `{"a":[1,2]},`, 0, 11},
		{skipTrusted, `-12.5e3}`, 0, 7},
		{skipTrusted, `true ,`, 0, 4},
		{skipTrusted, `null`, 0, 4},
		{skipTrusted, `x`, 1, 1},
		{skipTrusted, `[1,`, 0, 3},
	} {
		if got := funcs[tt.fn]([]byte(tt.in), tt.from); got != tt.want {
			t.Errorf("%s(%q, %d) = %d, want %d", tt.fn, tt.in, tt.from, got, tt.want)
		}
	}
}

// stringEnd is what StringEnd returns.
type stringEnd struct {
	end int
	ok  bool
}

func TestStringEnd(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want stringEnd
	}{
		{`""`, stringEnd{2, true}},
		{`"abc",`, stringEnd{5, true}},
		{`"a\"b"x`, stringEnd{6, true}},
		{`"a\\"b"`, stringEnd{5, true}},
		{`"a\\\"b"`, stringEnd{8, true}},
		{`"\n"`, stringEnd{4, true}},
		{`"abc`, stringEnd{4, false}},
		{`"a\"`, stringEnd{4, false}},
		{`"a\`, stringEnd{3, false}},
		{`"`, stringEnd{1, false}},
	} {
		var got stringEnd
		got.end, got.ok = StringEnd([]byte(tt.in), 0)
		if got != tt.want {
			t.Errorf("StringEnd(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		var def stringEnd
		def.end, def.ok = stringEndPairs([]byte(tt.in), 0)
		if got != def {
			t.Errorf("StringEnd(%q) = %+v, pair stepping %+v", tt.in, got, def)
		}
	}
}

// stringEndPairs is the definition StringEnd must agree with: step over
// backslash pairs one by one until an unescaped quote.
func stringEndPairs(b []byte, i int) (int, bool) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, true
		}
	}
	return len(b), false
}

func TestSkipContainer(t *testing.T) {
	type limited struct {
		in       string
		maxDepth int
	}
	for _, tt := range []struct {
		limited
		end int
		err error
	}{
		{limited{`{}`, 10}, 2, nil},
		{limited{`[1,[2,{"a":"]"}]] x`, 10}, 17, nil},
		{limited{`{"a":"\"}"}`, 10}, 11, nil},
		{limited{`[[[]]]`, 3}, 6, nil},
		{limited{`[[[[]]]]`, 3}, 3, ErrTooDeep},
		{limited{`[1,2`, 10}, 4, ErrUnterminated},
		{limited{`["ab`, 10}, 4, ErrUnterminatedString},
	} {
		end, err := SkipContainer([]byte(tt.in), 0, tt.maxDepth)
		if end != tt.end || !errors.Is(err, tt.err) {
			t.Errorf("SkipContainer(%q, %d) = %d, %v; want %d, %v", tt.in, tt.maxDepth, end, err, tt.end, tt.err)
		}
	}
}

func TestAppendUnescaped(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{``, ``},
		{`plain`, `plain`},
		{`a\nb\t\"\\\/\b\f\r`, "a\nb\t\"\\/\b\f\r"},
		{`\u00e9\u20AC`, "é€"},
		{`\ud83d\ude00 \ud83d x \u00e9\/`, "😀 \uFFFD x é/"},
		{`\ude00`, "\uFFFD"},
		{`\ud83d\u0041`, "\uFFFDA"},
		{`\u12`, "\uFFFD12"},
		{`\x`, "\uFFFD"},
		{`ab\`, "ab\uFFFD"},
		{"a\xffb\\n", "a\uFFFDb\n"},
		{"\xe2\x82\\n", "\uFFFD\uFFFD\n"},
	} {
		if got := string(AppendUnescaped(nil, []byte(tt.in))); got != tt.want {
			t.Errorf("AppendUnescaped(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
