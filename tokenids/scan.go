package tokenids

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unsafe"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// scanner walks one JSON text in place. It never builds a value it was not
// asked for: callers visit the keys they care about and skip the rest, which
// keeps a 32k-token body from turning into a map of interfaces.
//
// Skipping is lenient (it balances brackets and strings without checking
// every token) because the bodies come from vLLM or go to vLLM, which
// validates them; what the scanner must guarantee is that it never panics,
// never loops, and reads valid JSON exactly as encoding/json would.
type scanner struct {
	buf []byte
	pos int
}

var errSyntax = errors.New("malformed JSON")

// maxDepth bounds nesting while skipping, so a hostile body cannot make the
// scanner do unbounded work per byte (skipping is iterative, not recursive).
const maxDepth = 10000

func (s *scanner) errorf(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, s.pos, fmt.Sprintf(format, args...))
}

// ws skips whitespace and returns the next byte, or 0 at the end.
func (s *scanner) ws() (c byte) {
	s.pos, c = jsonbytes.Next(s.buf, s.pos)
	return c
}

func (s *scanner) expect(c byte) error {
	if s.ws() != c {
		if s.pos >= len(s.buf) {
			return s.errorf("unexpected end, want %q", c)
		}
		return s.errorf("unexpected %q, want %q", s.buf[s.pos], c)
	}
	s.pos++
	return nil
}

// str reads a string and returns its raw contents (between the quotes) and
// whether they contain escapes.
func (s *scanner) str() (raw []byte, escaped bool, err error) {
	if err := s.expect('"'); err != nil {
		return nil, false, err
	}
	start := s.pos
	// Two vectorised scans beat a byte loop on the long strings (message
	// contents) bodies are made of; most strings have no escape, and for
	// them the scans are all there is.
	if q := bytes.IndexByte(s.buf[start:], '"'); q >= 0 && bytes.IndexByte(s.buf[start:start+q], '\\') < 0 {
		s.pos = start + q + 1
		return s.buf[start : start+q], false, nil
	}
	end, ok := jsonbytes.StringEnd(s.buf, start-1)
	s.pos = end
	if !ok {
		return nil, false, s.errorf("unterminated string")
	}
	return s.buf[start : end-1], true, nil
}

// isNull consumes a null literal if one is next.
func (s *scanner) isNull() bool {
	if s.ws() == 'n' && s.pos+4 <= len(s.buf) && string(s.buf[s.pos:s.pos+4]) == "null" {
		s.pos += 4
		return true
	}
	return false
}

func (s *scanner) boolean() (bool, error) {
	switch s.ws() {
	case 't':
		if s.pos+4 <= len(s.buf) && string(s.buf[s.pos:s.pos+4]) == "true" {
			s.pos += 4
			return true, nil
		}
	case 'f':
		if s.pos+5 <= len(s.buf) && string(s.buf[s.pos:s.pos+5]) == "false" {
			s.pos += 5
			return false, nil
		}
	}
	return false, s.errorf("want a boolean")
}

// number returns the raw bytes of the number at the current position.
func (s *scanner) number() ([]byte, error) {
	s.ws()
	start := s.pos
	for s.pos < len(s.buf) {
		if !isNumberByte(s.buf[s.pos]) {
			break
		}
		s.pos++
	}
	if s.pos == start {
		return nil, s.errorf("want a number")
	}
	return s.buf[start:s.pos], nil
}

// int64 reads an integer. JSON numbers with a fraction or exponent are
// accepted only when their value is integral (1.0, 1e3), as Python would.
func (s *scanner) int64() (int64, error) {
	raw, err := s.number()
	if err != nil {
		return 0, err
	}
	neg := raw[0] == '-'
	digits := raw
	if neg {
		digits = raw[1:]
	}
	if len(digits) > 0 && len(digits) <= 18 {
		var v int64
		for _, c := range digits {
			if c < '0' || c > '9' {
				return s.intSlow(raw)
			}
			v = v*10 + int64(c-'0')
		}
		if len(digits) > 1 && digits[0] == '0' {
			return 0, s.errorf("leading zero in %q", raw)
		}
		if neg {
			v = -v
		}
		return v, nil
	}
	return s.intSlow(raw)
}

func (s *scanner) intSlow(raw []byte) (int64, error) {
	if v, err := strconv.ParseInt(bytesString(raw), 10, 64); err == nil {
		return v, nil
	}
	f, err := strconv.ParseFloat(bytesString(raw), 64)
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, s.errorf("want an integer, got %q", truncateBytes(raw))
	}
	return int64(f), nil
}

func (s *scanner) float64() (float64, error) {
	raw, err := s.number()
	if err != nil {
		return 0, err
	}
	if f, ok := fastFloat(raw); ok {
		return f, nil
	}
	f, err := strconv.ParseFloat(bytesString(raw), 64)
	if err != nil {
		return 0, s.errorf("bad number %q", truncateBytes(raw))
	}
	return f, nil
}

// pow10 holds the powers of ten a float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// fastFloat parses the plain decimals logprobs are made of (-0.0123) without
// strconv: with at most 15 significant digits and 22 fraction digits, the
// mantissa and the power of ten are exact float64s, so one IEEE division is
// correctly rounded (Clinger's fast path). Other forms return ok=false.
func fastFloat(raw []byte) (float64, bool) {
	i, neg := 0, false
	if raw[0] == '-' {
		neg, i = true, 1
	}
	var mant uint64
	digits, frac, seenDot := 0, 0, false
	start := i
	for ; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c >= '0' && c <= '9':
			if mant == 0 && c == '0' {
				// Leading zeros are not significant.
			} else {
				digits++
			}
			mant = mant*10 + uint64(c-'0')
			if seenDot {
				frac++
			}
		case c == '.' && !seenDot && i > start:
			seenDot = true
		default:
			return 0, false
		}
	}
	if digits > 15 || frac > 22 || i == start || raw[len(raw)-1] == '.' ||
		(raw[start] == '0' && len(raw) > start+1 && raw[start+1] != '.') {
		return 0, false
	}
	f := float64(mant) / pow10[frac]
	if neg {
		f = -f
	}
	return f, true
}

// skip steps over one value of any kind.
func (s *scanner) skip() error {
	switch c := s.ws(); c {
	case '"':
		_, _, err := s.str()
		return err
	case '{', '[':
		return s.skipContainer()
	case 't', 'f':
		_, err := s.boolean()
		return err
	case 'n':
		if s.isNull() {
			return nil
		}
		return s.errorf("want null")
	case 0:
		return s.errorf("unexpected end, want a value")
	default:
		_, err := s.number()
		return err
	}
}

func (s *scanner) skipContainer() error {
	end, err := jsonbytes.SkipContainer(s.buf, s.pos, maxDepth)
	s.pos = end
	switch err {
	case nil:
		return nil
	case jsonbytes.ErrTooDeep:
		return s.errorf("nesting deeper than %d", maxDepth)
	case jsonbytes.ErrUnterminatedString:
		return s.errorf("unterminated string")
	default:
		return s.errorf("unterminated object or array")
	}
}

// object calls fn for each member of the object at the current position; fn
// must consume the member's value (parse it or call skip).
func (s *scanner) object(fn func(key []byte) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.ws() == '}' {
		s.pos++
		return nil
	}
	for {
		raw, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped {
			raw = jsonbytes.AppendUnescaped(nil, raw) // keys with escapes are rare: allocate only then
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := fn(raw); err != nil {
			return err
		}
		switch s.ws() {
		case ',':
			s.pos++
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or '}' after object member")
		}
	}
}

// array calls fn for each element of the array at the current position; fn
// must consume the element.
func (s *scanner) array(fn func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.ws() == ']' {
		s.pos++
		return nil
	}
	for {
		if err := fn(); err != nil {
			return err
		}
		switch s.ws() {
		case ',':
			s.pos++
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("want ',' or ']' after array element")
		}
	}
}

// ints appends the integer array at the current position to dst. null gives
// dst unchanged and present=false.
func (s *scanner) ints(dst []int64) (out []int64, present bool, err error) {
	if s.isNull() {
		return dst, false, nil
	}
	if err := s.expect('['); err != nil {
		return dst, false, err
	}
	if s.ws() == ']' {
		s.pos++
		if dst == nil {
			dst = []int64{} // present, even when empty
		}
		return dst, true, nil
	}
	if len(dst) == 0 {
		// Size the array once: counting commas is a vectorised scan, far
		// cheaper than growing a 32k-element slice step by step.
		if end := bytes.IndexByte(s.buf[s.pos:], ']'); end > 0 {
			dst = make([]int64, 0, bytes.Count(s.buf[s.pos:s.pos+end], []byte{','})+1)
		}
	}
	// Token arrays are most of a body's bytes: parse them in one pass over
	// the digits, falling back to the general reader for anything unusual.
	buf, i := s.buf, s.pos
	for {
		for i < len(buf) && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' || buf[i] == '\r') {
			i++
		}
		start := i
		neg := i < len(buf) && buf[i] == '-'
		if neg {
			i++
		}
		digits := i
		var v int64
		for i < len(buf) && buf[i]-'0' <= 9 {
			v = v*10 + int64(buf[i]-'0')
			i++
		}
		n := i - digits
		if n == 0 || n > 18 || (n > 1 && buf[digits] == '0') || (i < len(buf) && (buf[i] == '.' || buf[i] == 'e' || buf[i] == 'E')) {
			s.pos = start
			if v, err = s.int64(); err != nil {
				return dst, false, err
			}
			i = s.pos
		} else if neg {
			v = -v
		}
		dst = append(dst, v)
		for i < len(buf) && (buf[i] == ' ' || buf[i] == '\n' || buf[i] == '\t' || buf[i] == '\r') {
			i++
		}
		if i < len(buf) && buf[i] == ',' {
			i++
			continue
		}
		s.pos = i
		if i < len(buf) && buf[i] == ']' {
			s.pos++
			return dst, true, nil
		}
		return dst, false, s.errorf("want ',' or ']' in integer array")
	}
}

// text reads a string or null and appends its unescaped value to dst.
func (s *scanner) text(dst []byte) (out []byte, present bool, err error) {
	if s.isNull() {
		return dst, false, nil
	}
	raw, escaped, err := s.str()
	if err != nil {
		return dst, false, err
	}
	if escaped {
		return jsonbytes.AppendUnescaped(dst, raw), true, nil
	}
	return append(dst, raw...), true, nil
}

// endOfText checks that only whitespace follows the value just read.
func (s *scanner) endOfText() error {
	if s.ws() != 0 {
		return s.errorf("data after the JSON value")
	}
	return nil
}

// bytesString views b as a string without copying; the result must not
// outlive b or escape the call it is passed to.
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

func truncateBytes(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}
