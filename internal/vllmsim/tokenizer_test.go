package vllmsim

import (
	"hash/fnv"
	"slices"
	"strings"
	"testing"
)

func TestPieces(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"Hello world!", []string{"Hello", " world", "!"}},
		{"I love coding 🚀", []string{"I", " love", " coding", " 🚀"}},
		{"year 12345", []string{"year", " ", "123", "45"}},
		{"a  b", []string{"a", " ", " b"}},
		{"a\n\nb\r\n", []string{"a", "\n\n", "b", "\r\n"}},
		{"x\t y", []string{"x", "\t", " y"}},
		{"naïve café", []string{"naïve", " café"}},
		{" <|im_end|>", []string{" ", "<|im_end|>"}},
		{"<|im_start|>user\nhi<|im_end|>\n", []string{"<|im_start|>", "user", "\n", "hi", "<|im_end|>", "\n"}},
		{"<tool_call>\n{\"a\": 1}\n</tool_call>", []string{"<tool_call>", "\n", "{", "\"", "a", "\"", ":", " ", "1", "}", "\n", "</tool_call>"}},
		{"<|im_end", []string{"<", "|", "im", "_", "end"}},
		{"bad\xffbyte", []string{"bad", "\xff", "byte"}},
		{"", nil},
	} {
		if got := splitPieces(tc.in, qwen25Specials); !slices.Equal(got, tc.want) {
			t.Errorf("splitPieces(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTokenIDs(t *testing.T) {
	s := newSim(Options{})
	h := fnv.New32a()
	h.Write([]byte(" world"))
	want := int64(1000 + h.Sum32()%150000)
	if got := s.Tokenize("Hello world"); got[1] != want {
		t.Errorf("ID of %q = %d, want 1000 + FNV-1a-32 %% 150000 = %d", " world", got[1], want)
	}
	specials := s.Tokenize("<|endoftext|><|im_start|><|im_end|><tool_call></tool_call>")
	if !slices.Equal(specials, []int64{151643, 151644, 151645, 151657, 151658}) {
		t.Errorf("special IDs %v", specials)
	}
	for _, id := range s.Tokenize("The quick brown fox, jumps over 42 lazy dogs! ✨") {
		if id < 1000 || id >= 151000 {
			t.Errorf("ordinary piece ID %d outside [1000, 151000)", id)
		}
	}
	// Two servers agree on every ID (no dependence on traffic).
	other := newSim(Options{})
	text := "Some text, with punctuation; and numbers 2025."
	if !slices.Equal(s.Tokenize(text), other.Tokenize(text)) {
		t.Errorf("servers disagree")
	}
	if s.Detokenize([]int64{999999}) != "" {
		t.Errorf("unknown IDs must decode to the empty string")
	}
}

// TestIDCollisions: pieces with the same hash still decode exactly.
func TestIDCollisions(t *testing.T) {
	tok := newTokenizer(qwen25Specials)
	seen := map[int64]string{}
	var a, b string
	for i := 0; a == "" && i < 1_000_000; i++ {
		p := "w" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + itoa36(i)
		id := pieceID(p)
		if q, ok := seen[id]; ok && q != p {
			a, b = q, p
		}
		seen[id] = p
	}
	if a == "" {
		t.Skip("no collision found")
	}
	ids := tok.encode(a + " " + b)
	if ids[0] == ids[1] || tok.decode(ids) != a+" "+b {
		t.Errorf("collision of %q and %q not resolved: %v", a, b, ids)
	}
}

// TestPieceTableBound: a full table stops registering (no endless probing).
func TestPieceTableBound(t *testing.T) {
	tok := newTokenizer(qwen25Specials)
	for i := 0; len(tok.byPiece) < maxPieces+len(qwen25Specials); i++ {
		tok.id("p" + itoa36(i+1))
	}
	id := tok.id("zzzz-new")
	if id != pieceID("zzzz-new") || len(tok.byPiece) != maxPieces+len(qwen25Specials) {
		t.Errorf("piece registered past the bound")
	}
}

func itoa36(i int) string {
	const digits = "abcdefghijklmnopqrstuvwxyz"
	var out []byte
	for i > 0 {
		out = append(out, digits[i%26])
		i /= 26
	}
	return string(out)
}

func FuzzTokenizeRoundTrip(f *testing.F) {
	for _, seed := range []string{
		"", "Hello world!", "  leading and trailing  ", "<|im_start|>system\nYou are<|im_end|>\n",
		"emoji 🐱🚀✨ and 中文 and العربية", "tabs\tand\r\nnewlines\n\n", "digits 1234567890",
		"bad \xff\xfe bytes", "<tool_call>\n{\"name\": \"x\"}\n</tool_call>", "< |im_end|> <|im_end", "e\u0301\u0301",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		// A fresh server per input: one server only keeps maxPieces pieces.
		s := New(Options{})
		ids := s.Tokenize(text)
		if got := s.Detokenize(ids); got != text {
			t.Fatalf("Detokenize(Tokenize(%q)) = %q", text, got)
		}
		if q3 := New(Options{Template: TemplateQwen3}); q3.Detokenize(q3.Tokenize(text)) != text {
			t.Fatalf("qwen3: Detokenize(Tokenize(%q)) = %q", text, q3.Detokenize(q3.Tokenize(text)))
		}
		if got := strings.Join(splitPieces(text, qwen3Specials), ""); got != text {
			t.Fatalf("pieces of %q join to %q", text, got)
		}
		if !slices.Equal(s.Tokenize(text), ids) {
			t.Fatalf("tokenization of %q is not stable", text)
		}
	})
}

func TestRenderChat(t *testing.T) {
	s := newSim(Options{})
	got := s.RenderChat([]Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Hi"}}, false)
	if want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"; got != want {
		t.Errorf("got %q", got)
	}
	got = s.RenderChat(nil, true)
	if want := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("got %q", got)
	}
	got = renderQwen25(templateInput{
		messages:            []Message{{Role: "user", Content: "Hi"}},
		tools:               []toolDef{{name: "f", json: `{"type": "function", "function": {"name": "f"}}`}},
		addGenerationPrompt: true,
	})
	if !strings.HasPrefix(got, "<|im_start|>system\nYou are a helpful assistant.\n\n# Tools\n") ||
		!strings.Contains(got, "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"f\"}}\n</tools>") {
		t.Errorf("tools not rendered into the system message: %q", got)
	}
}
