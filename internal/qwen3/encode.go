package qwen3

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Encode tokenizes text as Hugging Face tokenizers does for Qwen3 with
// add_special_tokens=False (Qwen adds no BOS anyway): added tokens such as
// <|im_start|> and <think> are recognised atomically wherever they occur, the
// text between them is NFC-normalised, split by the Qwen2 pattern and
// byte-level BPE encoded. Invalid UTF-8 is read as U+FFFD, as a Python
// string decoded with errors="replace" would be.
func (m *Model) Encode(text string) []int64 {
	if !utf8.ValidString(text) {
		text = lossyUTF8([]byte(text))
	}
	ids := make([]int64, 0, len(text)/3+1)
	start := 0
	for i := 0; i < len(text); {
		if a, ok := m.addedAt(text, i); ok {
			ids = m.encodeSegment(ids, text[start:i])
			ids = append(ids, a.id)
			i += len(a.content)
			start = i
			continue
		}
		i++
	}
	return m.encodeSegment(ids, text[start:])
}

// addedAt returns the longest added token starting at text[i]: scanning left
// to right and taking the longest there is aho-corasick's LeftmostLongest,
// which tokenizers uses to split on added tokens.
func (m *Model) addedAt(text string, i int) (addedToken, bool) {
	for _, k := range m.addedFirst[text[i]] {
		if strings.HasPrefix(text[i:], m.added[k].content) {
			return m.added[k], true
		}
	}
	return addedToken{}, false
}

func (m *Model) encodeSegment(ids []int64, seg string) []int64 {
	if seg == "" {
		return ids
	}
	seg = norm.NFC.String(seg)
	var word []int64
	for len(seg) > 0 {
		n := splitQwen2(seg)
		word = word[:0]
		for i := 0; i < n; i++ {
			word = append(word, m.byteID[seg[i]])
		}
		ids = append(ids, m.bpe(word)...)
		seg = seg[n:]
	}
	return ids
}

// bpe merges a word, given as single-byte token ids, by merge rank: always
// the lowest-ranked adjacent pair, leftmost on ties, which is what the
// tokenizers heap (rank, position) order yields. The result aliases word.
func (m *Model) bpe(word []int64) []int64 {
	for len(word) > 1 {
		best, bestAt := merge{rank: -1}, -1
		for i := 0; i+1 < len(word); i++ {
			if mg, ok := m.merges[pairKey(word[i], word[i+1])]; ok && (bestAt < 0 || mg.rank < best.rank) {
				best, bestAt = mg, i
			}
		}
		if bestAt < 0 {
			break
		}
		// Merge every non-overlapping occurrence of the pair, left to right;
		// occurrences of the same pair share the rank, so this is the same
		// as merging them one at a time.
		l, r := word[bestAt], word[bestAt+1]
		out := word[:bestAt]
		for i := bestAt; i < len(word); {
			if i+1 < len(word) && word[i] == l && word[i+1] == r {
				out = append(out, best.id)
				i += 2
			} else {
				out = append(out, word[i])
				i++
			}
		}
		word = out
	}
	return word
}

// splitQwen2 returns the byte length of the first piece of s under the
// Qwen2 pre-tokenizer pattern
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// written out by hand because Go's regexp has no lookahead. Alternatives are
// tried in order, each with the backtracking the regex engine would do.
func splitQwen2(s string) int {
	r0, n0 := utf8.DecodeRuneInString(s)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r0 == '\'' {
		if n := contraction(s[n0:]); n > 0 {
			return n0 + n
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r0) {
		return n0 + letters(s[n0:])
	}
	if r0 != '\r' && r0 != '\n' && !isN(r0) {
		if n := letters(s[n0:]); n > 0 {
			return n0 + n
		}
	}
	// \p{N}
	if isN(r0) {
		return n0
	}
	// ' '?[^\s\p{L}\p{N}]+[\r\n]*
	{
		i := 0
		if r0 == ' ' {
			i = 1
		}
		if n := others(s[i:]); n > 0 {
			i += n
			for i < len(s) && (s[i] == '\r' || s[i] == '\n') {
				i++
			}
			return i
		}
	}
	// The remaining alternatives all start with whitespace; r0 is whitespace
	// here (letters, numbers and the rest were taken above).
	run, lastNL, lastStart := 0, -1, 0
	for run < len(s) {
		r, n := utf8.DecodeRuneInString(s[run:])
		if !unicode.IsSpace(r) {
			break
		}
		if r == '\r' || r == '\n' {
			lastNL = run + n
		}
		lastStart = run
		run += n
	}
	// \s*[\r\n]+ : backtracks to just after the run's last line break.
	if lastNL > 0 {
		return lastNL
	}
	// \s+(?!\S) : the whole run at the end of input, else all of it but the
	// last whitespace rune, when that leaves at least one.
	if run == len(s) {
		return run
	}
	if lastStart > 0 {
		return lastStart
	}
	// \s+
	if run > 0 {
		return run
	}
	// Unreachable for valid input; consume one rune so callers progress.
	return n0
}

func isL(r rune) bool { return unicode.IsLetter(r) }
func isN(r rune) bool { return unicode.IsNumber(r) }

// letters is the byte length of the run of letters at the start of s.
func letters(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if !isL(r) {
			break
		}
		i += n
	}
	return i
}

// others is the byte length of the run of runes that are neither
// whitespace, letters nor numbers at the start of s.
func others(s string) int {
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) || isL(r) || isN(r) {
			break
		}
		i += n
	}
	return i
}

// contraction matches s|t|re|ve|m|ll|d case-insensitively at the start of
// s (after the apostrophe), returning the byte length or 0.
func contraction(s string) int {
	r1, n1 := utf8.DecodeRuneInString(s)
	r2, n2 := utf8.DecodeRuneInString(s[n1:])
	switch foldRune(r1) {
	case 's', 't', 'm', 'd':
		return n1
	case 'r', 'v':
		if foldRune(r2) == 'e' {
			return n1 + n2
		}
	case 'l':
		if foldRune(r2) == 'l' {
			return n1 + n2
		}
	}
	return 0
}

// foldRune lower-cases r with Unicode simple case folding for the letters
// the contractions use (ſ, U+017F, folds to s).
func foldRune(r rune) rune {
	if r == 'ſ' {
		return 's'
	}
	return unicode.ToLower(r)
}

// Decode turns ids back into text with special tokens included
// (skip_special_tokens=False), joining their bytes and then reading them as
// UTF-8 with each maximal ill-formed subsequence replaced by U+FFFD, as
// Rust's from_utf8_lossy (and Python's errors="replace") do. Unknown ids are
// skipped, as tokenizers does.
func (m *Model) Decode(ids []int64) string {
	var buf []byte
	for _, id := range ids {
		if id >= 0 && id < int64(len(m.idBytes)) {
			buf = append(buf, m.idBytes[id]...)
		}
	}
	if utf8.Valid(buf) {
		return string(buf)
	}
	return lossyUTF8(buf)
}

// lossyUTF8 replaces each maximal subpart of an ill-formed UTF-8 sequence
// (Unicode §3.9, "U+FFFD substitution of maximal subparts") with one U+FFFD.
// Go's own conversions replace byte by byte, which differs for a truncated
// multi-byte character.
func lossyUTF8(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.Write(b[i : i+n])
			i += n
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += maximalSubpart(b[i:])
	}
	return sb.String()
}

// maximalSubpart is the length of the longest prefix of b that starts a
// well-formed UTF-8 sequence without completing one (at least 1).
func maximalSubpart(b []byte) int {
	var lo, hi byte = 0x80, 0xBF // range of the second byte
	need := 0
	switch c := b[0]; {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		c := b[n]
		if k > 0 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			break
		}
		n++
	}
	return n
}
