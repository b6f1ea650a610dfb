package jsonbytes

import (
	"errors"
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	good := []string{`0`, `-0.5e+3`, `"a\u00e9\n"`, ` {"a":[1,{"b":null}],"c":true} `, `[]`, `{}`, `"😀"`, "\"\x7f\"", `1E-2`}
	bad := []string{``, ` `, `{`, `{"a"}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `.5`, `-`, `"\x"`, "\"a\x01\"", "\"\xff\"", `tru`, `nul`, `1 2`, `{"a":1}}`, `NaN`, `[1 2]`, `"\u12"`, `"\u12g4"`, `"a\`, `{1:2}`, `[}`, `{]`}
	for _, s := range good {
		if err := Valid([]byte(s), 100); err != nil {
			t.Errorf("Valid(%q) = %v", s, err)
		}
	}
	for _, s := range bad {
		if Valid([]byte(s), 100) == nil {
			t.Errorf("Valid(%q) accepted", s)
		}
	}
	for _, depth := range []int{1, 63, 64, 65, 1000, 1024, 1025, 3000} {
		deep := []byte(strings.Repeat(`[{"a":`, depth/2) + strings.Repeat("[", depth%2) + "0" + strings.Repeat("]", depth%2) + strings.Repeat(`}]`, depth/2))
		if err := Valid(deep, depth); err != nil {
			t.Errorf("nesting of %d refused at maxDepth %d: %v", depth, depth, err)
		}
		if err := Valid(deep, depth-1); err == nil {
			t.Errorf("nesting of %d accepted at maxDepth %d", depth, depth-1)
		}
	}
	var se *SyntaxError
	if err := Valid([]byte(`{"a":tru}`), 10); !errors.As(err, &se) || se.Off != 5 || err.Error() != "offset 5: invalid value" {
		t.Errorf("error = %v", err)
	}
}

func TestValidAllocs(t *testing.T) {
	b := []byte(strings.Repeat("[", 1000) + strings.Repeat("]", 1000))
	if n := testing.AllocsPerRun(10, func() { _ = Valid(b, 1000) }); n != 0 {
		t.Errorf("Valid allocates %v times", n)
	}
}
