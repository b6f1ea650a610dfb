package responses

import (
	"bytes"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// wellFormed reports whether b is exactly one JSON text in valid UTF-8 (what
// json.Valid and utf8.Valid together accept; FuzzWellFormed holds it to
// that). Every input is checked with it before it is scanned, so the
// scanner below can be lenient, and every byte copied from an input into an
// output is known to be valid JSON: the translator can only write
// well-formed JSON. jsonbytes.Valid is a loop over the bytes with the
// nesting kept as bits, several times faster than json.Valid on stream
// chunks.
func wellFormed(b []byte) bool {
	const maxDepth = 10000 // encoding/json's limit
	return jsonbytes.Valid(b, maxDepth) == nil
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
func (s *scanner) ws() (c byte) {
	s.i, c = jsonbytes.Next(s.b, s.i)
	return c
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
	start := s.i + 1
	end, ok := jsonbytes.StringEnd(s.b, s.i)
	if s.i = end; !ok || start > end {
		raw = s.b[min(start, end):]
	} else {
		raw = s.b[start : end-1]
	}
	return raw, bytes.IndexByte(raw, '\\') >= 0
}

// value skips the value at the cursor and returns its raw bytes.
func (s *scanner) value() []byte {
	s.ws()
	start := s.i
	s.i = jsonbytes.SkipTrusted(s.b, s.i)
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
func unescape(dst, raw []byte) []byte { return jsonbytes.AppendUnescaped(dst, raw) }

// appendQuoted appends s as a JSON string (\b and \f as \u0008 and \u000c,
// as this package always wrote them). Invalid UTF-8 becomes U+FFFD so the
// output is always valid.
func appendQuoted(dst, s []byte) []byte {
	return jsonbytes.AppendStringBytes(dst, s, jsonbytes.ReplaceInvalid)
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

// pick reads the object raw and stores in *dst[j] the raw value of its
// member named keys[j]; a later member of the same name wins, as in a
// Python dict. Other members are skipped and the entries of dst whose key
// is absent are left as they were.
func pick(raw []byte, keys []string, dst ...*[]byte) {
	s := scanner{b: raw}
	s.enter('{')
	for s.more('}') {
		k := s.key()
		v := s.value()
		for j, want := range keys {
			if string(k) == want {
				*dst[j] = v
				break
			}
		}
	}
}
