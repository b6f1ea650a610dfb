package vllmsim

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// This file holds the byte-level JSON writers. vLLM serialises through two
// Python encoders that agree on everything this simulator emits:
//   - non-stream bodies: Starlette's JSONResponse, i.e.
//     json.dumps(obj, ensure_ascii=False, separators=(",", ":"));
//   - SSE chunks: pydantic-core's model_dump_json (compact, UTF-8 kept).
//
// Both escape only '"', '\\' and control characters, keep every other rune as
// raw UTF-8, and print floats with the shortest round-tripping repr. Bodies are
// built by appending to a []byte so that key order and null-vs-absent are
// decided explicitly at each call site, exactly like pydantic's declaration
// order and exclude_unset/exclude_none rules.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal the way Python's
// json.dumps(ensure_ascii=False) writes it. Invalid UTF-8 cannot exist in a
// Python str, so it is written as U+FFFD (what "errors=replace" decoding gives).
func appendJSONString(b []byte, s string) []byte {
	return jsonbytes.AppendString(b, s, jsonbytes.ShortBF|jsonbytes.ReplaceInvalid)
}

// appendPyFloat appends f as Python's repr(float) prints it (which is also what
// json.dumps and pydantic-core print for the magnitudes used here): the
// shortest round-tripping digits, always with a '.' or an exponent, so that a
// float never looks like an int (-9999.0, not -9999).
func appendPyFloat(b []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, 1):
		return append(b, "Infinity"...)
	case math.IsInf(f, -1):
		return append(b, "-Infinity"...)
	case f == 0:
		if math.Signbit(f) {
			return append(b, "-0.0"...)
		}
		return append(b, "0.0"...)
	}
	if a := math.Abs(f); a < 1e-4 || a >= 1e16 {
		// Python switches to exponent notation outside [1e-4, 1e16); Go's 'e'
		// format also pads the exponent to two digits ("1e-05").
		return strconv.AppendFloat(b, f, 'e', -1, 64)
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, 'f', -1, 64)
	if bytes.IndexByte(b[start:], '.') < 0 {
		b = append(b, '.', '0')
	}
	return b
}

// pyFloat is appendPyFloat as a string.
func pyFloat(f float64) string { return string(appendPyFloat(nil, f)) }

// appendInts appends a JSON array of integers.
func appendInts(b []byte, ids []int64) []byte {
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, ']')
}

// appendIntsOrNull appends ids, or null when present is false. Several vLLM
// fields are "list when requested, null otherwise".
func appendIntsOrNull(b []byte, ids []int64, present bool) []byte {
	if !present {
		return append(b, "null"...)
	}
	return appendInts(b, ids)
}

// appendBytesArray appends the UTF-8 bytes of s as a JSON array of ints, like
// list(s.encode("utf-8")) in Python.
func appendBytesArray(b []byte, s string) []byte {
	b = append(b, '[')
	for i := 0; i < len(s); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(s[i]), 10)
	}
	return append(b, ']')
}

// validUTF8 returns s with invalid bytes replaced by U+FFFD, which is what a
// Python str built with errors="replace" would hold.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// jv is an order-preserving JSON value. It exists because request bodies must
// sometimes be re-printed the way Python would print the dict it parsed (error
// messages, tool arguments), and Python dicts keep insertion order.
type jv struct {
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	keys  []string
	vals  []*jv
	items []*jv
	str   string // string value, or the number literal
	b     bool
}

// parseOrdered decodes one JSON value keeping object key order.
func parseOrdered(raw []byte) (*jv, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("extra data")
	}
	return v, nil
}

func decodeOrdered(dec *json.Decoder) (*jv, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := &jv{kind: 'o'}
			idx := map[string]int{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				child, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				// Python's json keeps the first position and the last value of
				// a duplicated key.
				if i, ok := idx[k]; ok {
					v.vals[i] = child
					continue
				}
				idx[k] = len(v.keys)
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, child)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return v, nil
		case '[':
			v := &jv{kind: 'a'}
			for dec.More() {
				child, err := decodeOrdered(dec)
				if err != nil {
					return nil, err
				}
				v.items = append(v.items, child)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return v, nil
		}
		return nil, errors.New("unexpected delimiter")
	case string:
		return &jv{kind: 's', str: t}, nil
	case json.Number:
		return &jv{kind: 'n', str: string(t)}, nil
	case bool:
		return &jv{kind: 'b', b: t}, nil
	case nil:
		return &jv{kind: 'z'}, nil
	}
	return nil, errors.New("unexpected token")
}

// get returns the value of key k of an object, or nil.
func (v *jv) get(k string) *jv {
	if v == nil || v.kind != 'o' {
		return nil
	}
	for i, key := range v.keys {
		if key == k {
			return v.vals[i]
		}
	}
	return nil
}

// numberIsFloat reports whether a JSON number literal would be parsed by
// Python's json module as a float rather than an int.
func numberIsFloat(lit string) bool { return strings.ContainsAny(lit, ".eE") }

// pyNumber renders a JSON number literal as Python prints the parsed value.
func pyNumber(lit string) string {
	if numberIsFloat(lit) {
		f, err := strconv.ParseFloat(lit, 64)
		if err != nil {
			return lit
		}
		return pyFloat(f)
	}
	if n, err := strconv.ParseInt(lit, 10, 64); err == nil {
		return strconv.FormatInt(n, 10)
	}
	return lit
}

// pyRepr renders v as Python's repr() of the value json.loads would produce
// ({'a': 1, 'b': None}). Used in pydantic-style validation messages.
func pyRepr(v *jv) string {
	var sb strings.Builder
	writePyRepr(&sb, v)
	return sb.String()
}

func writePyRepr(sb *strings.Builder, v *jv) {
	switch v.kind {
	case 'o':
		sb.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyStrRepr(k))
			sb.WriteString(": ")
			writePyRepr(sb, v.vals[i])
		}
		sb.WriteByte('}')
	case 'a':
		sb.WriteByte('[')
		for i, it := range v.items {
			if i > 0 {
				sb.WriteString(", ")
			}
			writePyRepr(sb, it)
		}
		sb.WriteByte(']')
	case 's':
		sb.WriteString(pyStrRepr(v.str))
	case 'n':
		sb.WriteString(pyNumber(v.str))
	case 'b':
		if v.b {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	default:
		sb.WriteString("None")
	}
}

// pyStrRepr renders s as Python's repr(str): single quotes unless the string
// contains a single quote and no double quote; backslash escapes for the quote,
// backslash, \t \n \r and non-printable runes.
func pyStrRepr(s string) string {
	s = validUTF8(s)
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var sb strings.Builder
	sb.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r == ' ' || (r >= 0x20 && r < 0x7f):
			sb.WriteRune(r)
		case unicode.IsPrint(r):
			sb.WriteRune(r)
		case r < 0x100:
			sb.WriteString(`\x`)
			sb.WriteByte(hexDigits[r>>4])
			sb.WriteByte(hexDigits[r&0xf])
		case r < 0x10000:
			sb.WriteString(`\u`)
			for shift := 12; shift >= 0; shift -= 4 {
				sb.WriteByte(hexDigits[(r>>uint(shift))&0xf])
			}
		default:
			sb.WriteString(`\U`)
			for shift := 28; shift >= 0; shift -= 4 {
				sb.WriteByte(hexDigits[(r>>uint(shift))&0xf])
			}
		}
	}
	sb.WriteByte(quote)
	return sb.String()
}

// pyDumps renders v as Python's json.dumps(value, ensure_ascii=False) with the
// default separators (", " and ": "). The hermes tool parser and the chat
// template's tojson filter both print JSON this way.
func pyDumps(v *jv) string {
	return string(appendPyDumps(nil, v))
}

func appendPyDumps(b []byte, v *jv) []byte { return appendJSONValue(b, v, true) }

// appendJSONValue writes v as JSON: with Python's json.dumps separators and
// number formatting when py is set, else compact with number literals as
// they were sent.
func appendJSONValue(b []byte, v *jv, py bool) []byte {
	itemSep, keySep := ",", ":"
	if py {
		itemSep, keySep = ", ", ": "
	}
	switch v.kind {
	case 'o':
		b = append(b, '{')
		for i, k := range v.keys {
			if i > 0 {
				b = append(b, itemSep...)
			}
			b = appendJSONString(b, k)
			b = append(b, keySep...)
			b = appendJSONValue(b, v.vals[i], py)
		}
		return append(b, '}')
	case 'a':
		b = append(b, '[')
		for i, it := range v.items {
			if i > 0 {
				b = append(b, itemSep...)
			}
			b = appendJSONValue(b, it, py)
		}
		return append(b, ']')
	case 's':
		return appendJSONString(b, v.str)
	case 'n':
		if py {
			return append(b, pyNumber(v.str)...)
		}
		return append(b, v.str...)
	case 'b':
		return strconv.AppendBool(b, v.b)
	}
	return append(b, "null"...)
}

// pyTruthy mirrors Python's bool() of a parsed JSON value; vLLM's "before"
// model validators test raw request fields this way (data.get("stream")).
func pyTruthy(v *jv) bool {
	if v == nil {
		return false
	}
	switch v.kind {
	case 'o':
		return len(v.keys) > 0
	case 'a':
		return len(v.items) > 0
	case 's':
		return v.str != ""
	case 'n':
		f, err := strconv.ParseFloat(v.str, 64)
		return err != nil || f != 0
	case 'b':
		return v.b
	}
	return false
}
