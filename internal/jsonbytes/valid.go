package jsonbytes

import (
	"fmt"
	"unicode/utf8"
)

// SyntaxError is where and why a strict validator refused a text.
type SyntaxError struct {
	Off int
	Msg string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.Off, e.Msg) }

func errAt(off int, msg string) error { return &SyntaxError{off, msg} }

// plain marks the bytes a string may hold as they are, in input and in
// output: printable ASCII (and DEL) other than the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// ValidString validates the string whose opening quote is b[i]: valid
// escapes, no control characters, valid UTF-8. It returns the offset after
// the closing quote and whether the string has escapes.
func ValidString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		c := b[i]
		if plain[c] {
			i++
			continue
		}
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, escaped, errAt(i, "unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, escaped, errAt(i, "short \\u escape")
				}
				if _, ok := Hex4(b[i+2 : i+6]); !ok {
					return i, escaped, errAt(i, "bad \\u escape")
				}
				i += 6
			default:
				return i, escaped, errAt(i, "bad escape")
			}
		case c < 0x20:
			return i, escaped, errAt(i, "control character in string")
		default:
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size <= 1 {
				return i, escaped, errAt(i, "invalid UTF-8 in string")
			}
			i += size
		}
	}
	return i, escaped, errAt(i, "unterminated string")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validNumber validates -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func validNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return i, errAt(start, "invalid value")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			return i, errAt(i, "bad number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return i, errAt(i, "bad number")
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func validLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errAt(i, "invalid value")
	}
	return i + len(lit), nil
}

// validKey validates `"key" :` at b[i] and returns the offset after the colon.
func validKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, errAt(i, "expected object key")
	}
	i, _, err := ValidString(b, i)
	if err != nil {
		return i, err
	}
	i = SkipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, errAt(i, "expected ':'")
	}
	return i + 1, nil
}

// MaxDepth is the deepest nesting ValidValue can be asked to accept:
// encoding/json's limit.
const MaxDepth = 10000

// ValidValue validates the value at or after b[i] (whitespace first) and
// returns the offset just after it. Nesting deeper than maxDepth (at most
// MaxDepth) is refused: callers mirror the parser whose verdict they stand
// for (Python's json module gives up at 1000 levels, encoding/json at
// 10000).
//
// It is iterative: the container kinds of the open levels are bits in an
// array on the Go stack, sized for the limit (a limit of at most 1024
// levels, the common one, costs 128 bytes to clear), so nesting costs
// neither recursion nor allocation.
func ValidValue(b []byte, i, maxDepth int) (int, error) {
	if maxDepth <= 1024 {
		var kinds [1024 / 64]uint64
		return validValue(b, i, maxDepth, kinds[:])
	}
	var kinds [MaxDepth/64 + 1]uint64
	return validValue(b, i, min(maxDepth, MaxDepth), kinds[:])
}

// validValue is ValidValue with the level bits in kinds (set: object,
// clear: array), which holds maxDepth of them.
func validValue(b []byte, i, maxDepth int, kinds []uint64) (int, error) {
	depth := 0
	var err error
	for {
		i = SkipWS(b, i)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON")
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxDepth {
				return i, errAt(i, "nesting too deep")
			}
			if c == '{' {
				kinds[depth/64] |= 1 << (depth % 64)
			} else {
				kinds[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			i = SkipWS(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				i++
				depth--
			} else if c == '{' {
				if i, err = validKey(b, i); err != nil {
					return i, err
				}
				continue
			} else {
				continue
			}
		case '"':
			if i, _, err = ValidString(b, i); err != nil {
				return i, err
			}
		case 't':
			if i, err = validLiteral(b, i, "true"); err != nil {
				return i, err
			}
		case 'f':
			if i, err = validLiteral(b, i, "false"); err != nil {
				return i, err
			}
		case 'n':
			if i, err = validLiteral(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if i, err = validNumber(b, i); err != nil {
				return i, err
			}
		}
		// A value ended: close containers or move to the next element.
		for {
			if depth == 0 {
				return i, nil
			}
			isObj := kinds[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			i = SkipWS(b, i)
			if i >= len(b) {
				return i, errAt(i, "unexpected end of JSON")
			}
			if b[i] == ',' {
				i++
				if isObj {
					if i, err = validKey(b, SkipWS(b, i)); err != nil {
						return i, err
					}
				}
				break
			}
			if isObj && b[i] == '}' || !isObj && b[i] == ']' {
				i++
				depth--
				continue
			}
			return i, errAt(i, "expected ',' or end of container")
		}
	}
}

// Valid checks that b is exactly one JSON value, whitespace around it
// allowed, nested at most maxDepth deep.
func Valid(b []byte, maxDepth int) error {
	i, err := ValidValue(b, 0, maxDepth)
	if err != nil {
		return err
	}
	if i = SkipWS(b, i); i != len(b) {
		return errAt(i, "data after the JSON value")
	}
	return nil
}
