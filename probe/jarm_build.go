package probe

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"unicode/utf8"
)

// cipherOrder is jarm.py's cipher_mung request; it is applied to the cipher,
// ALPN and supported_versions lists alike.
type cipherOrder int

const (
	orderForward cipherOrder = iota
	orderReverse
	orderTopHalf
	orderBottomHalf
	orderMiddleOut
)

// versionsKind selects the supported_versions extension (jarm.py's
// "1.2_SUPPORT" / "1.3_SUPPORT" / "NO_SUPPORT").
type versionsKind int

const (
	versionsNone versionsKind = iota
	versionsTLS12
	versionsTLS13
)

// jarmProbeSpec is one row of docs/JARM.md §1.2.
type jarmProbeSpec struct {
	name       string // jarm.py's variable name, for error messages
	recVer     uint16 // record-layer version
	helloVer   uint16 // ClientHello.legacy_version
	noTLS13    bool   // NO1.3 cipher list instead of ALL
	order      cipherOrder
	grease     bool
	rareALPN   bool
	versions   versionsKind
	extReverse bool // reverses the ALPN and supported_versions lists only
}

// jarmProbeSpecs returns the ten probes in the reference order. A function,
// not a var, so nothing package-level can be mutated.
func jarmProbeSpecs() [10]jarmProbeSpec {
	return [10]jarmProbeSpec{
		{"tls1_2_forward", 0x0303, 0x0303, false, orderForward, false, false, versionsTLS12, true},
		{"tls1_2_reverse", 0x0303, 0x0303, false, orderReverse, false, false, versionsTLS12, false},
		{"tls1_2_top_half", 0x0303, 0x0303, false, orderTopHalf, false, false, versionsNone, false},
		{"tls1_2_bottom_half", 0x0303, 0x0303, false, orderBottomHalf, false, true, versionsNone, false},
		{"tls1_2_middle_out", 0x0303, 0x0303, false, orderMiddleOut, true, true, versionsNone, true},
		// Forward order despite the name, as in jarm.py.
		{"tls1_1_middle_out", 0x0302, 0x0302, false, orderForward, false, false, versionsNone, false},
		// TLS 1.3 probes use record version 0301 and hello version 0303.
		{"tls1_3_forward", 0x0301, 0x0303, false, orderForward, false, false, versionsTLS13, true},
		{"tls1_3_reverse", 0x0301, 0x0303, false, orderReverse, false, false, versionsTLS13, false},
		{"tls1_3_invalid", 0x0301, 0x0303, true, orderForward, false, false, versionsTLS13, false},
		{"tls1_3_middle_out", 0x0301, 0x0303, false, orderMiddleOut, true, false, versionsTLS13, true},
	}
}

// jarmCiphersAll is jarm.py's "ALL" list in its base order. It is never
// written to; mung copies it.
var jarmCiphersAll = [...]uint16{
	0x0016, 0x0033, 0x0067, 0xc09e, 0xc0a2, 0x009e, 0x0039, 0x006b, 0xc09f, 0xc0a3,
	0x009f, 0x0045, 0x00be, 0x0088, 0x00c4, 0x009a, 0xc008, 0xc009, 0xc023, 0xc0ac,
	0xc0ae, 0xc02b, 0xc00a, 0xc024, 0xc0ad, 0xc0af, 0xc02c, 0xc072, 0xc073, 0xcca9,
	0x1302, 0x1301, 0xcc14, 0xc007, 0xc012, 0xc013, 0xc027, 0xc02f, 0xc014, 0xc028,
	0xc030, 0xc060, 0xc061, 0xc076, 0xc077, 0xcca8, 0x1305, 0x1304, 0x1303, 0xcc13,
	0xc011, 0x000a, 0x002f, 0x003c, 0xc09c, 0xc0a0, 0x009c, 0x0035, 0x003d, 0xc09d,
	0xc0a1, 0x009d, 0x0041, 0x00ba, 0x0084, 0x00c0, 0x0007, 0x0004, 0x0005,
}

// jarmCipherList returns a fresh copy of ALL, or of NO1.3 (ALL without the
// 13xx suites, order kept).
func jarmCipherList(noTLS13 bool) []uint16 {
	out := make([]uint16, 0, len(jarmCiphersAll))
	for _, c := range jarmCiphersAll {
		if noTLS13 && c>>8 == 0x13 {
			continue
		}
		out = append(out, c)
	}
	return out
}

// jarmALPN returns the ALPN protocol list: the full 9-entry list, or the
// "rare" one without http/1.1 and h2. This is the post-Dec-2020 list (spdy/3
// and h2 are separate entries).
func jarmALPN(rare bool) []string {
	if rare {
		return []string{"http/0.9", "http/1.0", "spdy/1", "spdy/2", "spdy/3", "h2c", "hq"}
	}
	return []string{"http/0.9", "http/1.0", "http/1.1", "spdy/1", "spdy/2", "spdy/3", "h2", "h2c", "hq"}
}

// mung is jarm.py's cipher_mung, used on ciphers, ALPN and versions.
func mung[T any](in []T, o cipherOrder) []T {
	n := len(in)
	m := n / 2
	out := make([]T, 0, n)
	switch o {
	case orderForward:
		out = append(out, in...)
	case orderReverse:
		for i := n - 1; i >= 0; i-- {
			out = append(out, in[i])
		}
	case orderBottomHalf:
		if n%2 == 1 {
			out = append(out, in[m+1:]...)
		} else {
			out = append(out, in[m:]...)
		}
	case orderTopHalf:
		// jarm.py: [middle if odd] + BOTTOM_HALF(REVERSE(list)).
		if n%2 == 1 {
			out = append(out, in[m])
		}
		out = append(out, mung(mung(in, orderReverse), orderBottomHalf)...)
	case orderMiddleOut:
		if n%2 == 1 {
			out = append(out, in[m])
			for i := 1; i <= m; i++ {
				out = append(out, in[m+i], in[m-i])
			}
		} else {
			for i := 1; i <= m; i++ {
				out = append(out, in[m-1+i], in[m-i])
			}
		}
	}
	return out
}

// helloRandom holds every random input of one ClientHello. BuildJARMProbes
// draws it from the injected reader; tests extract it from captures to
// rebuild jarm.py's exact bytes.
type helloRandom struct {
	random    [32]byte
	sessionID [32]byte
	keyShare  [32]byte  // the x25519 key_exchange bytes as sent
	grease    [4]uint16 // cipher, extension, key share, supported_versions
}

// greaseValue maps a random byte to one of the 16 GREASE values; byte 0
// gives 0x0a0a so an all-zero reader reproduces the golden vectors.
func greaseValue(b byte) uint16 { return 0x0a0a + 0x1010*uint16(b&0x0f) }

// drawHelloRandom reads one ClientHello's randomness from rnd: random,
// session id and four GREASE picks (read for every probe, used only by the
// GREASE ones). The key share is drawn once per target (drawKeyShare).
func drawHelloRandom(rnd io.Reader, grease bool) (helloRandom, error) {
	var hr helloRandom
	var buf [32 + 32 + 4]byte
	if _, err := io.ReadFull(rnd, buf[:]); err != nil {
		return hr, fmt.Errorf("read randomness: %w", err)
	}
	copy(hr.random[:], buf[0:32])
	copy(hr.sessionID[:], buf[32:64])
	if grease {
		for i := range hr.grease {
			hr.grease[i] = greaseValue(buf[64+i])
		}
	}
	return hr, nil
}

// drawKeyShare reads a private scalar from rnd and returns its X25519
// public key, the key_exchange bytes of all ten ClientHellos of one target.
//
// Project choice (docs/JARM.md §1.3): the key share is a real X25519 public
// key, so its top bit is always clear, and one per target rather than one
// per ClientHello: nothing is ever computed with it, no answer depends on
// its value, and the nine scalar multiplications saved were a tenth of the
// JARM client's CPU. An all-zero scalar is sent as 32 zero bytes instead,
// exactly as jarm.py would send those random bytes; that keeps the
// zero-random golden vectors valid, and a real random source yields 32 zero
// bytes with probability 2^-256.
func drawKeyShare(rnd io.Reader) (share [32]byte, err error) {
	var scalar [32]byte
	if _, err := io.ReadFull(rnd, scalar[:]); err != nil {
		return share, fmt.Errorf("read randomness: %w", err)
	}
	if allZero(scalar[:]) {
		return share, nil
	}
	priv, err := ecdh.X25519().NewPrivateKey(scalar[:])
	if err != nil {
		return share, fmt.Errorf("x25519 key share: %w", err)
	}
	copy(share[:], priv.PublicKey().Bytes())
	return share, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// maxJARMHost keeps every length field of the record within 16 bits; jarm.py
// crashes in struct.pack beyond that.
const maxJARMHost = 65535 - 512

// BuildJARMProbes returns the ten JARM ClientHello records for host (sent
// verbatim as server_name, IP literals included) with randomness from rnd
// (crypto/rand when nil). With a reader of zeros the result equals the
// golden vectors of testdata/jarm (all random bytes 00, GREASE 0a0a).
func BuildJARMProbes(host string, rnd io.Reader) ([10][]byte, error) {
	var out [10][]byte
	if rnd == nil {
		rnd = rand.Reader
	}
	if len(host) > maxJARMHost {
		return out, fmt.Errorf("build jarm probes: host name of %d bytes is too long", len(host))
	}
	share, err := drawKeyShare(rnd)
	if err != nil {
		return out, fmt.Errorf("build jarm probes: key share: %w", err)
	}
	for i, spec := range jarmProbeSpecs() {
		hr, err := drawHelloRandom(rnd, spec.grease)
		if err != nil {
			return out, fmt.Errorf("build jarm probe %d (%s): %w", i+1, spec.name, err)
		}
		hr.keyShare = share
		out[i] = buildJARMHello(spec, host, &hr)
	}
	return out, nil
}

// buildJARMHello is jarm.py's packet_building for one probe.
func buildJARMHello(spec jarmProbeSpec, host string, hr *helloRandom) []byte {
	ciphers := mung(jarmCipherList(spec.noTLS13), spec.order)
	if spec.grease {
		ciphers = append([]uint16{hr.grease[0]}, ciphers...)
	}

	b := make([]byte, 0, 512+len(host))
	b = append(b, 0x16)
	b = binary.BigEndian.AppendUint16(b, spec.recVer)
	b = append(b, 0, 0) // record length, patched below
	b = append(b, 0x01, 0x00, 0, 0)
	b = binary.BigEndian.AppendUint16(b, spec.helloVer)
	b = append(b, hr.random[:]...)
	b = append(b, 32)
	b = append(b, hr.sessionID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(2*len(ciphers)))
	for _, c := range ciphers {
		b = binary.BigEndian.AppendUint16(b, c)
	}
	b = append(b, 0x01, 0x00) // one compression method: null
	b = appendJARMExtensions(b, spec, host, hr)

	binary.BigEndian.PutUint16(b[3:5], uint16(len(b)-5))
	binary.BigEndian.PutUint16(b[7:9], uint16(len(b)-9))
	return b
}

func appendJARMExtensions(b []byte, spec jarmProbeSpec, host string, hr *helloRandom) []byte {
	lenAt := len(b)
	b = append(b, 0, 0)

	if spec.grease {
		b = binary.BigEndian.AppendUint16(b, hr.grease[1])
		b = append(b, 0, 0)
	}

	// server_name. jarm.py writes len(host) of the Python string, i.e. code
	// points, while it sends the UTF-8 bytes; both agree for ASCII names and
	// the quirk is kept for the others.
	n := utf8.RuneCountInString(host)
	b = append(b, 0x00, 0x00)
	b = binary.BigEndian.AppendUint16(b, uint16(n+5))
	b = binary.BigEndian.AppendUint16(b, uint16(n+3))
	b = append(b, 0x00)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	b = append(b, host...)

	b = append(b,
		0x00, 0x17, 0x00, 0x00, // extended_master_secret
		0x00, 0x01, 0x00, 0x01, 0x01, // max_fragment_length 2^9
		0xff, 0x01, 0x00, 0x01, 0x00, // renegotiation_info
		0x00, 0x0a, 0x00, 0x0a, 0x00, 0x08, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, 0x00, 0x19, // supported_groups
		0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats
		0x00, 0x23, 0x00, 0x00, // session_ticket
	)

	extOrder := orderForward
	if spec.extReverse {
		extOrder = orderReverse
	}
	alpns := mung(jarmALPN(spec.rareALPN), extOrder)
	listLen := 0
	for _, p := range alpns {
		listLen += 1 + len(p)
	}
	b = append(b, 0x00, 0x10)
	b = binary.BigEndian.AppendUint16(b, uint16(listLen+2))
	b = binary.BigEndian.AppendUint16(b, uint16(listLen))
	for _, p := range alpns {
		b = append(b, byte(len(p)))
		b = append(b, p...)
	}

	b = append(b, 0x00, 0x0d, 0x00, 0x14, 0x00, 0x12,
		0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03, 0x08, 0x05,
		0x05, 0x01, 0x08, 0x06, 0x06, 0x01, 0x02, 0x01) // signature_algorithms

	// key_share, in every probe. The GREASE share has a 1-byte key and a
	// group absent from supported_groups (OpenSSL answers alert 47).
	shares := 4 + 32
	if spec.grease {
		shares += 5
	}
	b = append(b, 0x00, 0x33)
	b = binary.BigEndian.AppendUint16(b, uint16(shares+2))
	b = binary.BigEndian.AppendUint16(b, uint16(shares))
	if spec.grease {
		b = binary.BigEndian.AppendUint16(b, hr.grease[2])
		b = append(b, 0x00, 0x01, 0x00)
	}
	b = append(b, 0x00, 0x1d, 0x00, 0x20)
	b = append(b, hr.keyShare[:]...)

	b = append(b, 0x00, 0x2d, 0x00, 0x02, 0x01, 0x01) // psk_key_exchange_modes: psk_dhe_ke

	if spec.versions != versionsNone {
		vers := []uint16{0x0301, 0x0302, 0x0303}
		if spec.versions == versionsTLS13 {
			vers = append(vers, 0x0304)
		}
		vers = mung(vers, extOrder)
		if spec.grease {
			vers = append([]uint16{hr.grease[3]}, vers...)
		}
		b = append(b, 0x00, 0x2b)
		b = binary.BigEndian.AppendUint16(b, uint16(2*len(vers)+1))
		b = append(b, byte(2*len(vers)))
		for _, v := range vers {
			b = binary.BigEndian.AppendUint16(b, v)
		}
	}

	binary.BigEndian.PutUint16(b[lenAt:], uint16(len(b)-lenAt-2))
	return b
}
