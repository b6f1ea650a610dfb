// Package qwen3 is the Qwen3 tokenizer and chat template in pure Go, loaded
// from the files scripts/qwen3-tokenizer.sh dumps; the simulated vLLM's real
// mode.
//
// Encode and Decode reproduce Hugging Face tokenizers' byte-level BPE for
// Qwen2Tokenizer (NFC normalizer, the Qwen2 split pattern, GPT-2 byte map,
// added tokens matched atomically before normalization). Render reproduces
// what vLLM does before tokenizing a chat request: its message preprocessing
// and transformers' Jinja environment around the model's chat_template.
package qwen3

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// Model is a loaded Qwen3 tokenizer and chat template. It is safe for
// concurrent use.
type Model struct {
	vocab   map[string]int64 // byte-level token string -> id
	idBytes [][]byte         // id -> the bytes it decodes to (nil when unused)
	merges  map[uint64]merge // (left id, right id) -> merge
	byteID  [256]int64       // id of the single-byte token for each byte

	added      []addedToken
	addedFirst [256][]int // indexes into added, by first byte, longest first

	chatTemplate string
	specialVars  map[string]any // eos_token, pad_token, ... as transformers passes them
	tmplOnce     sync.Once
	tmpl         *exec.Template
	tmplErr      error
}

type merge struct {
	rank int32
	id   int64
}

type addedToken struct {
	id      int64
	content string
	special bool
}

type tokenizerFile struct {
	AddedTokens []struct {
		ID         int64  `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer *struct {
		Type string `json:"type"`
	} `json:"normalizer"`
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int64  `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
	} `json:"model"`
}

type configFile struct {
	ChatTemplate       string   `json:"chat_template"`
	EOSToken           any      `json:"eos_token"`
	PadToken           any      `json:"pad_token"`
	BOSToken           any      `json:"bos_token"`
	UnkToken           any      `json:"unk_token"`
	AdditionalSpecials []string `json:"additional_special_tokens"`
}

// Load reads tokenizer.json and tokenizer_config.json from dir.
func Load(dir string) (*Model, error) {
	var tf tokenizerFile
	if err := readJSON(filepath.Join(dir, "tokenizer.json"), &tf); err != nil {
		return nil, err
	}
	var cf configFile
	if err := readJSON(filepath.Join(dir, "tokenizer_config.json"), &cf); err != nil {
		return nil, err
	}
	if tf.Model.Type != "BPE" {
		return nil, fmt.Errorf("qwen3: tokenizer.json model type %q, want BPE", tf.Model.Type)
	}
	if tf.Normalizer != nil && tf.Normalizer.Type != "NFC" {
		return nil, fmt.Errorf("qwen3: tokenizer.json normalizer %q, want NFC", tf.Normalizer.Type)
	}
	if cf.ChatTemplate == "" {
		return nil, fmt.Errorf("qwen3: %s has no chat_template", filepath.Join(dir, "tokenizer_config.json"))
	}
	m := &Model{
		vocab:        tf.Model.Vocab,
		merges:       make(map[uint64]merge, len(tf.Model.Merges)),
		chatTemplate: cf.ChatTemplate,
	}
	maxID := int64(-1)
	for _, id := range m.vocab {
		maxID = max(maxID, id)
	}
	for _, a := range tf.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	b2u := byteToUnicode()
	u2b := make(map[rune]byte, 256)
	for b, r := range b2u {
		u2b[r] = byte(b)
	}
	m.idBytes = make([][]byte, maxID+1)
	for tok, id := range m.vocab {
		if id < 0 {
			return nil, fmt.Errorf("qwen3: negative id %d for %q", id, tok)
		}
		m.idBytes[id] = unmapBytes(tok, u2b)
	}
	for b := range 256 {
		id, ok := m.vocab[string(b2u[b])]
		if !ok {
			return nil, fmt.Errorf("qwen3: vocab lacks the byte token for 0x%02x", b)
		}
		m.byteID[b] = id
	}
	for rank, raw := range tf.Model.Merges {
		left, right, err := parseMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("qwen3: merge %d: %w", rank, err)
		}
		lid, lok := m.vocab[left]
		rid, rok := m.vocab[right]
		nid, nok := m.vocab[left+right]
		if !lok || !rok || !nok {
			return nil, fmt.Errorf("qwen3: merge %d (%q %q) names tokens outside the vocab", rank, left, right)
		}
		key := pairKey(lid, rid)
		if _, dup := m.merges[key]; !dup {
			m.merges[key] = merge{rank: int32(rank), id: nid}
		}
	}
	for _, a := range tf.AddedTokens {
		// Qwen's added tokens are all matched verbatim; the other options
		// would need handling this package does not have.
		if a.SingleWord || a.LStrip || a.RStrip || a.Normalized {
			return nil, fmt.Errorf("qwen3: added token %q uses single_word/lstrip/rstrip/normalized, unsupported", a.Content)
		}
		if a.Content == "" {
			continue
		}
		m.added = append(m.added, addedToken{id: a.ID, content: a.Content, special: a.Special})
		if a.ID >= 0 {
			m.idBytes[a.ID] = unmapBytes(a.Content, u2b)
		}
	}
	for i, a := range m.added {
		m.addedFirst[a.content[0]] = append(m.addedFirst[a.content[0]], i)
	}
	for b := range m.addedFirst {
		idx := m.addedFirst[b]
		sort.SliceStable(idx, func(i, j int) bool { return len(m.added[idx[i]].content) > len(m.added[idx[j]].content) })
	}
	m.specialVars = map[string]any{
		"eos_token": cf.EOSToken, "pad_token": cf.PadToken, "bos_token": cf.BOSToken, "unk_token": cf.UnkToken,
		"additional_special_tokens": cf.AdditionalSpecials,
	}
	return m, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("qwen3: %w", err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("qwen3: parse %s: %w", path, err)
	}
	return nil
}

// parseMerge accepts both merge encodings tokenizer.json has used: "a b"
// strings and ["a", "b"] pairs.
func parseMerge(raw json.RawMessage) (string, string, error) {
	var pair []string
	if err := json.Unmarshal(raw, &pair); err == nil {
		if len(pair) != 2 {
			return "", "", fmt.Errorf("want 2 parts, got %d", len(pair))
		}
		return pair[0], pair[1], nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", "", fmt.Errorf("neither a pair nor a string: %s", raw)
	}
	for i := 1; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], nil
		}
	}
	return "", "", fmt.Errorf("no space in %s", strconv.Quote(s))
}

// unmapBytes turns a byte-level token string back into bytes the way the
// ByteLevel decoder does: rune by rune through the inverse byte map, or the
// string's own bytes when some rune is outside it (added tokens).
func unmapBytes(tok string, u2b map[rune]byte) []byte {
	out := make([]byte, 0, len(tok))
	for _, r := range tok {
		b, ok := u2b[r]
		if !ok {
			return []byte(tok)
		}
		out = append(out, b)
	}
	return out
}

func pairKey(l, r int64) uint64 { return uint64(l)<<32 | uint64(uint32(r)) }

// byteToUnicode is GPT-2's reversible map from bytes to printable runes that
// byte-level BPE vocabularies are written in.
func byteToUnicode() [256]rune {
	var m [256]rune
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}
