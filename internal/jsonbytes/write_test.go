package jsonbytes

import "testing"

func TestAppendString(t *testing.T) {
	for _, tt := range []struct {
		in   string
		mode Escape
		want string
	}{
		{"a\"b\\c", 0, `"a\"b\\c"`},
		{"\n\r\t\b\f\x01\x7f", 0, `"\n\r\t\u0008\u000c\u0001` + "\x7f\""},
		{"\n\r\t\b\f\x01\x7f", ShortBF, `"\n\r\t\b\f\u0001` + "\x7f\""},
		{"\x7fé😀", ASCII | ShortBF, `"\u007f\u00e9\ud83d\ude00"`},
		{"a\xffb", 0, "\"a\xffb\""},
		{"a\xffb", ReplaceInvalid, "\"a\uFFFDb\""},
		{"a\xffb", ASCII, `"a\ufffdb"`},
		{"é😀", ReplaceInvalid, `"é😀"`},
		{"", 0, `""`},
	} {
		if got := string(AppendString(nil, tt.in, tt.mode)); got != tt.want {
			t.Errorf("AppendString(%q, %d) = %s, want %s", tt.in, tt.mode, got, tt.want)
		}
		if got := string(AppendStringBytes([]byte("x"), []byte(tt.in), tt.mode)); got != "x"+tt.want {
			t.Errorf("AppendStringBytes(%q, %d) = %s", tt.in, tt.mode, got)
		}
	}
}
