package qwen3

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// object is a JSON object that keeps its key order, as Python's dict does
// after json.loads; templates print tools and tool arguments with tojson,
// so the order decides tokens.
type object []member

type member struct {
	key string
	val any
}

func (o object) get(key string) (any, bool) {
	for _, m := range o {
		if m.key == key {
			return m.val, true
		}
	}
	return nil, false
}

// set replaces key's value in place, or appends it, as a dict assignment does.
func (o *object) set(key string, val any) {
	for i := range *o {
		if (*o)[i].key == key {
			(*o)[i].val = val
			return
		}
	}
	*o = append(*o, member{key, val})
}

func (o *object) del(key string) {
	for i := range *o {
		if (*o)[i].key == key {
			*o = append((*o)[:i], (*o)[i+1:]...)
			return
		}
	}
}

// bigInt is an integer literal outside int64, kept as its digits (Python
// ints are unbounded).
type bigInt string

// parseJSON decodes one JSON value the way Python's json.loads does:
// objects as ordered objects (a repeated key keeps its first position and
// last value), integer literals as int64 and other numbers as float64.
func parseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var o object
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				o.set(kt.(string), v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			if o == nil {
				o = object{}
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case json.Number:
		s := string(t)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return i, nil
			}
			return bigInt(s), nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !math.IsInf(f, 0) {
			return nil, fmt.Errorf("number %s: %w", s, err)
		}
		return f, nil
	default: // string, bool, nil
		return t, nil
	}
}

// toGonja turns parsed JSON into values the template engine indexes:
// objects become exec.Dict, whose pairs keep their order.
func toGonja(v any) any {
	switch t := v.(type) {
	case object:
		d := exec.Dict{Pairs: make([]*exec.Pair, 0, len(t))}
		for _, m := range t {
			d.Pairs = append(d.Pairs, &exec.Pair{Key: exec.AsValue(m.key), Value: exec.AsValue(toGonja(m.val))})
		}
		return d
	case []any:
		out := make(pyList, len(t))
		for i, e := range t {
			out[i] = toGonja(e)
		}
		return out
	default:
		return v
	}
}

// pyDumps writes v as Python's json.dumps(v, ensure_ascii=False) does, with
// the default ", " and ": " separators and keys in insertion order; v is a
// template value (exec.Dict, lists, scalars, or maps the template built).
func pyDumps(sb *strings.Builder, v any) error {
	switch t := v.(type) {
	case nil:
		sb.WriteString("null")
	case *exec.Value:
		if t == nil || t.IsNil() {
			sb.WriteString("null")
			return nil
		}
		return pyDumps(sb, t.Interface())
	case bool:
		if t {
			sb.WriteString("true")
		} else {
			sb.WriteString("false")
		}
	case string:
		pyString(sb, t)
	case int:
		sb.WriteString(strconv.Itoa(t))
	case int64:
		sb.WriteString(strconv.FormatInt(t, 10))
	case bigInt:
		sb.WriteString(string(t))
	case float64:
		sb.WriteString(pyFloat(t))
	case exec.Dict:
		return pyDumpsPairs(sb, t.Pairs)
	case *exec.Dict:
		return pyDumpsPairs(sb, t.Pairs)
	case pyList:
		return pyDumps(sb, []any(t))
	case []any:
		sb.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				sb.WriteString(", ")
			}
			if err := pyDumps(sb, e); err != nil {
				return err
			}
		}
		sb.WriteByte(']')
	case []*exec.Value:
		sb.WriteByte('[')
		for i, e := range t {
			if i > 0 {
				sb.WriteString(", ")
			}
			if err := pyDumps(sb, e); err != nil {
				return err
			}
		}
		sb.WriteByte(']')
	case map[string]any:
		// Only dicts the template itself built (namespace, dict()) land
		// here; Go maps have no order, so sort for determinism.
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		sb.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				sb.WriteString(", ")
			}
			pyString(sb, k)
			sb.WriteString(": ")
			if err := pyDumps(sb, t[k]); err != nil {
				return err
			}
		}
		sb.WriteByte('}')
	default:
		return fmt.Errorf("tojson: unsupported value of type %T", v)
	}
	return nil
}

func pyDumpsPairs(sb *strings.Builder, pairs []*exec.Pair) error {
	sb.WriteByte('{')
	for i, p := range pairs {
		if i > 0 {
			sb.WriteString(", ")
		}
		k := p.Key.Interface()
		ks, ok := k.(string)
		if !ok {
			// json.dumps stringifies int, float, bool and None keys.
			var kb strings.Builder
			if err := pyDumps(&kb, k); err != nil {
				return err
			}
			ks = kb.String()
		}
		pyString(sb, ks)
		sb.WriteString(": ")
		if err := pyDumps(sb, p.Value); err != nil {
			return err
		}
	}
	sb.WriteByte('}')
	return nil
}

// pyString escapes as json.dumps(ensure_ascii=False): only '"', '\\' and
// control characters below U+0020 (\n, \r, \t, \b, \f by name).
func pyString(sb *strings.Builder, s string) {
	sb.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			if c < utf8.RuneSelf {
				sb.WriteByte(c)
				i++
				continue
			}
			r, n := utf8.DecodeRuneInString(s[i:])
			sb.WriteRune(r)
			i += n
			continue
		}
		switch c {
		case '"':
			sb.WriteString(`\"`)
		case '\\':
			sb.WriteString(`\\`)
		case '\n':
			sb.WriteString(`\n`)
		case '\r':
			sb.WriteString(`\r`)
		case '\t':
			sb.WriteString(`\t`)
		case '\b':
			sb.WriteString(`\b`)
		case '\f':
			sb.WriteString(`\f`)
		default:
			fmt.Fprintf(sb, `\u%04x`, c)
		}
		i++
	}
	sb.WriteByte('"')
}

// pyFloat is Python's float repr: shortest round-trip digits, exponent form
// below 1e-4 and from 1e16 on, ".0" on integral values.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case math.IsNaN(f):
		return "NaN"
	}
	if f != 0 {
		e := strconv.FormatFloat(f, 'e', -1, 64)
		exp, _ := strconv.Atoi(e[strings.LastIndexByte(e, 'e')+1:])
		if exp < -4 || exp >= 16 {
			return e
		}
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}
