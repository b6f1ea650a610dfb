package responses

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// wellFormed reports whether b is exactly one JSON text in valid UTF-8 (what
// json.Valid and utf8.Valid together accept; FuzzWellFormed holds it to
// that). Every input is checked with it before it is scanned, so the
// scanner below can be lenient, and every byte copied from an input into an
// output is known to be valid JSON: the translator can only write
// well-formed JSON. It is a loop over the bytes with the nesting kept as
// bits, several times faster than json.Valid on stream chunks.
func wellFormed(b []byte) bool {
	const maxDepth = 10000 // encoding/json's limit
	var nest [maxDepth/64 + 1]uint64
	depth := 0 // open objects and arrays; bit set for an object
	i := 0
	ws := func() {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
			i++
		}
	}
	inObject := func() bool { return nest[(depth-1)/64]&(1<<uint((depth-1)%64)) != 0 }
	for {
		// A value.
		ws()
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == maxDepth {
				return false
			}
			w, bit := depth/64, uint64(1)<<uint(depth%64)
			if c == '{' {
				nest[w] |= bit
			} else {
				nest[w] &^= bit
			}
			depth++
			i++
			ws()
			if i < len(b) && (b[i] == '}' && c == '{' || b[i] == ']' && c == '[') {
				i++
				depth--
				break
			}
			if c == '{' {
				if !validKey(b, &i) {
					return false
				}
			}
			continue
		case c == '"':
			if !validString(b, &i) {
				return false
			}
		case c == 't':
			if !literal(b, &i, "true") {
				return false
			}
		case c == 'f':
			if !literal(b, &i, "false") {
				return false
			}
		case c == 'n':
			if !literal(b, &i, "null") {
				return false
			}
		case c == '-' || c >= '0' && c <= '9':
			if !validNumber(b, &i) {
				return false
			}
		default:
			return false
		}
		// After a value: close what it ends, or go on to the next one.
		for {
			ws()
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			c := b[i]
			i++
			if c == ',' {
				if inObject() && !validKey(b, &i) {
					return false
				}
				break
			}
			if c == '}' && inObject() || c == ']' && !inObject() {
				depth--
				continue
			}
			return false
		}
	}
}

// validKey reads a member name and its colon, whitespace around them.
func validKey(b []byte, i *int) bool {
	for *i < len(b) && (b[*i] == ' ' || b[*i] == '\t' || b[*i] == '\n' || b[*i] == '\r') {
		*i++
	}
	if *i >= len(b) || b[*i] != '"' || !validString(b, i) {
		return false
	}
	for *i < len(b) && (b[*i] == ' ' || b[*i] == '\t' || b[*i] == '\n' || b[*i] == '\r') {
		*i++
	}
	if *i >= len(b) || b[*i] != ':' {
		return false
	}
	*i++
	return true
}

// validString reads a string at b[*i] == '"': no control characters, valid
// escapes, valid UTF-8.
func validString(b []byte, i *int) bool {
	j := *i + 1
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			*i = j + 1
			return true
		case c == '\\':
			if j+1 >= len(b) {
				return false
			}
			switch b[j+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if _, n := hex4(b[j+2:]); n == 0 {
					return false
				}
				j += 6
			default:
				return false
			}
		case c < 0x20:
			return false
		case c < utf8.RuneSelf:
			j++
		default:
			r, n := utf8.DecodeRune(b[j:])
			if r == utf8.RuneError && n == 1 {
				return false
			}
			j += n
		}
	}
	return false
}

func literal(b []byte, i *int, lit string) bool {
	if len(b)-*i < len(lit) || string(b[*i:*i+len(lit)]) != lit {
		return false
	}
	*i += len(lit)
	return true
}

// validNumber reads -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(b []byte, i *int) bool {
	j := *i
	digits := func() bool {
		k := j
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
		}
		return j > k
	}
	if b[j] == '-' {
		j++
	}
	if j < len(b) && b[j] == '0' {
		j++
	} else if !digits() {
		return false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if !digits() {
			return false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if !digits() {
			return false
		}
	}
	*i = j
	return true
}

// scanner walks one well-formed JSON text in place. It never decodes a value
// it was not asked for and never allocates: callers take raw slices of the
// input and copy them into their output, which keeps strings byte-exact
// (escapes and all) and object key order untouched.
type scanner struct {
	b []byte
	i int
}

// ws skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) ws() byte {
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return c
		}
	}
	return 0
}

// enter consumes the opening bracket of an object ('{') or array ('[') and
// reports whether it was there.
func (s *scanner) enter(open byte) bool {
	if s.ws() != open {
		return false
	}
	s.i++
	return true
}

// more moves to the next member or element of the object or array being
// read and reports whether there is one; at the closing bracket it consumes
// it and returns false. Leading commas cannot occur in well-formed JSON, so
// a comma is simply stepped over.
func (s *scanner) more(close byte) bool {
	c := s.ws()
	if c == ',' {
		s.i++
		c = s.ws()
	}
	if c == close {
		s.i++
		return false
	}
	return c != 0
}

// key reads a member name and its colon. Names with escapes are rare enough
// that they are decoded into a fresh slice; the common case is a sub-slice.
func (s *scanner) key() []byte {
	raw, esc := s.str()
	s.ws()
	s.i++ // ':'
	if esc {
		return unescape(nil, raw)
	}
	return raw
}

// str reads a string at the cursor and returns its raw contents (between the
// quotes, escapes kept) and whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool) {
	s.ws()
	s.i++ // opening quote
	start := s.i
	for s.i < len(s.b) {
		// Two vectorised scans beat a byte loop on message text: the closing
		// quote is the next quote not preceded by an escape.
		rest := s.b[s.i:]
		q := bytes.IndexByte(rest, '"')
		if q < 0 {
			break
		}
		e := bytes.IndexByte(rest[:q], '\\')
		if e < 0 {
			s.i += q + 1
			return s.b[start : s.i-1], escaped
		}
		escaped = true
		s.i += e + 2
	}
	s.i = len(s.b)
	return s.b[start:], escaped
}

// value skips the value at the cursor and returns its raw bytes.
func (s *scanner) value() []byte {
	c := s.ws()
	start := s.i
	switch c {
	case '"':
		s.str()
	case '{', '[':
		depth := 0
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case '"':
				s.str()
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					s.i++
					return s.b[start:s.i]
				}
			}
			s.i++
		}
	default:
		for s.i < len(s.b) {
			switch s.b[s.i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return s.b[start:s.i]
			}
			s.i++
		}
	}
	return s.b[start:s.i]
}

// isNull reports whether a raw value is absent or JSON null; pydantic treats
// both as "unset", and so does the translator.
func isNull(raw []byte) bool {
	return len(raw) == 0 || (raw[0] == 'n' && string(raw) == "null")
}

// isString reports whether a raw value is a JSON string.
func isString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }

// strContent returns the raw contents of a raw JSON string value (without
// its quotes) and whether it contains escapes.
func strContent(raw []byte) ([]byte, bool) {
	if len(raw) < 2 {
		return nil, false
	}
	c := raw[1 : len(raw)-1]
	for _, b := range c {
		if b == '\\' {
			return c, true
		}
	}
	return c, false
}

// strEq reports whether the raw JSON string value raw decodes to want.
func strEq(raw []byte, want string) bool {
	if !isString(raw) {
		return false
	}
	c, esc := strContent(raw)
	if esc {
		return string(unescape(nil, c)) == want
	}
	return string(c) == want
}

// decoded returns the decoded text of a raw JSON string value, or "" when
// raw is not a string.
func decoded(raw []byte) string {
	if !isString(raw) {
		return ""
	}
	c, esc := strContent(raw)
	if esc {
		return string(unescape(nil, c))
	}
	return string(c)
}

// parseInt reads a raw JSON integer. Floats, exponents and anything out of
// range report false.
func parseInt(raw []byte) (int64, bool) {
	if len(raw) == 0 || len(raw) > 18 {
		return 0, false
	}
	neg := raw[0] == '-'
	if neg {
		raw = raw[1:]
		if len(raw) == 0 {
			return 0, false
		}
	}
	var n int64
	for _, c := range raw {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// unescape appends the decoded form of raw string contents to dst. Lone or
// broken surrogates become U+FFFD, as encoding/json does.
func unescape(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			dst = append(dst, c)
			continue
		}
		i++
		switch raw[i] {
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
			r, n := hex4(raw[i+1:])
			if n == 0 {
				dst = append(dst, "\uFFFD"...)
				continue
			}
			i += n
			if utf16.IsSurrogate(r) {
				r2, n2 := rune(-1), 0
				if i+2 < len(raw) && raw[i+1] == '\\' && raw[i+2] == 'u' {
					r2, n2 = hex4(raw[i+3:])
				}
				if dec := utf16.DecodeRune(r, r2); n2 > 0 && dec != utf8.RuneError {
					i += 2 + n2
					r = dec
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, raw[i])
		}
	}
	return dst
}

// hex4 reads four hex digits; n is 4, or 0 if they are not there.
func hex4(b []byte) (r rune, n int) {
	if len(b) < 4 {
		return 0, 0
	}
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, 0
		}
	}
	return r, 4
}

// appendQuoted appends s as a JSON string. Invalid UTF-8 becomes U+FFFD so
// the output is always valid.
func appendQuoted(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return append(dst, '"')
}

// appendCompact appends a well-formed raw JSON value without its
// insignificant whitespace. Raw values from a request may be pretty-printed,
// and a newline inside an SSE data line would end the line.
func appendCompact(dst, raw []byte) []byte {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case ' ', '\t', '\n', '\r':
		case '"':
			j := i + 1
			for j < len(raw) && raw[j] != '"' {
				if raw[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(raw) {
				j = len(raw) - 1
			}
			dst = append(dst, raw[i:j+1]...)
			i = j
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
