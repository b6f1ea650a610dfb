package tokenids

import (
	"bytes"

	"github.com/tokentap/tokentap/internal/jsonbytes"
)

// StreamStripper removes tokentap's injected fields from an answer too
// large to hold whole (a JSON body past the read bound, an SSE event past
// the event bound): it is fed the answer's JSON in pieces as they arrive
// and hands each piece on at once, with the same values reset to null as
// ParseResponse would reset, holding nothing across pieces but its parse
// state. It extracts nothing.
//
// Input that is not JSON is handed on verbatim from the first byte that
// breaks the grammar (the agent will find it unreadable as well).
type StreamStripper struct {
	strip  Strip
	stack  []stripFrame
	state  stripState
	key    [maxRawKey]byte
	keyLen int  // bytes of the key being read; past len(key) it matches nothing
	esc    bool // the previous byte of a string was a backslash
	depth  int  // nesting inside a skipped value
	inStr  bool // a skipped value's string is open
}

type stripState uint8

const (
	stValue     stripState = iota // a value comes next
	stKey                         // a key or '}' comes next
	stKeyString                   // inside a key
	stColon                       // ':' comes next
	stAfter                       // ',' or a closer comes next
	stString                      // inside a string value
	stScalar                      // inside a number or literal
	stSkip                        // inside a value replaced by null
	stCopy                        // inside a container none of whose members were injected
	stVerbatim                    // past the top-level value, or not JSON
)

// stripFrame is one open container: what it is, and for objects the key of
// the member being read.
type stripFrame struct {
	object bool
	class  containerClass
	member memberKey
}

// containerClass says where a container sits in an answer, which is what
// decides which of its members were injected.
type containerClass uint8

const (
	classOther   containerClass = iota
	classRoot                   // the answer object
	classChoices                // its "choices" array
	classChoice                 // one element of it
)

type memberKey uint8

const (
	keyOther memberKey = iota
	keyChoices
	keyPromptTokenIDs
	keyTokenIDs
	keyLogprobs
)

// maxRawKey bounds the raw bytes of a key worth matching: the longest key
// of ours, every byte escaped as \uXXXX.
const maxRawKey = 6 * len("prompt_token_ids")

// NewStreamStripper returns a stripper of the fields strip names.
func NewStreamStripper(strip Strip) *StreamStripper {
	return &StreamStripper{strip: strip}
}

// Append appends to dst the next piece of the answer, stripped, and returns
// the extended slice.
func (s *StreamStripper) Append(dst, piece []byte) []byte {
	if !s.strip.Any() || s.state == stVerbatim {
		return append(dst, piece...)
	}
	for i := 0; i < len(piece); i++ {
		c := piece[i]
		switch s.state {
		case stValue:
			if isSpace(c) {
				dst = append(dst, c)
				continue
			}
			dst = s.value(dst, c)
		case stKey:
			switch {
			case isSpace(c):
			case c == '"':
				s.state, s.keyLen, s.esc = stKeyString, 0, false
			case c == '}':
				s.pop()
			default:
				s.state = stVerbatim
			}
			dst = append(dst, c)
		case stKeyString:
			dst = append(dst, c)
			if s.closesString(c) {
				s.top().member = s.classify()
				s.state = stColon
				continue
			}
			if s.keyLen < len(s.key) {
				s.key[s.keyLen] = c
			}
			s.keyLen++
		case stColon:
			switch {
			case isSpace(c):
			case c == ':':
				s.state = stValue
			default:
				s.state = stVerbatim
			}
			dst = append(dst, c)
		case stAfter:
			dst = s.after(dst, c)
		case stString:
			dst = append(dst, c)
			if s.closesString(c) {
				s.state = stAfter
			}
		case stScalar:
			if isSpace(c) || c == ',' || c == '}' || c == ']' {
				dst = s.after(dst, c)
				continue
			}
			dst = append(dst, c)
		case stSkip:
			s.skip(c)
		case stCopy:
			dst = append(dst, c)
			s.skip(c)
		case stVerbatim:
			return append(dst, piece[i:]...)
		}
	}
	return dst
}

// value handles the first byte of a value.
func (s *StreamStripper) value(dst []byte, c byte) []byte {
	if len(s.stack) > 0 {
		top := s.top()
		if !top.object && c == ']' {
			s.pop() // an empty array
			return append(dst, c)
		}
		if top.object && s.injected(top, c) {
			s.state, s.depth, s.inStr, s.esc = stSkip, 1, false, false
			return append(dst, "null"...)
		}
	}
	switch {
	case c == '{' || c == '[':
		class := s.childClass(c)
		if class == classOther {
			// Nothing in it was injected: copy it through, minding only
			// strings and nesting, as ParseResponse skips it.
			s.state, s.depth, s.inStr, s.esc = stCopy, 1, false, false
			return append(dst, c)
		}
		s.stack = append(s.stack, stripFrame{object: c == '{', class: class})
		s.state = stValue
		if c == '{' {
			s.state = stKey
		}
	case c == '"':
		s.state, s.esc = stString, false
	case isNumberByte(c) || c == 't' || c == 'f' || c == 'n':
		// Any byte a number can hold starts a scalar, as for the scanner
		// that skips the values ParseResponse does not read.
		s.state = stScalar
	default:
		s.state = stVerbatim
	}
	return append(dst, c)
}

// after handles a byte that follows a value.
func (s *StreamStripper) after(dst []byte, c byte) []byte {
	dst = append(dst, c)
	switch {
	case isSpace(c):
		s.state = stAfter
	case len(s.stack) == 0:
		s.state = stVerbatim // past the top-level value
	case c == ',':
		s.state = stValue
		if s.top().object {
			s.state = stKey
		}
	case c == '}' && s.top().object, c == ']' && !s.top().object:
		s.pop()
	default:
		s.state = stVerbatim
	}
	return dst
}

// closesString follows a byte inside a string and reports whether it is
// the closing quote.
func (s *StreamStripper) closesString(c byte) bool {
	switch {
	case s.esc:
		s.esc = false
	case c == '\\':
		s.esc = true
	case c == '"':
		return true
	}
	return false
}

// skip follows a byte of a skipped or copied container, ending it at its
// closer.
func (s *StreamStripper) skip(c byte) {
	switch {
	case s.inStr:
		s.inStr = !s.closesString(c)
	case c == '"':
		s.inStr = true
	case c == '{' || c == '[':
		s.depth++
	case c == '}' || c == ']':
		s.depth--
		if s.depth == 0 {
			s.state = stAfter
		}
	}
}

// injected says whether the value starting with c, of the member being
// read in top, is one tokentap added: the same values ParseResponse resets
// (arrays of IDs, logprobs objects).
func (s *StreamStripper) injected(top *stripFrame, c byte) bool {
	switch {
	case top.member == keyPromptTokenIDs && (top.class == classRoot || top.class == classChoice):
		return s.strip.TokenIDs && c == '['
	case top.member == keyTokenIDs && top.class == classChoice:
		return s.strip.TokenIDs && c == '['
	case top.member == keyLogprobs && top.class == classChoice:
		return s.strip.Logprobs && c == '{'
	}
	return false
}

func (s *StreamStripper) childClass(c byte) containerClass {
	if len(s.stack) == 0 {
		if c == '{' {
			return classRoot
		}
		return classOther
	}
	top := s.top()
	switch {
	case top.object && top.class == classRoot && top.member == keyChoices && c == '[':
		return classChoices
	case !top.object && top.class == classChoices && c == '{':
		return classChoice
	}
	return classOther
}

func (s *StreamStripper) classify() memberKey {
	if s.keyLen > len(s.key) {
		return keyOther
	}
	key := s.key[:s.keyLen]
	if bytes.IndexByte(key, '\\') >= 0 {
		key = jsonbytes.AppendUnescaped(nil, key) // keys with escapes are rare: allocate only then
	}
	switch string(key) {
	case "choices":
		return keyChoices
	case "prompt_token_ids":
		return keyPromptTokenIDs
	case "token_ids":
		return keyTokenIDs
	case "logprobs":
		return keyLogprobs
	}
	return keyOther
}

func (s *StreamStripper) top() *stripFrame { return &s.stack[len(s.stack)-1] }

func (s *StreamStripper) pop() {
	s.stack = s.stack[:len(s.stack)-1]
	s.state = stAfter
}

// isNumberByte is the scanner's notion of a byte of a number.
func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
