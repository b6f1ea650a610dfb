package anthropic

import (
	"bytes"
	"errors"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// This file is the package's JSON layer. Bodies are read in place: a value is
// a []byte slice of its own text, validated strictly (RFC 8259, UTF-8, the
// nesting Python's json module accepts) as it is skipped, and only the values
// the translation needs are decoded. Strictness matters because the stream
// translator copies string tokens from vLLM's chunks into the agent's events
// verbatim: a token that passed jsonbytes.ValidString is always valid inside
// any JSON text, so the output is well-formed whatever the input was. The
// scanning itself is internal/jsonbytes'; this file holds the Python
// flavour on top of it (dict semantics, repr, json.dumps).

// maxDepth is the nesting at which Python's json module (recursion limit
// 1000) gives up too.
const maxDepth = 1000

// skipWS returns the offset of the first non-whitespace byte at or after i.
func skipWS(b []byte, i int) int { return jsonbytes.SkipWS(b, i) }

func errAt(off int, msg string) error { return &jsonbytes.SyntaxError{Off: off, Msg: msg} }

// validDocument reports whether b is exactly one JSON value (whitespace
// around it allowed).
func validDocument(b []byte) error { return jsonbytes.Valid(b, maxDepth) }

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
		ke, _ = jsonbytes.StringEnd(it.b, ks)
		esc = bytes.IndexByte(it.b[ks:ke], '\\') >= 0
	} else if ke, esc, err = jsonbytes.ValidString(it.b, ks); err != nil {
		return nil, false, nil, it.fail(err)
	}
	i := skipWS(it.b, ke)
	if i >= len(it.b) || it.b[i] != ':' {
		return nil, false, nil, it.fail(errAt(i, "expected ':'"))
	}
	vs := skipWS(it.b, i+1)
	if it.trusted {
		ve = jsonbytes.SkipTrusted(it.b, vs)
	} else if ve, err = jsonbytes.ValidValue(it.b, vs, maxDepth); err != nil {
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
		it.i = jsonbytes.SkipTrusted(it.b, vs)
		return it.b[vs:it.i], true
	}
	ve, err := jsonbytes.ValidValue(it.b, vs, maxDepth)
	if err != nil {
		return nil, it.fail(err)
	}
	it.i = ve
	return it.b[vs:ve], true
}

// pick walks the object it is on and stores in *dst[j] the value of the
// member named keys[j]; a later member of the same name wins, as in a
// Python dict. Other members are skipped, and entries of dst whose key is
// absent are left as they were. It returns it.err: whether the object was
// well-formed up to its end.
func pick(it iter, keys []string, dst ...*[]byte) error {
	for k, esc, v, ok := it.member(); ok; k, esc, v, ok = it.member() {
		name := k
		if esc {
			// Decode the key once, not once per wanted name.
			var buf [64]byte
			name = appendUnescaped(buf[:0], k)
		}
		for j, want := range keys {
			if string(name) == want {
				*dst[j] = v
				break
			}
		}
	}
	return it.err
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

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// appendUnescaped decodes the raw contents of a string.
func appendUnescaped(dst, raw []byte) []byte { return jsonbytes.AppendUnescaped(dst, raw) }

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
// BMP. Starlette's JSONResponse uses ensure_ascii=False. Invalid UTF-8
// cannot come from a validated JSON text; it is written as U+FFFD rather
// than as invalid bytes.
func appendPyString(dst []byte, s string, ascii bool) []byte {
	mode := jsonbytes.ShortBF | jsonbytes.ReplaceInvalid
	if ascii {
		mode |= jsonbytes.ASCII
	}
	return jsonbytes.AppendString(dst, s, mode)
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
		members, err := dictMembers(v)
		if err != nil {
			return dst, err
		}
		dst = append(dst, '{')
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

// dictMember is one entry of the dict json.loads makes of an object.
type dictMember struct {
	key string
	val []byte
}

// dictMembers lists the members of the object v as json.loads keeps them:
// decoded keys, each at its first position with its last value. The error
// says where the object is malformed; the members before it are returned.
func dictMembers(v []byte) ([]dictMember, error) {
	var members []dictMember
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
			members = append(members, dictMember{key, val})
		}
	}
	return members, it.err
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
		// As for arrays below, a malformed tail is left out, not reported:
		// repr has no error to give.
		members, _ := dictMembers(v)
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
