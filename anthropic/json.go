package anthropic

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the package's JSON layer. Bodies are read in place: a value is
// a []byte slice of its own text, validated strictly (RFC 8259, UTF-8, the
// nesting Python's json module accepts) as it is skipped, and only the values
// the translation needs are decoded. Strictness matters because the stream
// translator copies string tokens from vLLM's chunks into the agent's events
// verbatim: a token that passed skipString is always valid inside any JSON
// text, so the output is well-formed whatever the input was.

// maxDepth is the nesting at which Python's json module (recursion limit
// 1000) gives up too.
const maxDepth = 1000

type syntaxError struct {
	off int
	msg string
}

func (e *syntaxError) Error() string { return fmt.Sprintf("offset %d: %s", e.off, e.msg) }

func errAt(off int, msg string) error { return &syntaxError{off, msg} }

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// strPlain marks the bytes a string may contain as they are: printable
// ASCII other than the quote and the backslash.
var strPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skipString validates the string starting at b[i] (a quote) and returns the
// offset after its closing quote and whether it contains escapes.
func skipString(b []byte, i int) (end int, escaped bool, err error) {
	i++
	for i < len(b) {
		c := b[i]
		if strPlain[c] {
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
				for _, h := range b[i+2 : i+6] {
					if unhex(h) < 0 {
						return i, escaped, errAt(i, "bad \\u escape")
					}
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

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// skipNumber validates the number starting at b[i].
func skipNumber(b []byte, i int) (int, error) {
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

func skipLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, errAt(i, "invalid value")
	}
	return i + len(lit), nil
}

// skipValue validates the value starting at or after b[i] (whitespace first)
// and returns the offset just after it. It is iterative: the container kinds
// of the open levels live in a bit stack on the Go stack, so hostile nesting
// costs neither recursion nor allocation.
func skipValue(b []byte, i int) (int, error) {
	var stack [maxDepth/64 + 1]uint64 // bit set: object, clear: array
	depth := 0
	var err error
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return i, errAt(i, "unexpected end of JSON")
		}
		switch c := b[i]; c {
		case '{', '[':
			if depth == maxDepth {
				return i, errAt(i, "nesting too deep")
			}
			if c == '{' {
				stack[depth/64] |= 1 << (depth % 64)
			} else {
				stack[depth/64] &^= 1 << (depth % 64)
			}
			depth++
			i = skipWS(b, i+1)
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				i++
				depth--
			} else if c == '{' {
				if i, err = skipKey(b, i); err != nil {
					return i, err
				}
				continue
			} else {
				continue
			}
		case '"':
			if i, _, err = skipString(b, i); err != nil {
				return i, err
			}
		case 't':
			if i, err = skipLiteral(b, i, "true"); err != nil {
				return i, err
			}
		case 'f':
			if i, err = skipLiteral(b, i, "false"); err != nil {
				return i, err
			}
		case 'n':
			if i, err = skipLiteral(b, i, "null"); err != nil {
				return i, err
			}
		default:
			if i, err = skipNumber(b, i); err != nil {
				return i, err
			}
		}
		// A value ended: close containers or move to the next element.
		for {
			if depth == 0 {
				return i, nil
			}
			isObj := stack[(depth-1)/64]&(1<<((depth-1)%64)) != 0
			i = skipWS(b, i)
			if i >= len(b) {
				return i, errAt(i, "unexpected end of JSON")
			}
			if b[i] == ',' {
				i++
				if isObj {
					if i, err = skipKey(b, skipWS(b, i)); err != nil {
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

// skipKey validates `"key" :` at b[i] and returns the offset after the colon.
func skipKey(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return i, errAt(i, "expected object key")
	}
	i, _, err := skipString(b, i)
	if err != nil {
		return i, err
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		return i, errAt(i, "expected ':'")
	}
	return i + 1, nil
}

// validDocument reports whether b is exactly one JSON value (whitespace
// around it allowed).
func validDocument(b []byte) error {
	i, err := skipValue(b, 0)
	if err != nil {
		return err
	}
	if i = skipWS(b, i); i != len(b) {
		return errAt(i, "data after the JSON value")
	}
	return nil
}

// skipTrusted returns the end of the value at b[i] in a text validDocument
// has accepted: it only matches quotes and brackets, which is several times
// cheaper than validating again.
func skipTrusted(b []byte, i int) int {
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = endOfString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

// endOfString returns the offset after the valid string starting at b[i].
func endOfString(b []byte, i int) int {
	i++
	for {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		bs := 0
		for k := i - 1; k >= 0 && b[k] == '\\'; k-- {
			bs++
		}
		i++
		if bs%2 == 0 {
			return i
		}
	}
}

// iter walks the members of an object or the elements of an array,
// validating each value as it skips it (unless trusted: the whole text was
// validated already). After the loop, err says whether the container was
// well-formed up to its end.
type iter struct {
	b       []byte
	i       int
	close   byte
	first   bool
	done    bool
	trusted bool
	err     error
}

// trustedIter walks a container of a text validDocument accepted.
func trustedIter(v []byte) iter {
	it := newIter(v)
	it.trusted = true
	return it
}

// newIter starts on the container v (its text starts with '{' or '[').
func newIter(v []byte) iter {
	it := iter{b: v, i: 1, first: true}
	if len(v) == 0 {
		it.done, it.err = true, errAt(0, "empty value")
		return it
	}
	switch v[0] {
	case '{':
		it.close = '}'
	case '[':
		it.close = ']'
	default:
		it.done, it.err = true, errAt(0, "not a container")
	}
	return it
}

func (it *iter) fail(err error) bool {
	it.done, it.err = true, err
	return false
}

// step moves past the separator before the next entry; false at the end.
func (it *iter) step() bool {
	if it.done {
		return false
	}
	it.i = skipWS(it.b, it.i)
	if it.i >= len(it.b) {
		return it.fail(errAt(it.i, "unexpected end of JSON"))
	}
	if it.b[it.i] == it.close {
		it.i++
		it.done = true
		return false
	}
	if !it.first {
		if it.b[it.i] != ',' {
			return it.fail(errAt(it.i, "expected ','"))
		}
		it.i = skipWS(it.b, it.i+1)
	}
	it.first = false
	return true
}

// member returns the next object member: the key's raw contents (between
// its quotes), whether the key has escapes, and the value's text.
func (it *iter) member() (key []byte, esc bool, val []byte, ok bool) {
	if !it.step() {
		return nil, false, nil, false
	}
	ks := it.i
	if ks >= len(it.b) || it.b[ks] != '"' {
		return nil, false, nil, it.fail(errAt(ks, "expected object key"))
	}
	var ke, ve int
	var err error
	if it.trusted {
		ke = endOfString(it.b, ks)
		esc = bytes.IndexByte(it.b[ks:ke], '\\') >= 0
	} else if ke, esc, err = skipString(it.b, ks); err != nil {
		return nil, false, nil, it.fail(err)
	}
	i := skipWS(it.b, ke)
	if i >= len(it.b) || it.b[i] != ':' {
		return nil, false, nil, it.fail(errAt(i, "expected ':'"))
	}
	vs := skipWS(it.b, i+1)
	if it.trusted {
		ve = skipTrusted(it.b, vs)
	} else if ve, err = skipValue(it.b, vs); err != nil {
		return nil, false, nil, it.fail(err)
	}
	it.i = ve
	return it.b[ks+1 : ke-1], esc, it.b[vs:ve], true
}

// elem returns the next array element's text.
func (it *iter) elem() (val []byte, ok bool) {
	if !it.step() {
		return nil, false
	}
	vs := it.i
	if it.trusted {
		it.i = skipTrusted(it.b, vs)
		return it.b[vs:it.i], true
	}
	ve, err := skipValue(it.b, vs)
	if err != nil {
		return nil, it.fail(err)
	}
	it.i = ve
	return it.b[vs:ve], true
}

// keyIs compares a raw key with want, decoding escapes (in a stack buffer)
// only when the key has them: Python compares decoded keys.
func keyIs(key []byte, esc bool, want string) bool {
	if !esc {
		return string(key) == want
	}
	var buf [64]byte
	if len(key) > len(buf) {
		return string(appendUnescaped(nil, key)) == want
	}
	return string(appendUnescaped(buf[:0], key)) == want
}

func isNull(v []byte) bool   { return len(v) == 4 && v[0] == 'n' }
func isString(v []byte) bool { return len(v) > 0 && v[0] == '"' }
func isObject(v []byte) bool { return len(v) > 0 && v[0] == '{' }
func isArray(v []byte) bool  { return len(v) > 0 && v[0] == '[' }
func isBool(v []byte) bool   { return len(v) > 0 && (v[0] == 't' || v[0] == 'f') }
func isNumber(v []byte) bool { return len(v) > 0 && (v[0] == '-' || isDigit(v[0])) }

// appendUnescaped decodes the raw contents of a validated string. A lone
// UTF-16 surrogate becomes U+FFFD, as encoding/json does.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2 : i+6])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); r2 != unicode.ReplacementChar {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}

func hex4(h []byte) rune {
	return rune(unhex(h[0])<<12 | unhex(h[1])<<8 | unhex(h[2])<<4 | unhex(h[3]))
}

// str decodes a validated string value (quotes included).
func str(v []byte) string {
	raw := v[1 : len(v)-1]
	for _, c := range raw {
		if c == '\\' {
			return string(appendUnescaped(make([]byte, 0, len(raw)), raw))
		}
	}
	return string(raw)
}

const hexDigits = "0123456789abcdef"

// appendPyString appends s as Python's json.dumps writes it: the quote, the
// backslash and control characters escaped (\n-style where there is one,
// else \u00XX), and, when ascii is set (ensure_ascii=True, json.dumps'
// default), everything above U+007F as \uXXXX, surrogate pairs beyond the
// BMP. Starlette's JSONResponse uses ensure_ascii=False.
func appendPyString(dst []byte, s string, ascii bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if strPlain[c] && (c != 0x7f || !ascii) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"':
				dst = append(dst, '\\', '"')
			case '\\':
				dst = append(dst, '\\', '\\')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !ascii {
			if r == utf8.RuneError && size == 1 {
				// Invalid UTF-8 cannot come from a validated JSON text;
				// write the replacement character rather than invalid bytes.
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				i += size
				start = i
				continue
			}
			i += size
			continue
		}
		dst = append(dst, s[start:i]...)
		if r >= 0x10000 {
			r1, r2 := utf16.EncodeRune(r)
			dst = appendU4(dst, r1)
			dst = appendU4(dst, r2)
		} else {
			dst = appendU4(dst, r)
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// pyJSON says how appendPyJSON writes: as json.dumps(ensure_ascii=ascii)
// with its default ", "/": " separators (spaced) or Starlette's compact ones.
type pyJSON struct {
	ascii, spaced bool
	// allowNaN is json.dumps' default; Starlette's JSONResponse refuses
	// non-finite floats (allow_nan=False), so answers must too.
	allowNaN bool
}

var errNonFinite = errors.New("number out of float range")

// appendPyJSON re-encodes the validated JSON value v the way Python would
// after json.loads: object keys keep their first position and their last
// value (dict semantics), strings are re-escaped, integers keep their digits
// ("-0" becomes "0") and other numbers go through float repr. Key order is
// never touched, which is the point: a Go map would shuffle it.
func (p pyJSON) appendPyJSON(dst, v []byte) ([]byte, error) {
	switch {
	case isString(v):
		return appendPyString(dst, str(v), p.ascii), nil
	case isNumber(v):
		return p.appendNumber(dst, v)
	case isObject(v):
		type member struct {
			key string
			val []byte
		}
		var members []member
		it := newIter(v)
		for k, esc, val, ok := it.member(); ok; k, esc, val, ok = it.member() {
			key := string(k)
			if esc {
				key = string(appendUnescaped(nil, k))
			}
			dup := false
			for j := range members {
				if members[j].key == key {
					members[j].val, dup = val, true
					break
				}
			}
			if !dup {
				members = append(members, member{key, val})
			}
		}
		if it.err != nil {
			return dst, it.err
		}
		dst = append(dst, '{')
		var err error
		for j, m := range members {
			if j > 0 {
				dst = p.sep(dst, ',')
			}
			dst = appendPyString(dst, m.key, p.ascii)
			dst = p.sep(dst, ':')
			if dst, err = p.appendPyJSON(dst, m.val); err != nil {
				return dst, err
			}
		}
		return append(dst, '}'), nil
	case isArray(v):
		dst = append(dst, '[')
		it := newIter(v)
		n := 0
		var err error
		for e, ok := it.elem(); ok; e, ok = it.elem() {
			if n > 0 {
				dst = p.sep(dst, ',')
			}
			n++
			if dst, err = p.appendPyJSON(dst, e); err != nil {
				return dst, err
			}
		}
		if it.err != nil {
			return dst, it.err
		}
		return append(dst, ']'), nil
	default: // true, false, null
		return append(dst, v...), nil
	}
}

func (p pyJSON) sep(dst []byte, c byte) []byte {
	dst = append(dst, c)
	if p.spaced {
		dst = append(dst, ' ')
	}
	return dst
}

func isIntText(v []byte) bool {
	for _, c := range v {
		if c == '.' || c == 'e' || c == 'E' {
			return false
		}
	}
	return true
}

func (p pyJSON) appendNumber(dst, v []byte) ([]byte, error) {
	if isIntText(v) {
		if string(v) == "-0" {
			return append(dst, '0'), nil
		}
		return append(dst, v...), nil
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil && !math.IsInf(f, 0) {
		return dst, err
	}
	if math.IsInf(f, 0) {
		if !p.allowNaN {
			return dst, errNonFinite
		}
		if f < 0 {
			return append(dst, "-Infinity"...), nil
		}
		return append(dst, "Infinity"...), nil
	}
	return appendPyFloat(dst, f), nil
}

// appendPyFloat writes a finite float as Python's repr does: the shortest
// digits that round-trip, positional for decimal exponents -4..15 (with at
// least one digit after the point), else d.ddde±XX.
func appendPyFloat(dst []byte, f float64) []byte {
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], f, 'e', -1, 64) // [-]d[.ddd]e±XX
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		dst = append(dst, '-')
	}
	ei := 0
	for ei = range s {
		if s[ei] == 'e' {
			break
		}
	}
	e, _ := strconv.Atoi(string(s[ei+1:]))
	var digits [24]byte
	nd := 0
	for _, c := range s[:ei] {
		if c != '.' {
			digits[nd] = c
			nd++
		}
	}
	ds := digits[:nd]
	if -4 <= e && e < 16 {
		if e < 0 {
			dst = append(dst, '0', '.')
			for k := 0; k < -e-1; k++ {
				dst = append(dst, '0')
			}
			return append(dst, ds...)
		}
		if nd <= e+1 {
			dst = append(dst, ds...)
			for k := nd; k < e+1; k++ {
				dst = append(dst, '0')
			}
			return append(dst, '.', '0')
		}
		dst = append(dst, ds[:e+1]...)
		dst = append(dst, '.')
		return append(dst, ds[e+1:]...)
	}
	dst = append(dst, ds[0])
	if nd > 1 {
		dst = append(dst, '.')
		dst = append(dst, ds[1:]...)
	}
	dst = append(dst, 'e')
	if e < 0 {
		dst = append(dst, '-')
		e = -e
	} else {
		dst = append(dst, '+')
	}
	if e < 10 {
		dst = append(dst, '0')
	}
	return strconv.AppendInt(dst, int64(e), 10)
}

// appendPyRepr writes Python's str() of a json.loads'ed value: repr quoting
// for strings inside containers, True/False/None, ", " and ": " separators.
// vLLM uses str(block.content) for a tool_result in an assistant message.
func appendPyRepr(dst, v []byte) []byte {
	switch {
	case isString(v):
		return appendPyStrRepr(dst, str(v))
	case isNumber(v):
		out, err := pyJSON{allowNaN: true}.appendNumber(dst, v)
		if err != nil {
			return append(dst, v...)
		}
		if n := len(out); n >= 8 && string(out[n-8:]) == "Infinity" {
			// Python's repr of float("inf") is "inf".
			out = append(out[:n-8], "inf"...)
		}
		return out
	case isObject(v):
		type member struct {
			key string
			val []byte
		}
		var members []member
		it := newIter(v)
		for k, esc, val, ok := it.member(); ok; k, esc, val, ok = it.member() {
			key := string(k)
			if esc {
				key = string(appendUnescaped(nil, k))
			}
			dup := false
			for j := range members {
				if members[j].key == key {
					members[j].val, dup = val, true
				}
			}
			if !dup {
				members = append(members, member{key, val})
			}
		}
		dst = append(dst, '{')
		for j, m := range members {
			if j > 0 {
				dst = append(dst, ',', ' ')
			}
			dst = appendPyStrRepr(dst, m.key)
			dst = append(dst, ':', ' ')
			dst = appendPyRepr(dst, m.val)
		}
		return append(dst, '}')
	case isArray(v):
		dst = append(dst, '[')
		it := newIter(v)
		n := 0
		for e, ok := it.elem(); ok; e, ok = it.elem() {
			if n > 0 {
				dst = append(dst, ',', ' ')
			}
			n++
			dst = appendPyRepr(dst, e)
		}
		return append(dst, ']')
	case len(v) > 0 && v[0] == 't':
		return append(dst, "True"...)
	case len(v) > 0 && v[0] == 'f':
		return append(dst, "False"...)
	default:
		return append(dst, "None"...)
	}
}

// appendPyStrRepr is Python's repr() of a str: single quotes unless the
// text has a single quote and no double quote; \t \n \r and the quote and
// backslash escaped; other non-printable characters as \xNN, \uNNNN or
// \UNNNNNNNN.
func appendPyStrRepr(dst []byte, s string) []byte {
	quote := byte('\'')
	hasSingle, hasDouble := false, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\'':
			hasSingle = true
		case '"':
			hasDouble = true
		}
	}
	if hasSingle && !hasDouble {
		quote = '"'
	}
	dst = append(dst, quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			dst = append(dst, '\\', byte(r))
		case r == '\t':
			dst = append(dst, '\\', 't')
		case r == '\n':
			dst = append(dst, '\\', 'n')
		case r == '\r':
			dst = append(dst, '\\', 'r')
		case r < ' ' || r == 0x7f:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r < 0x7f:
			dst = append(dst, byte(r))
		case unicode.IsPrint(r):
			dst = utf8.AppendRune(dst, r)
		case r <= 0xff:
			dst = append(dst, '\\', 'x', hexDigits[r>>4], hexDigits[r&0xf])
		case r <= 0xffff:
			dst = append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
		default:
			dst = append(dst, '\\', 'U')
			for sh := 28; sh >= 0; sh -= 4 {
				dst = append(dst, hexDigits[r>>uint(sh)&0xf])
			}
		}
	}
	return append(dst, quote)
}
