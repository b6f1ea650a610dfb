package vllmsim

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// wordList is the vocabulary of the built-in generator: common English words.
var wordList = [...]string{
	"the", "of", "and", "to", "in", "is", "you", "that", "it", "he",
	"was", "for", "on", "are", "as", "with", "his", "they", "at", "be",
	"this", "have", "from", "or", "one", "had", "by", "word", "but", "not",
	"what", "all", "were", "we", "when", "your", "can", "said", "there", "use",
	"an", "each", "which", "she", "do", "how", "their", "if", "will", "up",
	"other", "about", "out", "many", "then", "them", "these", "so", "some", "her",
	"would", "make", "like", "him", "into", "time", "has", "look", "two", "more",
	"write", "go", "see", "number", "no", "way", "could", "people", "my", "than",
	"first", "water", "been", "call", "who", "oil", "its", "now", "find", "long",
	"down", "day", "did", "get", "come", "made", "may", "part", "over", "new",
	"sound", "take", "only", "little", "work", "know", "place", "year", "live", "me",
	"back", "give", "most", "very", "after", "thing", "our", "just", "name", "good",
	"sentence", "man", "think", "say", "great", "where", "help", "through", "much", "before",
	"line", "right", "too", "mean", "old", "any", "same", "tell", "boy", "follow",
	"came", "want", "show", "also", "around", "form", "three", "small", "set", "put",
	"end", "does", "another", "well", "large", "must", "big", "even", "such", "because",
	"turn", "here", "why", "ask", "went", "men", "read", "need", "land", "different",
	"home", "us", "move", "try", "kind", "hand", "picture", "again", "change", "off",
	"play", "spell", "air", "away", "animal", "house", "point", "page", "letter", "mother",
	"answer", "found", "study", "still", "learn", "should", "world", "high", "every", "near",
}

func capitalize(w string) string { return strings.ToUpper(w[:1]) + w[1:] }

// splitmix is a tiny, version-independent PRNG (SplitMix64). math/rand is not
// used so that outputs never change with the Go release.
type splitmix struct{ s uint64 }

func (r *splitmix) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (r *splitmix) intn(n int) int { return int(r.next() % uint64(n)) }

// fnv64 is an FNV-1a 64-bit hasher fed with little-endian integers.
type fnv64 uint64

func newFNV64() fnv64 { return 14695981039346656037 }

func (h *fnv64) bytes(p []byte) {
	for _, c := range p {
		*h ^= fnv64(c)
		*h *= 1099511628211
	}
}

func (h *fnv64) u64(v uint64) {
	var buf [8]byte
	binary.LittleEndian.PutUint64(buf[:], v)
	h.bytes(buf[:])
}

// mix hashes a few integers into one well-spread value.
func mix(vals ...uint64) uint64 {
	h := newFNV64()
	for _, v := range vals {
		h.u64(v)
	}
	r := splitmix{uint64(h)}
	return r.next()
}

// genParams are the engine-level parameters of one prompt's generation.
type genParams struct {
	promptIDs      []int64
	n              int
	maxTokens      int
	seed           *int64
	temperature    float64
	stop           []string
	stopTokenIDs   []int64
	includeStopStr bool
	ignoreEOS      bool
	minTokens      int
	skipSpecial    bool
	eos            int64 // the tokenizer EOS: finishing on it gives stop_reason null
	leadingSpace   bool  // completions continue the prompt: the first word gets a space
	// forced, when not nil, gives each sample's text (Policy output or a tool
	// call) instead of the built-in word generator.
	forced func(sample int) string
	// think makes the built-in generator open with a think block, as Qwen3
	// does in thinking mode.
	think bool
}

// stopReason is the engine's stop_reason: null, a stop string, or a token ID.
type stopReason struct {
	str   string
	id    int64
	isStr bool
	isID  bool
}

func (s stopReason) appendJSON(b []byte) []byte {
	switch {
	case s.isStr:
		return appendJSONString(b, s.str)
	case s.isID:
		return strconv.AppendInt(b, s.id, 10)
	}
	return append(b, "null"...)
}

// sampleOut is one finished sample (a CompletionOutput).
type sampleOut struct {
	seed   uint64 // per-sample hash, drives logprobs
	tokens []int64
	text   string // final output text
	// visible[k] is the byte length of text a streaming client has received
	// after token k; it lags the text while stop strings might still match.
	visible []int
	finish  string // "stop" or "length"
	reason  stopReason
}

// sampleSeed is the per-sample hash from which the output is derived.
func sampleSeed(p *genParams, sample int) uint64 {
	h := newFNV64()
	h.bytes([]byte("vllmsim/1"))
	h.u64(uint64(len(p.promptIDs)))
	for _, id := range p.promptIDs {
		h.u64(uint64(id))
	}
	h.u64(uint64(sample))
	if p.seed != nil {
		h.u64(1)
		h.u64(uint64(*p.seed))
	} else {
		h.u64(0)
	}
	h.u64(math.Float64bits(p.temperature))
	return uint64(h)
}

// wordSource produces the built-in generator's pieces: sentences of common
// words with an occasional comma, ending with a period at the natural length.
type wordSource struct {
	r             splitmix
	natural       int // pieces before EOS, final "." included
	count         int
	leadingSpace  bool
	sentenceStart bool
	sentenceLen   int
	lastComma     bool
}

func newWordSource(seed uint64, leadingSpace bool) *wordSource {
	// A completion continues the prompt mid-sentence; a chat answer starts one.
	ws := &wordSource{r: splitmix{seed}, leadingSpace: leadingSpace, sentenceStart: !leadingSpace}
	ws.natural = 5 + ws.r.intn(36) // 5..40 tokens, EOS excluded
	return ws
}

func (ws *wordSource) nextPiece() string {
	defer func() { ws.count++ }()
	remaining := ws.natural - ws.count
	if remaining == 1 || (remaining <= 0 && ws.sentenceLen >= 8 && !ws.lastComma) {
		ws.sentenceStart, ws.sentenceLen, ws.lastComma = true, 0, false
		return "."
	}
	if ws.count > 0 && !ws.sentenceStart && !ws.lastComma && ws.sentenceLen >= 2 && remaining > 2 {
		switch roll := ws.r.intn(12); {
		case roll == 0:
			ws.lastComma = true
			return ","
		case roll == 1 && ws.sentenceLen >= 5:
			ws.sentenceStart, ws.sentenceLen = true, 0
			return "."
		}
	}
	w := wordList[ws.r.intn(len(wordList))]
	if ws.sentenceStart {
		w = capitalize(w)
	}
	ws.sentenceStart, ws.lastComma = false, false
	ws.sentenceLen++
	if ws.count == 0 && !ws.leadingSpace {
		return w
	}
	return " " + w
}

// generate runs all n samples of one prompt.
func (s *Server) generate(p *genParams) []*sampleOut {
	outs := make([]*sampleOut, p.n)
	for i := range outs {
		outs[i] = s.runSample(p, i)
	}
	return outs
}

// isEOS reports the tokens that end generation: the tokenizer EOS and the
// generation config's other EOS (Qwen stops on both <|im_end|> and
// <|endoftext|>).
func isEOS(id int64) bool { return id == tokImEnd || id == tokEndOfText }

// runSample generates one sample, applying EOS, stop_token_ids, stop strings
// and max_tokens in vLLM's order, and records what streaming would have
// shown after each token.
func (s *Server) runSample(p *genParams, sample int) *sampleOut {
	out := &sampleOut{seed: sampleSeed(p, sample)}
	words := newWordSource(out.seed, p.leadingSpace)
	if p.forced != nil {
		// After a forced text, words only continue when EOS is masked
		// (ignore_eos, min_tokens): a new sentence, no natural end.
		words = newWordSource(mix(out.seed, 1), true)
		words.natural = 0
		words.sentenceStart = true
	}
	// queue holds IDs decided ahead: the forced text, the think block, the
	// rest of a generator piece that took several tokens.
	var queue []int64
	hasForced := p.forced != nil
	if hasForced {
		queue = s.encode(p.forced(sample))
	} else if p.think {
		queue = s.encode(thinkBlock(thinkText(out.seed)))
	}
	eosAllowed := func(n int) bool { return !p.ignoreEOS && n >= p.minTokens }
	wordToken := func() int64 {
		ids := s.pieceIDs(words.nextPiece())
		if len(ids) == 0 {
			return p.eos
		}
		queue = append(queue, ids[1:]...)
		return ids[0]
	}
	nextToken := func(n int) int64 {
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			if isEOS(id) && !eosAllowed(n) {
				continue // the sampler would not pick a masked EOS
			}
			return id
		}
		if hasForced || words.count >= words.natural {
			if eosAllowed(n) {
				return p.eos
			}
		}
		return wordToken()
	}

	// Stop strings are excluded from streamed text until they can no longer
	// match: vLLM's detokenizer holds back max(len(stop))-1 characters.
	holdBack := 0
	if !p.includeStopStr {
		for _, st := range p.stop {
			if n := utf8.RuneCountInString(st) - 1; n > holdBack {
				holdBack = n
			}
		}
	}
	var text strings.Builder
	dt := &detokenizer{s: s, skipSpecial: p.skipSpecial}
	emitted := 0
	for {
		n := len(out.tokens)
		id := nextToken(n)
		out.tokens = append(out.tokens, id)
		n++
		if isEOS(id) && !p.ignoreEOS {
			out.finish = "stop"
			if id != p.eos {
				out.reason = stopReason{id: id, isID: true}
			}
			break
		}
		if n > p.minTokens && containsID(p.stopTokenIDs, id) {
			out.finish = "stop"
			out.reason = stopReason{id: id, isID: true}
			if p.includeStopStr {
				text.WriteString(dt.add(id))
			}
			break
		}
		piece := dt.add(id)
		text.WriteString(piece)
		if len(p.stop) > 0 && n > p.minTokens {
			full := text.String()
			if st, cut, ok := checkStopStrings(full, utf8.RuneCountInString(piece), p.stop, p.includeStopStr); ok {
				if cut >= 0 {
					text.Reset()
					text.WriteString(full[:cut])
				}
				out.finish = "stop"
				out.reason = stopReason{str: st, isStr: true}
				break
			}
		}
		if n >= p.maxTokens {
			out.finish = "length"
			break
		}
		emitted = visiblePrefix(text.String(), holdBack, emitted)
		out.visible = append(out.visible, emitted)
	}
	// An incomplete character at the end (a sample cut inside it) is never
	// flushed: vLLM's incremental detokenizer emits nothing while the text
	// ends in U+FFFD, and nothing flushes it when the request finishes. Its
	// IDs are in token_ids all the same.
	out.text = text.String()
	out.visible = append(out.visible, len(out.text))
	return out
}

func containsID(ids []int64, id int64) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

// visiblePrefix returns the byte length of text visible to a streaming client
// when the last holdBack characters are withheld; it never shrinks.
func visiblePrefix(text string, holdBack, prev int) int {
	if holdBack == 0 {
		return len(text)
	}
	n := utf8.RuneCountInString(text) - holdBack
	if n <= 0 {
		return prev
	}
	b := runeOffset(text, n)
	if b < prev {
		return prev
	}
	return b
}

// runeOffset returns the byte offset of the n-th rune of s.
func runeOffset(s string, n int) int {
	if n <= 0 {
		return 0
	}
	i := 0
	for k := 0; k < n && i < len(s); k++ {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return i
}

// checkStopStrings is vLLM's check_stop_strings: look for each stop string
// (in request order) in the part of text that the newest characters could
// have completed. It returns the matched string and where to cut the text
// (-1: no cut), in bytes.
func checkStopStrings(text string, newChars int, stops []string, include bool) (string, int, bool) {
	total := utf8.RuneCountInString(text)
	for _, st := range stops {
		if st == "" {
			continue
		}
		off := 1 - newChars - utf8.RuneCountInString(st)
		start := off
		if off < 0 {
			start = max(total+off, 0)
		}
		bstart := runeOffset(text, start)
		i := strings.Index(text[bstart:], st)
		if i < 0 {
			continue
		}
		cut := bstart + i
		if include {
			cut += len(st)
			if cut >= len(text) {
				return st, -1, true
			}
		}
		return st, cut, true
	}
	return "", 0, false
}

// altLP is one entry of a position's logprob dict.
type altLP struct {
	id   int64
	lp   float64
	rank int
}

// lpFromUnits returns -units/10000, nudged so the value is never integral
// (Python would print -1.0 and a client could mistake it for an int).
func lpFromUnits(units uint64) float64 {
	if units%10000 == 0 {
		units++
	}
	return -float64(units) / 10000
}

// tokenLogprobs returns the logprob dict of one generated position: the
// sampled token first (it is always the rank-1 token here), then nAlt
// alternatives in rank order with decreasing logprobs.
func (s *Server) tokenLogprobs(seed uint64, pos int, id int64, nAlt int) []altLP {
	h := mix(seed, uint64(pos), uint64(id))
	units := 1 + h%15000
	out := []altLP{{id: id, lp: lpFromUnits(units), rank: 1}}
	if nAlt <= 0 {
		return out
	}
	for j, alt := range s.altTokens(h, nAlt, id) {
		units += 2500 + mix(h, uint64(j))%5000
		out = append(out, altLP{id: alt, lp: lpFromUnits(units), rank: j + 2})
	}
	return out
}

// promptLogprobs returns vLLM's prompt_logprobs for a prompt: null for the
// first token, then for each token a dict holding the prompt token (with its
// rank) followed by the top-k tokens.
func (s *Server) promptLogprobs(ids []int64, k int) [][]altLP {
	out := make([][]altLP, len(ids))
	for pos := 1; pos < len(ids); pos++ {
		id := ids[pos]
		h := mix(0x70726f6d7074, uint64(pos), uint64(id))
		rank := 1 + int(h%4)
		n := max(k, rank)
		alts := s.altTokens(h, n-1, id)
		lps := make([]float64, n+1)
		units := 1 + h%20000
		for r := 1; r <= n; r++ {
			lps[r] = lpFromUnits(units)
			units += 3000 + mix(h, uint64(r))%6000
		}
		entry := []altLP{{id: id, lp: lps[rank], rank: rank}}
		ai := 0
		for r := 1; r <= k; r++ {
			if r == rank {
				continue
			}
			entry = append(entry, altLP{id: alts[ai], lp: lps[r], rank: r})
			ai++
		}
		out[pos] = entry
	}
	return out
}

// altTokens picks n distinct word tokens different from exclude.
func (s *Server) altTokens(h uint64, n int, exclude int64) []int64 {
	r := splitmix{h}
	out := make([]int64, 0, n)
	for len(out) < n {
		id := s.pieceIDs(" " + wordList[r.intn(len(wordList))])[0]
		if id == exclude || containsID(out, id) {
			continue
		}
		out = append(out, id)
	}
	return out
}

// toolCall is one parsed hermes tool call.
type toolCall struct {
	id        string
	name      string
	arguments string
}

// parseHermes is the hermes tool parser's non-streaming extraction: every
// <tool_call>…</tool_call> block must hold {"name", "arguments"} JSON. The
// content is the text before the first block, or nil when that is empty.
func parseHermes(text string) (content *string, calls []toolCall, ok bool) {
	const start, end = "<tool_call>", "</tool_call>"
	first := strings.Index(text, start)
	if first < 0 {
		return nil, nil, false
	}
	rest := text[first:]
	for {
		i := strings.Index(rest, start)
		if i < 0 {
			break
		}
		j := strings.Index(rest[i:], end)
		if j < 0 {
			return nil, nil, false
		}
		body := strings.TrimSpace(rest[i+len(start) : i+j])
		v, err := parseOrdered([]byte(body))
		if err != nil || v.kind != 'o' {
			return nil, nil, false
		}
		name, args := v.get("name"), v.get("arguments")
		if name == nil || name.kind != 's' || args == nil {
			return nil, nil, false
		}
		calls = append(calls, toolCall{name: name.str, arguments: pyDumps(args)})
		rest = rest[i+j+len(end):]
	}
	if first > 0 {
		c := text[:first]
		content = &c
	}
	return content, calls, true
}

// toolCallText is what the simulated model writes to call a tool.
func toolCallText(name string) string {
	return "<tool_call>\n{\"name\": " + string(appendJSONString(nil, name)) + ", \"arguments\": {\"location\": \"Paris\"}}\n</tool_call>"
}

// thinkBlock wraps reasoning the way Qwen3 writes it.
func thinkBlock(reasoning string) string {
	return "<think>\n" + reasoning + "\n</think>\n\n"
}

// thinkText is the built-in generator's reasoning: one short sentence.
func thinkText(seed uint64) string {
	ws := newWordSource(mix(seed, 2), false)
	ws.natural = 4 + ws.r.intn(8)
	var sb strings.Builder
	for ws.count < ws.natural {
		sb.WriteString(ws.nextPiece())
	}
	return sb.String()
}
