package jsonbytes

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSkipValue holds the parsers to encoding/json: the strict validator
// gives json.Valid's verdict (on valid UTF-8, within the depth limit); on
// what it accepts the lenient skippers find the same end, and every string
// in it decodes as encoding/json decodes it.
func FuzzSkipValue(f *testing.F) {
	for _, s := range []string{`{"a":[1,2,{"b":"c\u00e9"}]}`, `[1e5,-0,true,false,null]`, `"\ud83d\ude00"`, `{"a":}`, `"a\\\"b"`, `[[[["x"]]]]`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	const maxDepth = 64
	f.Fuzz(func(t *testing.T, b []byte) {
		end, err := ValidValue(b, 0, maxDepth)
		ours := err == nil && SkipWS(b, end) == len(b)
		if ours != (Valid(b, maxDepth) == nil) {
			t.Fatalf("ValidValue and Valid disagree on %q", b)
		}
		if !utf8.Valid(b) {
			if ours {
				t.Fatalf("accepted invalid UTF-8 %q", b)
			}
		} else if theirs := json.Valid(b); ours != theirs {
			deep := strings.Count(string(b), "[")+strings.Count(string(b), "{") > maxDepth
			if !deep {
				t.Fatalf("Valid %v, json.Valid %v on %q", ours, theirs, b)
			}
		}
		// Whatever the input, the lenient skippers end inside b and agree
		// with the definition of a string's end.
		for i := range b {
			if b[i] == '"' {
				e1, ok1 := StringEnd(b, i)
				e2, ok2 := stringEndPairs(b, i)
				if e1 != e2 || ok1 != ok2 {
					t.Fatalf("StringEnd(%q, %d) = %d %v, pair stepping %d %v", b, i, e1, ok1, e2, ok2)
				}
			}
			if e := SkipTrusted(b, i); e < i || e > len(b) {
				t.Fatalf("SkipTrusted(%q, %d) = %d", b, i, e)
			}
		}
		_ = AppendUnescaped(nil, b) // any bytes: must not panic
		if !ours {
			return
		}
		start := SkipWS(b, 0)
		if got := SkipTrusted(b, start); got != end {
			t.Fatalf("SkipTrusted(%q) = %d, ValidValue %d", b, got, end)
		}
		if b[start] == '"' {
			var want string
			if err := json.Unmarshal(b, &want); err != nil {
				t.Fatal(err)
			}
			if got := string(AppendUnescaped(nil, b[start+1:end-1])); got != want {
				t.Fatalf("AppendUnescaped(%q) = %q, encoding/json %q", b, got, want)
			}
		}
	})
}

// FuzzAppendString checks that every mode writes a valid JSON string that
// decodes back to s (U+FFFD for invalid UTF-8 where the mode replaces it).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c\n\x00\x7f", "é😀\u2028", "a\xffb\xe2\x82"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, mode := range []Escape{0, ShortBF, ReplaceInvalid, ShortBF | ReplaceInvalid, ASCII, ASCII | ShortBF | ReplaceInvalid} {
			out := AppendString(nil, s, mode)
			if mode&ASCII != 0 {
				for _, c := range out {
					if c >= 0x7f {
						t.Fatalf("mode %d wrote %q for %q", mode, out, s)
					}
				}
			}
			if mode&(ASCII|ReplaceInvalid) == 0 && !utf8.ValidString(s) {
				continue // the invalid bytes are copied on purpose
			}
			if err := Valid(out, 1); err != nil {
				t.Fatalf("mode %d wrote %q for %q: %v", mode, out, s, err)
			}
			var back string
			if err := json.Unmarshal(out, &back); err != nil {
				t.Fatal(err)
			}
			if want := strings.ToValidUTF8(s, "\uFFFD"); back != want && !(strings.Count(s, "\uFFFD") > 0) {
				// ToValidUTF8 folds a run of invalid bytes into one U+FFFD;
				// the encoders replace byte by byte, as Python's
				// errors="replace" does.
				if back != replaceEach(s) {
					t.Fatalf("mode %d: %q decodes to %q, want %q", mode, out, back, replaceEach(s))
				}
			}
		}
	})
}

func replaceEach(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += size
	}
	return b.String()
}
