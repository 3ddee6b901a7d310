package probe

import (
	"errors"
	"strings"
	"testing"

	"github.com/stackprint/stackprint"
)

func TestJARMHash(t *testing.T) {
	ten := func(p string) string { return strings.TrimSuffix(strings.Repeat(p+",", 10), ",") }
	tests := []struct {
		name, raw, want string
	}{
		{"all empty", jarmRawEmpty, stackprint.ZeroJARM},
		// docs/JARM.md §2.3, rows A-D.
		{"row A", "0033|0303||ff01-0001-0023-0017,009d|0303||ff01-0001-0023-0017,009f|0303||ff01-0001-0023-0017,c013|0303||ff01-0001-000b-0023-0017,c013|0303||ff01-0001-000b-0023-0017,|||,1302|0303||002b-0033,1303|0303||002b-0033,|||,|||", "07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d"},
		{"row B", "0033|0303||ff01-0001-0023-0017,009d|0303||ff01-0001-0023-0017,009f|0303||ff01-0001-0023-0017,c013|0303||ff01-0001-000b-0023-0017,c013|0303||ff01-0001-000b-0023-0017,|||,0033|0303||ff01-0001-0023-0017,009d|0303||ff01-0001-0023-0017,0033|0303||ff01-0001-0023-0017,c013|0303||ff01-0001-000b-0023-0017", "07d14d16d21d21d00007d14d07d21d0ae59125bcd90b8876b50928af8f6cd4"},
		{"row C", "cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,|||,cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,|||,1303|0303||002b-0033,1303|0303||002b-0033,|||,1303|0303||002b-0033", "3fd3fd0003fd3fd00043d43d00043d3bef2bf79cd6719851e8198c1e8f9a14"},
		{"row D", "cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,|||,cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,|||,cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000,cca8|0303||0023-ff01-0017-000b-0000", "3fd3fd0003fd3fd0003fd3fd3fd3fdc354372cf4e0f164e5808b722db3fafd"},
		// Only cipher|version: the suffix is SHA-256("").
		{"no alpn no ext", ten("c02f|0303||"), strings.Repeat("29d", 10) + "e3b0c44298fc1c149afbf4c8996fb924"},
		{"unknown cipher", "abcd|0303||ff01" + strings.Repeat(",|||", 9), "46d" + strings.Repeat("000", 9) + "*"},
		{"truncated cipher", "c0|0303||" + strings.Repeat(",|||", 9), "46d" + strings.Repeat("000", 9) + "e3b0c44298fc1c149afbf4c8996fb924"},
		{"versions a-f", "c02f|0300||,c02f|0301||,c02f|0302||,c02f|0303||,c02f|0304||,c02f|0305||,|||,|||,|||,|||", "29a29b29c29d29e29f000000000000e3b0c44298fc1c149afbf4c8996fb924"},
		{"first 13xx and last list entries", "0004|0303||,1305|0303||" + strings.Repeat(",|||", 8), "01d45d" + strings.Repeat("000", 8) + "e3b0c44298fc1c149afbf4c8996fb924"},
		// Python's int() takes any Unicode decimal digit: ARABIC-INDIC THREE.
		{"unicode digit", "c02f|030\u0663||" + strings.Repeat(",|||", 9), "29d" + strings.Repeat("000", 9) + "e3b0c44298fc1c149afbf4c8996fb924"},
		// Fewer pieces still hash, as in jarm.py.
		{"two pieces", "|||,|||", "000000e3b0c44298fc1c149afbf4c8996fb924"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := JARMHash(tc.raw)
			if err != nil {
				t.Fatalf("JARMHash: %v", err)
			}
			if prefix, ok := strings.CutSuffix(tc.want, "*"); ok {
				if !strings.HasPrefix(got, prefix) || len(got) != 62 {
					t.Errorf("JARMHash(%q) = %s, want prefix %s", tc.raw, got, prefix)
				}
				return
			}
			if got != tc.want {
				t.Errorf("JARMHash(%q)\n got %s\nwant %s", tc.raw, got, tc.want)
			}
		})
	}
}

func TestJARMHashErrors(t *testing.T) {
	rest := strings.Repeat(",|||", 9)
	for _, raw := range []string{
		"c02f|0306||" + rest,          // "abcdef"[6]: IndexError
		"c02f|0309||" + rest,          // IndexError
		"c02f|7f1c||" + rest,          // TLS 1.3 draft legacy_version: int('c') fails
		"c02f|030a||" + rest,          // int('a') fails
		"c02f|03||" + rest,            // version[3:4] == "": int('') fails
		"c02f|030 ||" + rest,          // int(' ') fails
		"c02f|030\u0666||" + rest,     // ARABIC-INDIC SIX
		"c02f|030\U00011f53||" + rest, // Kawi digit: newer than Python 3.11's Unicode 14
		"c02f|0303|a" + rest,          // 3 fields
		"c02f|0303|a,b|0010" + rest,   // ALPN "a,b" splits the piece
		"",
		"|||,||",
	} {
		h, err := JARMHash(raw)
		if err == nil || !errors.Is(err, ErrJARMHash) {
			t.Errorf("JARMHash(%q) = %q, %v; want ErrJARMHash", raw, h, err)
		}
	}
}

func TestJARMHashHostilePipe(t *testing.T) {
	// ALPN "a|b": jarm.py does not crash, it hashes the shifted fields.
	raw := "c02f|0303|a|b|0010" + strings.Repeat(",|||", 9)
	shifted := "c02f|0303|a|b" + strings.Repeat(",|||", 9)
	h1, err1 := JARMHash(raw)
	h2, err2 := JARMHash(shifted)
	if err1 != nil || err2 != nil || h1 != h2 || len(h1) != 62 {
		t.Errorf("pipe in ALPN: %q %v / %q %v", h1, err1, h2, err2)
	}
	// A "," that leaves every piece 4 fields hashes to more than 62 chars.
	long, err := JARMHash("c02f|0303|||,|||ff01" + strings.Repeat(",|||", 9))
	if err != nil || len(long) != 65 {
		t.Errorf("eleven pieces: %q, %v; want 65 chars like jarm.py", long, err)
	}
}
