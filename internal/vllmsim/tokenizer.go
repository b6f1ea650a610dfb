package vllmsim

import (
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Token IDs shared with Qwen2.5's tokenizer, so that captures and tests read
// the same as against a real Qwen2.5 server.
const (
	tokEndOfText     int64 = 151643 // <|endoftext|>: completions EOS
	tokImStart       int64 = 151644 // <|im_start|>
	tokImEnd         int64 = 151645 // <|im_end|>: chat EOS
	tokToolCallStart int64 = 151657 // <tool_call>
	tokToolCallEnd   int64 = 151658 // </tool_call>
	// Qwen3 only (ordinary text in Qwen2.5):
	tokToolRespStart int64 = 151665 // <tool_response>
	tokToolRespEnd   int64 = 151666 // </tool_response>
	tokThinkStart    int64 = 151667 // <think>
	tokThinkEnd      int64 = 151668 // </think>

	// vocabSize is Qwen2.5's embedding size: token-ID prompts must stay below it.
	vocabSize = 151936

	// Ordinary pieces map into [pieceIDBase, pieceIDBase+pieceIDSpan), which
	// never reaches the special range above.
	pieceIDBase = 1000
	pieceIDSpan = 150000

	// maxPieces bounds the reverse map. Past it, new pieces get their
	// nominal ID unregistered (and may decode as another piece): this keeps
	// a long-running server's memory bounded and linear probing short.
	maxPieces = pieceIDSpan * 3 / 4
)

// specialToken is an added token recognised atomically in text.
type specialToken struct {
	text string
	id   int64
	// skipped tokens contribute "" to generated text (skip_special_tokens=True).
	// Qwen2.5 declares <tool_call> and </tool_call> as non-special added
	// tokens, so they do appear in output text — the hermes parser needs them.
	skipped bool
}

// qwen25Specials are the added tokens of Qwen2.5's tokenizer that the
// simulator knows.
var qwen25Specials = []specialToken{
	{"<|endoftext|>", tokEndOfText, true},
	{"<|im_start|>", tokImStart, true},
	{"<|im_end|>", tokImEnd, true},
	{"<tool_call>", tokToolCallStart, false},
	{"</tool_call>", tokToolCallEnd, false},
}

// qwen3Specials adds Qwen3's non-special added tokens: <think> and
// <tool_response> are single tokens there and survive skip_special_tokens.
var qwen3Specials = append(append([]specialToken(nil), qwen25Specials...),
	specialToken{"<tool_response>", tokToolRespStart, false},
	specialToken{"</tool_response>", tokToolRespEnd, false},
	specialToken{"<think>", tokThinkStart, false},
	specialToken{"</think>", tokThinkEnd, false},
)

// tokenizer is the simulator's deterministic, lossless tokenizer. It is not
// Qwen's BPE: an ordinary piece's ID is a hash of its text, so nothing has to
// be shipped, and every UTF-8 (indeed every byte) string round-trips.
type tokenizer struct {
	specials []specialToken // read-only after newTokenizer

	mu      sync.Mutex
	byPiece map[string]int64
	byID    map[int64]string
}

func newTokenizer(specials []specialToken) *tokenizer {
	t := &tokenizer{specials: specials, byPiece: map[string]int64{}, byID: map[int64]string{}}
	for _, st := range specials {
		t.byPiece[st.text] = st.id
		t.byID[st.id] = st.text
	}
	return t
}

// fnv1a32 is FNV-1a, 32 bit.
func fnv1a32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// pieceID is the nominal ID of an ordinary piece: 1000 + FNV-1a-32 % 150000.
func pieceID(piece string) int64 {
	return pieceIDBase + int64(fnv1a32(piece)%pieceIDSpan)
}

// encode tokenises s and records every piece so decode can invert it.
func (t *tokenizer) encode(s string) []int64 {
	pieces := splitPieces(s, t.specials)
	ids := make([]int64, len(pieces))
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, p := range pieces {
		ids[i] = t.idLocked(p)
	}
	return ids
}

// id returns the ID of a single piece (which must be one pre-token).
func (t *tokenizer) id(piece string) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.idLocked(piece)
}

func (t *tokenizer) idLocked(piece string) int64 {
	if id, ok := t.byPiece[piece]; ok {
		return id
	}
	id := pieceID(piece)
	if len(t.byPiece) >= maxPieces+len(t.specials) {
		return id
	}
	// Two pieces can hash to the same ID. The first one seen keeps it and the
	// later one takes the next free ID, so decode stays exact; the pieces of
	// the generator's vocabulary are registered first, in a fixed order, so
	// their IDs do not depend on traffic.
	for {
		if _, taken := t.byID[id]; !taken {
			break
		}
		id++
		if id >= pieceIDBase+pieceIDSpan {
			id = pieceIDBase
		}
	}
	t.byPiece[piece] = id
	t.byID[id] = piece
	return id
}

// piece returns the text of one ID and whether it is known. Unknown IDs
// (never produced or seen by this server) decode to "".
func (t *tokenizer) piece(id int64) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.byID[id]
	return p, ok
}

// decode concatenates the pieces of ids, special tokens included
// (skip_special_tokens=False, as /detokenize and vLLM's tests decode).
func (t *tokenizer) decode(ids []int64) string {
	var sb strings.Builder
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, id := range ids {
		sb.WriteString(t.byID[id])
	}
	return sb.String()
}

// outputPiece is the text one generated token contributes to the response
// text: special tokens are skipped when skipSpecial is set.
func (t *tokenizer) outputPiece(id int64, skipSpecial bool) string {
	if skipSpecial && t.skipped(id) {
		return ""
	}
	p, _ := t.piece(id)
	return p
}

// skipped reports a special token that skip_special_tokens drops.
func (t *tokenizer) skipped(id int64) bool {
	for _, st := range t.specials {
		if st.id == id && st.skipped {
			return true
		}
	}
	return false
}

// tokenString is the decoded string of one token as it appears in logprobs
// ("token" fields, completions "tokens"): the raw piece, special tokens
// spelled out, invalid UTF-8 replaced.
func (t *tokenizer) tokenString(id int64) string {
	p, _ := t.piece(id)
	return validUTF8(p)
}

// specialAt reports the special token starting at s[i:], if any.
func specialAt(s string, i int, specials []specialToken) (string, bool) {
	if s[i] != '<' {
		return "", false
	}
	for _, st := range specials {
		if strings.HasPrefix(s[i:], st.text) {
			return st.text, true
		}
	}
	return "", false
}

func isLetter(r rune) bool { return unicode.IsLetter(r) || unicode.IsMark(r) }

func isNewline(r rune) bool { return r == '\n' || r == '\r' }

// isSymbol reports a rune that forms a one-rune piece of its own: anything
// that is not a letter, digit or whitespace (punctuation, symbols, emoji,
// control characters).
func isSymbol(r rune) bool {
	return !isLetter(r) && !unicode.IsDigit(r) && !unicode.IsSpace(r)
}

// splitPieces is the pre-tokenizer. Pieces, in priority order:
//   - a special token (atomically);
//   - an optional single leading space and a run of letters (" hello");
//   - a run of up to three digits;
//   - one punctuation/symbol rune, optionally with one leading space (" (");
//   - a run of newlines;
//   - a run of other whitespace (its last space joins a following word or
//     symbol, like GPT-style pre-tokenizers);
//   - a single invalid UTF-8 byte.
//
// The pieces always concatenate back to s.
func splitPieces(s string, specials []specialToken) []string {
	var out []string
	i := 0
	for i < len(s) {
		if sp, ok := specialAt(s, i, specials); ok {
			out = append(out, sp)
			i += len(sp)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			out = append(out, s[i:i+1])
			i++
			continue
		}
		switch {
		case isNewline(r):
			j := i + size
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if !isNewline(r2) {
					break
				}
				j += sz
			}
			out = append(out, s[i:j])
			i = j
		case unicode.IsSpace(r):
			j := i + size
			for j < len(s) {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsSpace(r2) || isNewline(r2) {
					break
				}
				j += sz
			}
			// Leave a final ' ' for the next piece when it can take it.
			if s[j-1] == ' ' && attachesSpace(s, j, specials) {
				if j-1 > i {
					out = append(out, s[i:j-1])
				}
				end := pieceAfterSpace(s, j)
				out = append(out, s[j-1:end])
				i = end
			} else {
				out = append(out, s[i:j])
				i = j
			}
		case isLetter(r):
			j := letterRunEnd(s, i)
			out = append(out, s[i:j])
			i = j
		case unicode.IsDigit(r):
			j := i + size
			for n := 1; n < 3 && j < len(s); n++ {
				r2, sz := utf8.DecodeRuneInString(s[j:])
				if !unicode.IsDigit(r2) {
					break
				}
				j += sz
			}
			out = append(out, s[i:j])
			i = j
		default:
			out = append(out, s[i:i+size])
			i += size
		}
	}
	return out
}

// attachesSpace reports whether the text at s[j:] starts a piece that takes a
// leading space: a letter run or a symbol that does not begin a special token.
func attachesSpace(s string, j int, specials []specialToken) bool {
	if j >= len(s) {
		return false
	}
	if _, ok := specialAt(s, j, specials); ok {
		return false
	}
	r, size := utf8.DecodeRuneInString(s[j:])
	if r == utf8.RuneError && size == 1 {
		return false
	}
	return isLetter(r) || isSymbol(r)
}

// pieceAfterSpace returns the end of the piece " X..." whose space is at j-1.
func pieceAfterSpace(s string, j int) int {
	r, size := utf8.DecodeRuneInString(s[j:])
	if isLetter(r) {
		return letterRunEnd(s, j)
	}
	return j + size
}

func letterRunEnd(s string, i int) int {
	j := i
	for j < len(s) {
		r, sz := utf8.DecodeRuneInString(s[j:])
		if !isLetter(r) || (r == utf8.RuneError && sz == 1) {
			break
		}
		j += sz
	}
	return j
}
