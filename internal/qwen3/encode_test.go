package qwen3

import (
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// loadTest loads the tokenizer scripts/qwen3-tokenizer.sh dumped, or skips.
// The model is loaded once per test binary: it takes about a second.
var loadTest = sync.OnceValues(func() (*Model, error) {
	return Load(os.Getenv("QWEN3_TOKENIZER_DIR"))
})

func testModel(tb testing.TB) *Model {
	tb.Helper()
	if os.Getenv("QWEN3_TOKENIZER_DIR") == "" {
		tb.Skip("QWEN3_TOKENIZER_DIR unset: run QWEN3_TOKENIZER_DIR=$(scripts/qwen3-tokenizer.sh)")
	}
	m, err := loadTest()
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestEncodeFragments(t *testing.T) {
	m := testModel(t)
	// trajectories.md §1 and §3.
	cases := []struct {
		text string
		want []int64
	}{
		{"<|im_start|>system\n", []int64{151644, 8948, 198}},
		{"<|im_start|>user\n", []int64{151644, 872, 198}},
		{"<|im_start|>assistant\n", []int64{151644, 77091, 198}},
		{"<|im_end|>\n", []int64{151645, 198}},
		{"\n", []int64{198}},
		{"\n\n", []int64{271}},
		{"\n\n\n", []int64{1406}},
		{"<think>\n\n</think>\n\n", []int64{151667, 271, 151668, 271}},
		{".\n", []int64{624}},
		{".\n\n", []int64{382}},
		{"Hi!", []int64{13048, 0}},
		{"You are a helpful assistant.", []int64{2610, 525, 264, 10950, 17847, 13}},
		{"What is 2+2?", []int64{3838, 374, 220, 17, 10, 17, 30}},
		{"<think>\nLet me think.\n</think>\n\nThe answer is 4.<|im_end|>",
			[]int64{151667, 198, 10061, 752, 1744, 624, 151668, 271, 785, 4226, 374, 220, 19, 13, 151645}},
		{"<think>\nI should search.\n</think>\n\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call><|im_end|>",
			[]int64{151667, 198, 40, 1265, 2711, 624, 151668, 271, 151657, 198, 4913, 606, 788, 330, 1836, 497, 330, 16370, 788, 5212, 1631, 788, 330, 87, 95642, 151658, 151645}},
		{"\n<|im_start|>user\n<tool_response>\nx is 42\n</tool_response><|im_end|>\n<|im_start|>assistant\n",
			[]int64{198, 151644, 872, 198, 151665, 198, 87, 374, 220, 19, 17, 198, 151666, 151645, 198, 151644, 77091, 198}},
		{"<think>\n\nI should search.\n\n</think>\n\n", []int64{151667, 271, 40, 1265, 2711, 382, 151668, 271}},
		{"Answer: 𓀀", []int64{16141, 25, 220, 124373, 222, 222}},
		{"Answer: \ufffd", []int64{16141, 25, 29333}},
		{"", []int64{}},
	}
	for _, c := range cases {
		if got := m.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
}

func TestDecodeTruncatedMultibyte(t *testing.T) {
	m := testModel(t)
	// §3.6b: a completion cut inside 𓀀 decodes to one U+FFFD, which
	// re-encodes differently: d = 2 inside R1.
	got := m.Decode([]int64{16141, 25, 220, 124373, 222})
	if got != "Answer: \ufffd" {
		t.Fatalf("Decode = %q, want %q", got, "Answer: \ufffd")
	}
	re := m.Encode(got)
	if want := []int64{16141, 25, 29333}; !slices.Equal(re, want) {
		t.Fatalf("re-encode = %v, want %v", re, want)
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	m := testModel(t)
	texts := []string{
		"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
		"héllo wörld — ünïcödé 中文字符 日本語 한국어 🙂👍🏽 𓀀",
		"  leading and trailing spaces   \n\t\ttabs\r\nCRLF\u00a0nbsp\u3000ideographic space",
		"code: func main() { fmt.Println(\"hi\") }\n\n\n    indented\n",
		"numbers 1234567890 ١٢٣ ½ Ⅻ and contractions it's I'M we'RE they've I'd we'll",
		"<tool_call>\n{\"name\": \"search\"}\n</tool_call><think></think><|endoftext|>",
	}
	for _, s := range texts {
		ids := m.Encode(s)
		if got := m.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	// NFC: a decomposed é comes back composed.
	if got := m.Decode(m.Encode("e\u0301")); got != "\u00e9" {
		t.Errorf("NFC: got %q", got)
	}
}

func TestLossyUTF8(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", "abc"},
		{"\xf0\x93\x80", "\ufffd"}, // truncated 4-byte: one maximal subpart
		{"\xf0\x93\x80a", "\ufffda"},
		{"\xe2\x82", "\ufffd"},
		{"\x80\x80", "\ufffd\ufffd"},           // lone continuations: one each
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"}, // surrogate: ED then A0 is out of range
		{"\xc0\xaf", "\ufffd\ufffd"},           // overlong lead
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"a\xffb", "a\ufffdb"},
	}
	for _, c := range cases {
		if got := lossyUTF8([]byte(c.in)); got != c.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "Hi!", "a  b\n\n c", "<|im_start|>user\nx<|im_end|>", "e\u0301 𓀀 's 'LL", "\r\n\t \u00a0"} {
		f.Add(s)
	}
	m := testModel(f)
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := m.Encode(s)
		// Decode(Encode(s)) is s up to NFC, which normalizes only the text
		// between added tokens; comparing piecewise would need the split, so
		// compare against NFC of s when s has no added token that NFC could
		// merge across, which holds since added tokens are ASCII.
		want := nfcOutsideAdded(m, s)
		if got := m.Decode(ids); got != want {
			t.Fatalf("Decode(Encode(%q)) = %q, want %q (ids %v)", s, got, want, ids)
		}
		if strings.ContainsRune(want, utf8.RuneError) && !strings.ContainsRune(s, utf8.RuneError) {
			t.Fatalf("U+FFFD appeared for %q", s)
		}
	})
}

// nfcOutsideAdded normalizes the text between added tokens, as Encode does.
func nfcOutsideAdded(m *Model, s string) string {
	var sb strings.Builder
	start := 0
	for i := 0; i < len(s); {
		if a, ok := m.addedAt(s, i); ok {
			sb.WriteString(norm.NFC.String(s[start:i]))
			sb.WriteString(a.content)
			i += len(a.content)
			start = i
			continue
		}
		i++
	}
	sb.WriteString(norm.NFC.String(s[start:]))
	return sb.String()
}

func BenchmarkEncode8KB(b *testing.B) {
	m := testModel(b)
	para := "The quick brown fox jumps over the lazy dog. It's 2+2=4, isn't it?\n" +
		"<tool_call>\n{\"name\": \"search\", \"arguments\": {\"query\": \"x\"}}\n</tool_call>\n" +
		"Unicode: héllo, 中文, 🙂.   Indented    code\n\n"
	text := strings.ToValidUTF8(strings.Repeat(para, 8192/len(para)+1)[:8192], "")
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		m.Encode(text)
	}
}
