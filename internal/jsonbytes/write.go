package jsonbytes

import (
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// Escape says how AppendString writes what is not plain printable ASCII.
// Every mode escapes the quote, the backslash, \n, \r, \t and the other
// control characters (as \u00XX); the encoders tokentap imitates differ in
// the rest, and each caller names the one it imitates.
type Escape uint8

const (
	// ShortBF writes \b and \f in their short forms, as Python's json.dumps
	// does; without it they are \u0008 and \u000c (which decode the same).
	ShortBF Escape = 1 << iota
	// ReplaceInvalid writes each invalid UTF-8 byte as U+FFFD, so that the
	// output is valid UTF-8 whatever s was; without it the bytes are copied.
	ReplaceInvalid
	// ASCII writes everything above U+007E (DEL included) as \uXXXX, a
	// surrogate pair beyond the BMP, and invalid UTF-8 as \ufffd: Python's
	// ensure_ascii=True, json.dumps' default.
	ASCII
)

const hexDigits = "0123456789abcdef"

// short maps the bytes that have a two-character escape to the letter
// after the backslash.
var short = [256]byte{'"': '"', '\\': '\\', '\n': 'n', '\r': 'r', '\t': 't', '\b': 'b', '\f': 'f'}

// AppendString appends s to dst as a JSON string literal, escaped as mode
// says. Runs of plain bytes are copied at once.
func AppendString(dst []byte, s string, mode Escape) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] && (c != 0x7f || mode&ASCII == 0) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			if e := short[c]; e != 0 && (mode&ShortBF != 0 || (e != 'b' && e != 'f')) {
				dst = append(dst, '\\', e)
			} else {
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		if mode&(ASCII|ReplaceInvalid) == 0 {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if mode&ASCII == 0 {
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, s[start:i]...)
				dst = append(dst, "\uFFFD"...)
				i++
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

// AppendStringBytes is AppendString for text held in a byte slice, without
// copying it into a string first.
func AppendStringBytes(dst, s []byte, mode Escape) []byte {
	return AppendString(dst, unsafe.String(unsafe.SliceData(s), len(s)), mode)
}

func appendU4(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}
