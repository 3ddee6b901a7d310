package probe

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSecret is the handshake secret the fuzz targets decrypt with, so the
// seed flights exercise the TLS 1.3 path.
var fuzzSecret = bytes.Repeat([]byte{0x5a}, 48)

func encodeRecords(recs []tlsRecord) []byte {
	var b []byte
	for _, r := range recs {
		b = append(b, r.typ, byte(r.vers>>8), byte(r.vers), byte(len(r.body)>>8), byte(len(r.body)))
		b = append(b, r.body...)
	}
	return b
}

// splitRecords cuts a byte stream into records as recordConn would,
// clamping a short last body.
func splitRecords(b []byte) []tlsRecord {
	var out []tlsRecord
	for len(b) >= recordHeaderLen {
		n := min(int(b[3])<<8|int(b[4]), len(b)-recordHeaderLen)
		out = append(out, tlsRecord{typ: b[0], vers: uint16(b[1])<<8 | uint16(b[2]), body: b[recordHeaderLen : recordHeaderLen+n]})
		b = b[recordHeaderLen+n:]
	}
	return out
}

func FuzzATSFTranscript(f *testing.F) {
	defs, err := loadATSFDefs()
	if err != nil {
		f.Fatal(err)
	}
	for _, suite := range []uint16{0x1301, 0x1302, 0x1303} {
		f.Add(encodeRecords(tls13Flight(f, suite, fuzzSecret, tlsExtBytes(extSCT, nil))))
	}
	f.Add(encodeRecords([]tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0x1302, true,
		tlsExtBytes(extSupportedVers, []byte{3, 4}), tlsExtBytes(extKeyShare, []byte{0, 23}), tlsExtBytes(extCookie, []byte{0, 2, 1, 2}))),
		plainRecord(recAlert, []byte{2, 80})}))
	f.Add(encodeRecords([]tlsRecord{plainRecord(recHandshake, append(shMessage(0x0303, 0xc02f, false, tlsExtBytes(extRenegotiation, []byte{0})),
		hsMessage(hsCertificate, []byte{0, 0, 6, 0, 0, 3, 1, 2, 3})...))}))
	// A TLS 1.2 flight to its ServerHelloDone (the cut's decision point).
	ske := append([]byte{3, 0, 29, 32}, bytes.Repeat([]byte{9}, 32)...)
	ske = append(ske, 0x04, 0x01, 0, 2, 1, 2)
	f.Add(encodeRecords([]tlsRecord{plainRecord(recHandshake, slices.Concat(
		shMessage(0x0303, 0xc02f, false, tlsExtBytes(extRenegotiation, []byte{0})),
		hsMessage(hsCertificate, append([]byte{0, 0, 0x0a, 0, 0, 7}, goCert(f, false).Certificate[0][:7]...)),
		hsMessage(hsServerKeyExch, ske), hsMessage(hsHelloDone, nil)))}))
	f.Add([]byte{0x15, 3, 3, 0, 2, 2, 40})
	f.Add([]byte{0x16, 3, 3, 0xff, 0xff, 2, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		recs := splitRecords(data)
		for _, secret := range [][]byte{fuzzSecret, nil} {
			tr := parseTranscript(recs, secret)
			s := tr.atsfString()
			if s == "______" {
				t.Fatal("no-data string not replaced by \"\"")
			}
			if s != "" && strings.Count(strings.SplitN(s, "<", 2)[0], "_") != 6 {
				t.Fatalf("%q does not have 7 fields", s)
			}
			if !utf8.ValidString(s) || strings.Contains(s, "|") {
				t.Fatalf("%q cannot be joined into a combined string", s)
			}
			if len(tr.chain) > maxChainStored || tr.chainLen < len(tr.chain) {
				t.Fatalf("chain bookkeeping: %d stored, %d counted", len(tr.chain), tr.chainLen)
			}
			if s2 := parseTranscript(recs, secret).atsfString(); s2 != s {
				t.Fatalf("not deterministic: %q then %q", s, s2)
			}
			_ = hrrHasCookie(tlsRecord{typ: recHandshake, body: data})
			// The cut's decisions read the same hostile records.
			st := scanTranscript(recs, secret)
			if st.atsfString() != s {
				t.Fatalf("scanTranscript's string %q differs from parseTranscript's %q", st.atsfString(), s)
			}
			if complete, more := st.flightState(secret != nil, true); complete && more {
				t.Fatal("flight both complete and incomplete")
			}
			for _, d := range defs {
				var leaves leafCache
				a := tls12Completes(st, d, bytes.Repeat([]byte{1}, 32), &leaves)
				if b := tls12Completes(st, d, bytes.Repeat([]byte{1}, 32), &leaves); a != b || a != tls12Completes(st, d, bytes.Repeat([]byte{1}, 32), nil) {
					t.Fatal("a cached leaf changes the decision")
				}
			}
		}
		// The incremental walk the prober uses agrees with a walk from
		// scratch after every record, whenever the secret shows up (the
		// first 64 records: a walk from scratch per prefix is quadratic).
		n := min(len(recs), 64)
		shSeen := make([]bool, n+1) // scanTranscript(recs[:k], nil).sh.seen
		ref := newTranscriptParser(true)
		for k := 1; k <= n; k++ {
			ref.step(recs[k-1], nil)
			shSeen[k] = ref.t.sh.seen
		}
		for _, from := range []int{0, 1, n / 2, n + 1} {
			sc := newTranscriptScan()
			for k := 0; k <= n; k++ {
				var secret []byte
				if k >= from {
					secret = fuzzSecret
				}
				got, want := sc.scan(recs[:k], secret), scanTranscript(recs[:k], secret)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("secret from record %d: incremental walk after %d records differs:\n%+v\n%+v", from, k, got, want)
				}
				for m := 0; m <= k; m++ {
					if sc.shIn(m) != shSeen[m] {
						t.Fatalf("shIn(%d) after %d records = %v", m, k, sc.shIn(m))
					}
				}
			}
		}
		if !bytes.Equal(in, data) {
			t.Fatal("input modified")
		}
	})
}

func FuzzCertFacts(f *testing.F) {
	for _, ec := range []bool{false, true} {
		f.Add(goCert(f, ec).Certificate[0])
	}
	f.Add(ed25519Cert(f))
	f.Add(sha1SelfSigned(f))
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, der []byte) {
		in := bytes.Clone(der)
		c, err := CertFactsFromChain([][]byte{der, der})
		if len(der) == 0 {
			if err == nil {
				t.Fatal("empty leaf accepted")
			}
			return
		}
		if err != nil || len(c.SHA256) != 64 || len(c.SHA1) != 40 || c.ChainLen != 2 {
			t.Fatalf("facts %+v, %v", c, err)
		}
		if len(c.SANs) > maxSANs {
			t.Fatalf("%d SANs", len(c.SANs))
		}
		for _, s := range append([]string{c.Subject, c.Issuer, c.Serial, c.ParseError}, c.SANs...) {
			if !utf8.ValidString(s) || len(s) > maxNameBytes+len("…") {
				t.Fatalf("unsafe string %q", s)
			}
		}
		if (c.ParseError == "") == (c.KeyType == "") {
			t.Fatalf("parsed facts and parse error disagree: %+v", c)
		}
		if !bytes.Equal(in, der) {
			t.Fatal("input modified")
		}
	})
}
