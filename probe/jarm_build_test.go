package probe

import (
	"bytes"
	"crypto/ecdh"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestBuildJARMProbesGolden(t *testing.T) {
	golden := readJARMGolden(t)
	got, err := BuildJARMProbes("example.com", zeroReader{})
	if err != nil {
		t.Fatalf("BuildJARMProbes: %v", err)
	}
	sizes := [10]int{425, 425, 346, 332, 413, 414, 427, 427, 417, 440} // docs/JARM.md §1.3
	same := 0
	for i := range golden {
		if len(got[i]) != sizes[i] {
			t.Errorf("probe %d: %d bytes, spec says %d", i+1, len(got[i]), sizes[i])
		}
		if !bytes.Equal(got[i], golden[i]) {
			t.Errorf("probe %d differs from golden vector\n got %x\nwant %x", i+1, got[i], golden[i])
			continue
		}
		same++
	}
	t.Logf("golden ClientHellos: %d/10 byte-identical", same)
}

// hexList renders a cipher list like the precomputed orders of docs/JARM.md §1.4.
func hexList(l []uint16) string {
	s := make([]string, len(l))
	for i, c := range l {
		s[i] = fmt.Sprintf("%04x", c)
	}
	return strings.Join(s, " ")
}

func TestJARMCipherOrders(t *testing.T) {
	// docs/JARM.md §1.4, precomputed for ALL (n = 69).
	want := map[cipherOrder]string{
		orderReverse:    "0005 0004 0007 00c0 0084 00ba 0041 009d c0a1 c09d 003d 0035 009c c0a0 c09c 003c 002f 000a c011 cc13 1303 1304 1305 cca8 c077 c076 c061 c060 c030 c028 c014 c02f c027 c013 c012 c007 cc14 1301 1302 cca9 c073 c072 c02c c0af c0ad c024 c00a c02b c0ae c0ac c023 c009 c008 009a 00c4 0088 00be 0045 009f c0a3 c09f 006b 0039 009e c0a2 c09e 0067 0033 0016",
		orderTopHalf:    "c012 c007 cc14 1301 1302 cca9 c073 c072 c02c c0af c0ad c024 c00a c02b c0ae c0ac c023 c009 c008 009a 00c4 0088 00be 0045 009f c0a3 c09f 006b 0039 009e c0a2 c09e 0067 0033 0016",
		orderBottomHalf: "c013 c027 c02f c014 c028 c030 c060 c061 c076 c077 cca8 1305 1304 1303 cc13 c011 000a 002f 003c c09c c0a0 009c 0035 003d c09d c0a1 009d 0041 00ba 0084 00c0 0007 0004 0005",
		orderMiddleOut:  "c012 c013 c007 c027 cc14 c02f 1301 c014 1302 c028 cca9 c030 c073 c060 c072 c061 c02c c076 c0af c077 c0ad cca8 c024 1305 c00a 1304 c02b 1303 c0ae cc13 c0ac c011 c023 000a c009 002f c008 003c 009a c09c 00c4 c0a0 0088 009c 00be 0035 0045 003d 009f c09d c0a3 c0a1 c09f 009d 006b 0041 0039 00ba 009e 0084 c0a2 00c0 c09e 0007 0067 0004 0033 0005 0016",
	}
	for o, w := range want {
		if got := hexList(mung(jarmCipherList(false), o)); got != w {
			t.Errorf("order %d:\n got %s\nwant %s", o, got, w)
		}
	}
	if n := len(jarmCipherList(true)); n != 64 {
		t.Errorf("NO1.3 has %d suites, want 64", n)
	}
	// Even-length rules, checked on small lists.
	even := []uint16{0, 1, 2, 3, 4, 5}
	evenWant := map[cipherOrder]string{
		orderTopHalf:    "0002 0001 0000",
		orderBottomHalf: "0003 0004 0005",
		orderMiddleOut:  "0003 0002 0004 0001 0005 0000",
	}
	for o, w := range evenWant {
		if got := hexList(mung(even, o)); got != w {
			t.Errorf("even order %d: got %s, want %s", o, got, w)
		}
	}
}

// countingReader yields 1, 2, 3, … and counts the bytes read.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		c.n++
		p[i] = byte(c.n)
	}
	return len(p), nil
}

func TestBuildJARMProbesRandomness(t *testing.T) {
	rnd := &countingReader{}
	probes, err := BuildJARMProbes("example.com", rnd)
	if err != nil {
		t.Fatalf("BuildJARMProbes: %v", err)
	}
	zero, err := BuildJARMProbes("example.com", zeroReader{})
	if err != nil {
		t.Fatalf("BuildJARMProbes: %v", err)
	}
	// The key share is the X25519 public key of the scalar drawn first
	// from rnd (project choice, docs/JARM.md §1.3): top bit clear, the
	// same in all ten ClientHellos of the target.
	scalar := make([]byte, 32)
	for k := range scalar {
		scalar[k] = byte(1 + k)
	}
	priv, err := ecdh.X25519().NewPrivateKey(scalar)
	if err != nil {
		t.Fatal(err)
	}
	specs := jarmProbeSpecs()
	for i, p := range probes {
		hr, err := extractHelloRandom(p, specs[i])
		if err != nil {
			t.Fatalf("probe %d: %v", i+1, err)
		}
		if !bytes.Equal(hr.keyShare[:], priv.PublicKey().Bytes()) {
			t.Errorf("probe %d: key share is not the X25519 public key of the drawn scalar", i+1)
		}
		if hr.keyShare[31]&0x80 != 0 {
			t.Errorf("probe %d: key share top bit set", i+1)
		}
		base := 32 + i*68
		if hr.random[0] != byte(base+1) || hr.sessionID[0] != byte(base+33) {
			t.Errorf("probe %d: random/session id not taken from rnd", i+1)
		}
		if specs[i].grease {
			for k, g := range hr.grease {
				if k == 3 && specs[i].versions == versionsNone {
					continue // no supported_versions extension
				}
				if want := greaseValue(byte(base + 65 + k)); g != want {
					t.Errorf("probe %d: GREASE %d = %04x, want %04x", i+1, k, g, want)
				}
			}
		}
		// Masking the random parts leaves the zero-random probe.
		masked := helloRandom{grease: [4]uint16{0x0a0a, 0x0a0a, 0x0a0a, 0x0a0a}}
		if rebuilt := buildJARMHello(specs[i], "example.com", &masked); !bytes.Equal(rebuilt, zero[i]) {
			t.Errorf("probe %d: zero rebuild differs", i+1)
		}
		hr2 := helloRandom{random: hr.random, sessionID: hr.sessionID, keyShare: hr.keyShare, grease: hr.grease}
		if rebuilt := buildJARMHello(specs[i], "example.com", &hr2); !bytes.Equal(rebuilt, p) {
			t.Errorf("probe %d: rebuild from extracted randomness differs", i+1)
		}
	}
	if rnd.n != 32+10*68 {
		t.Errorf("consumed %d random bytes, want %d", rnd.n, 32+10*68)
	}
}

func TestGreaseValues(t *testing.T) {
	seen := map[uint16]bool{}
	for b := 0; b < 256; b++ {
		g := greaseValue(byte(b))
		if g&0x0f0f != 0x0a0a || g>>8 != g&0xff {
			t.Fatalf("greaseValue(%d) = %04x is not GREASE", b, g)
		}
		seen[g] = true
	}
	if len(seen) != 16 || greaseValue(0) != 0x0a0a {
		t.Errorf("got %d distinct GREASE values, greaseValue(0)=%04x", len(seen), greaseValue(0))
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy exhausted") }

func TestBuildJARMProbesErrors(t *testing.T) {
	if _, err := BuildJARMProbes("example.com", failingReader{}); err == nil || !strings.Contains(err.Error(), "entropy exhausted") {
		t.Errorf("failing reader: err = %v", err)
	}
	if _, err := BuildJARMProbes("example.com", io.LimitReader(zeroReader{}, 150)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short reader: err = %v, want ErrUnexpectedEOF", err)
	}
	if _, err := BuildJARMProbes(strings.Repeat("a", 70000), zeroReader{}); err == nil {
		t.Error("70000-byte host: want error")
	}
	long := strings.Repeat("a", maxJARMHost)
	probes, err := BuildJARMProbes(long, zeroReader{})
	if err != nil {
		t.Fatalf("longest host: %v", err)
	}
	for i, p := range probes {
		if rl := int(binary.BigEndian.Uint16(p[3:5])); rl != len(p)-5 {
			t.Errorf("probe %d: record length %d, want %d", i+1, rl, len(p)-5)
		}
	}
	// A nil reader means crypto/rand: two builds differ.
	a, err1 := BuildJARMProbes("example.com", nil)
	b, err2 := BuildJARMProbes("example.com", nil)
	if err1 != nil || err2 != nil || bytes.Equal(a[0], b[0]) {
		t.Errorf("nil reader: errors %v %v, identical=%v", err1, err2, bytes.Equal(a[0], b[0]))
	}
}

func TestBuildJARMProbesUnicodeHost(t *testing.T) {
	// jarm.py writes len(host) in code points but sends UTF-8 bytes.
	p, err := BuildJARMProbes("bücher.example", zeroReader{})
	if err != nil {
		t.Fatal(err)
	}
	sni := []byte{0x00, 0x00, 0x00, 0x13, 0x00, 0x11, 0x00, 0x00, 0x0e}
	sni = append(sni, "bücher.example"...)
	if !bytes.Contains(p[0], sni) {
		t.Errorf("server_name not as jarm.py writes it: %s", hex.EncodeToString(p[0][70:120]))
	}
}

// extractHelloRandom recovers every random input of a JARM ClientHello made
// for spec, so that buildJARMHello can rebuild it byte for byte.
func extractHelloRandom(p []byte, spec jarmProbeSpec) (helloRandom, error) {
	var hr helloRandom
	if len(p) < 79 || p[0] != 0x16 || p[5] != 0x01 || p[43] != 32 {
		return hr, errors.New("not a JARM ClientHello")
	}
	copy(hr.random[:], p[11:43])
	copy(hr.sessionID[:], p[44:76])
	pos := 76
	csLen := int(binary.BigEndian.Uint16(p[pos:]))
	if spec.grease {
		hr.grease[0] = binary.BigEndian.Uint16(p[pos+2:])
	}
	pos += 2 + csLen + 2 // ciphers, compression
	end := pos + 2 + int(binary.BigEndian.Uint16(p[pos:]))
	if end != len(p) {
		return hr, fmt.Errorf("extension length %d does not end the record (%d)", end, len(p))
	}
	pos += 2
	for first := true; pos+4 <= end; first = false {
		typ := binary.BigEndian.Uint16(p[pos:])
		n := int(binary.BigEndian.Uint16(p[pos+2:]))
		body := p[pos+4 : pos+4+n]
		switch {
		case first && spec.grease:
			hr.grease[1] = typ
		case typ == 0x0033:
			shares := body[2:]
			if spec.grease {
				hr.grease[2] = binary.BigEndian.Uint16(shares)
				shares = shares[5:]
			}
			if len(shares) != 36 || shares[0] != 0 || shares[1] != 0x1d {
				return hr, fmt.Errorf("unexpected key_share % x", body)
			}
			copy(hr.keyShare[:], shares[4:])
		case typ == 0x002b && spec.grease:
			hr.grease[3] = binary.BigEndian.Uint16(body[1:])
		}
		pos += 4 + n
	}
	return hr, nil
}
