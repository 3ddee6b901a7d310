package probe

import (
	"encoding/hex"
	"testing"
)

func TestParseJARMAnswerDiffCases(t *testing.T) {
	cases := readJARMParserCases(t, "parser_diff_cases.jsonl.gz")
	if len(cases) != 24514 {
		t.Fatalf("parser_diff_cases: got %d cases, the spec promises 24514", len(cases))
	}
	fail := 0
	for i, c := range cases {
		d, err := hex.DecodeString(c.Hex)
		if err != nil {
			t.Fatalf("case %d: bad hex: %v", i, err)
		}
		if got := ParseJARMAnswer(d); got != c.Want {
			fail++
			if fail <= 20 {
				t.Errorf("case %d: ParseJARMAnswer(%.120s…) = %q, want %q", i, c.Hex, got, c.Want)
			}
		}
	}
	t.Logf("parser_diff_cases: %d/%d match the reference", len(cases)-fail, len(cases))
	if fail > 0 {
		t.Errorf("%d diff cases differ", fail)
	}
}

func TestParseJARMAnswerCraftedCases(t *testing.T) {
	cases := readJARMParserCases(t, "parser_crafted_cases.jsonl")
	if len(cases) == 0 {
		t.Fatal("parser_crafted_cases.jsonl is empty")
	}
	pass := 0
	for i, c := range cases {
		if got := ParseJARMAnswer(mustHex(t, c.Hex)); got != c.Want {
			t.Errorf("crafted case %d (%s): got %q, want %q", i, c.Hex, got, c.Want)
			continue
		}
		pass++
	}
	t.Logf("parser_crafted_cases: %d/%d match the reference", pass, len(cases))
}

// serverHello builds a TLS 1.2 ServerHello record with a 32-byte session id,
// the given cipher and raw extension block bytes (nil: no extensions field).
func serverHello(cipher uint16, exts []byte) []byte {
	body := []byte{0x03, 0x03}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 32)
	body = append(body, make([]byte, 32)...) // session id
	body = append(body, byte(cipher>>8), byte(cipher), 0x00)
	if exts != nil {
		body = append(body, byte(len(exts)>>8), byte(len(exts)))
		body = append(body, exts...)
	}
	hs := append([]byte{0x02, 0, byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{0x16, 0x03, 0x03, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

// alpnExt is an ALPN extension carrying one protocol.
func alpnExt(proto string) []byte {
	n := len(proto)
	return append([]byte{0x00, 0x10, 0, byte(n + 3), 0, byte(n + 1), byte(n)}, proto...)
}

func TestParseJARMAnswerTable(t *testing.T) {
	reneg := []byte{0xff, 0x01, 0x00, 0x01, 0x00}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"nil", nil, "|||"},
		{"alert", []byte{0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28}, "|||"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), "|||"},
		{"header only", []byte{0x16, 0x03, 0x03, 0x00, 0x10}, "|||"},
		{"not a server hello", []byte{0x16, 0x03, 0x03, 0x00, 0x04, 0x0b, 0, 0, 0}, "|||"},
		{"reneg only", serverHello(0xc02f, reneg), "c02f|0303||ff01"},
		{"alpn h2", serverHello(0x1301, append(alpnExt("h2"), reneg...)), "1301|0303|h2|0010-ff01"},
		{"empty ext block", serverHello(0xc02f, []byte{}), "c02f|0303||"},
		{"no ext field", serverHello(0xc02f, nil), "c02f|0303||"},
		{"alpn with pipe", serverHello(0xc02f, alpnExt("a|b")), "c02f|0303|a|b|0010"},
		{"truncated after cipher", serverHello(0xc02f, reneg)[:80], "c02f|0303||"},
		{"truncated mid cipher", serverHello(0xc02f, reneg)[:77], "c0|0303||"},
		{"truncated in extensions", serverHello(0xc02f, reneg)[:82], "|||"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseJARMAnswer(tc.in); got != tc.want {
				t.Errorf("ParseJARMAnswer(% x) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}
