package responses

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestWellFormed(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{`{"a":[1,-2.5e3,true,false,null,"x\n\u00e9"],"b":{}}`, true},
		{" \t\n{ \"a\" : [ ] }\r\n", true},
		{`"\ud83d\ude00"`, true},
		{`0`, true}, {`-0`, true}, {`01`, false}, {`1.`, false}, {`1e`, false}, {`.5`, false}, {`+1`, false},
		{`{"a":1,}`, false}, {`[1,]`, false}, {`{"a"}`, false}, {`{1:2}`, false}, {`[}`, false}, {`{]`, false},
		{`"a`, false}, {"\"a\tb\"", false}, {`"\x"`, false}, {`"\u12"`, false}, {"\"\xff\"", false},
		{`nul`, false}, {`truex`, false}, {`{} {}`, false}, {``, false}, {` `, false},
		{deep(10000), true}, {deep(10001), false},
	} {
		if got := wellFormed([]byte(tt.in)); got != tt.want {
			t.Errorf("wellFormed(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
		if want := json.Valid([]byte(tt.in)) && utf8.ValidString(tt.in); want != tt.want {
			t.Errorf("the table disagrees with encoding/json on %.40q", tt.in)
		}
	}
}

func TestUnescapeAndQuote(t *testing.T) {
	for _, s := range []string{"plain", "tab\tnew\nline \"q\" \\ \x01 é 😀", "\u2028"} {
		q := appendQuoted(nil, []byte(s))
		var back string
		if err := json.Unmarshal(q, &back); err != nil || back != s {
			t.Errorf("appendQuoted(%q) = %s, decodes to %q (%v)", s, q, back, err)
		}
		if got := string(unescape(nil, q[1:len(q)-1])); got != s {
			t.Errorf("unescape(%s) = %q, want %q", q, got, s)
		}
	}
	if got := string(unescape(nil, []byte(`\ud83d\ude00 \ud83d x \u00e9\/`))); got != "😀 \uFFFD x é/" {
		t.Errorf("surrogates: %q", got)
	}
	if got := string(appendQuoted(nil, []byte("a\xffb"))); got != `"a`+"\uFFFD"+`b"` {
		t.Errorf("invalid UTF-8: %s", got)
	}
	if got := string(appendCompact(nil, []byte("{ \"a b\" : [ 1 , \"x\\\" y\" ] }"))); got != `{"a b":[1,"x\" y"]}` {
		t.Errorf("appendCompact: %s", got)
	}
}
