// Package jsonbytes owns scanning and writing JSON as bytes without decoding
// into maps: the primitives tokentap's byte-level packages (tokenids,
// anthropic, responses, the vLLM simulator) walk bodies with. A value is
// addressed by offsets into the caller's buffer; nothing here allocates
// except where it appends to a caller's slice.
//
// Two families live side by side because the packages need both: strict
// validators (ValidValue, ValidString), which accept exactly RFC 8259 in
// valid UTF-8, and lenient skippers (StringEnd, SkipContainer, SkipTrusted),
// which only match quotes and brackets and are meant for text that was
// validated already or that a later, stricter reader will judge. The package
// imports only the standard library.
package jsonbytes

import (
	"bytes"
	"errors"
	"unicode/utf16"
	"unicode/utf8"
)

// SkipWS returns the offset of the first byte at or after i that is not
// JSON whitespace, or len(b).
func SkipWS(b []byte, i int) int {
	i, _ = Next(b, i)
	return i
}

// Next skips whitespace from b[i] and returns the offset of the next byte
// and the byte, or len(b) and 0 at the end.
func Next(b []byte, i int) (int, byte) {
	for i < len(b) {
		switch c := b[i]; c {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i, c
		}
	}
	return i, 0
}

// StringEnd finds the end of the string whose opening quote is b[i],
// leniently: a backslash escapes the byte after it and nothing else is
// checked. It returns the offset after the closing quote; ok is false (end
// is len(b)) when the string is not closed. Whether the contents hold
// escapes is one more bytes.IndexByte for the callers that need to know.
//
// The closing quote is the first quote preceded by an even run of
// backslashes, which is what stepping over backslash pairs one by one
// finds, at the cost of one vectorised scan per quote. Scanners on a hot
// path look for the common case first themselves (the next quote with no
// backslash before it): a call costs more than that check.
func StringEnd(b []byte, i int) (end int, ok bool) {
	start := i + 1
	for j := start; j <= len(b); {
		q := bytes.IndexByte(b[j:], '"')
		if q < 0 {
			break
		}
		j += q
		k := j
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1, true
		}
		j++ // an escaped quote
	}
	return len(b), false
}

// Errors of the lenient skippers; the offset they return says where.
var (
	ErrUnterminatedString = errors.New("unterminated string")
	ErrUnterminated       = errors.New("unterminated object or array")
	ErrTooDeep            = errors.New("nesting too deep")
)

// SkipContainer steps over the object or array whose opening bracket is
// b[i] by matching quotes and brackets only (which closing bracket ends
// which container is not checked). It returns the offset after the
// container, or the offset of the failure with ErrUnterminatedString or
// ErrUnterminated (both at len(b)) or ErrTooDeep (at the bracket that opens
// level maxDepth+1). It is iterative, so nesting costs no stack.
func SkipContainer(b []byte, i, maxDepth int) (int, error) {
	depth := 0
	for i < len(b) {
		switch b[i] {
		case '"':
			end, ok := StringEnd(b, i)
			if !ok {
				return end, ErrUnterminatedString
			}
			i = end
			continue
		case '{', '[':
			depth++
			if depth > maxDepth {
				return i, ErrTooDeep
			}
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
		i++
	}
	return i, ErrUnterminated
}

// SkipTrusted returns the end of the value starting at b[i] in a text that
// was validated already: strings and containers by StringEnd and
// SkipContainer, any other value up to the next delimiter or whitespace.
// On text that is not valid it still terminates, never reading past b.
func SkipTrusted(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		end, _ := StringEnd(b, i)
		return end
	case '{', '[':
		end, _ := SkipContainer(b, i, int(^uint(0)>>1))
		return end
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

// AppendUnescaped appends the decoded form of a JSON string's raw contents
// (what lies between its quotes) to dst. It accepts any bytes: an invalid
// escape, a lone or broken UTF-16 surrogate and invalid UTF-8 each become
// U+FFFD, as encoding/json decodes them, so on a valid string it gives
// exactly encoding/json's result.
func AppendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			// Copy the run up to the next escape at once.
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				j = len(raw)
			} else {
				j += i
			}
			dst = appendValidUTF8(dst, raw[i:j])
			i = j
			continue
		}
		if i+1 >= len(raw) {
			dst = utf8.AppendRune(dst, utf8.RuneError)
			break
		}
		switch e := raw[i+1]; e {
		case '"', '\\', '/':
			dst = append(dst, e)
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
			r, ok := Hex4(raw[i+2:])
			if !ok {
				dst = utf8.AppendRune(dst, utf8.RuneError)
				i += 2
				continue
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if i+1 < len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
					if r2, ok := Hex4(raw[i+2:]); ok {
						if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
							dst = utf8.AppendRune(dst, dec)
							i += 6
							continue
						}
					}
				}
				r = utf8.RuneError
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			dst = utf8.AppendRune(dst, utf8.RuneError)
		}
		i += 2
	}
	return dst
}

// appendValidUTF8 appends s with each invalid UTF-8 byte as U+FFFD; the
// common valid case is one check and one copy.
func appendValidUTF8(dst, s []byte) []byte {
	if utf8.Valid(s) {
		return append(dst, s...)
	}
	for len(s) > 0 {
		r, size := utf8.DecodeRune(s)
		dst = utf8.AppendRune(dst, r)
		s = s[size:]
	}
	return dst
}

// Hex4 reads the four hex digits at the start of b (what follows \u).
func Hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		h := unhex(c)
		if h < 0 {
			return 0, false
		}
		r = r<<4 | rune(h)
	}
	return r, true
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
