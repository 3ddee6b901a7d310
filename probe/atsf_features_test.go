package probe

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
)

// Builders for synthetic server flights.

func tlsExtBytes(typ uint16, data []byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func hsMessage(typ uint8, body []byte) []byte {
	n := len(body)
	return append([]byte{typ, byte(n >> 16), byte(n >> 8), byte(n)}, body...)
}

func withLen16(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }

// shMessage is a ServerHello (hrr: HelloRetryRequest) handshake message;
// exts nil means no extensions block at all.
func shMessage(vers, cipher uint16, hrr bool, exts ...[]byte) []byte {
	b := []byte{byte(vers >> 8), byte(vers)}
	if hrr {
		b = append(b, helloRetryRandom[:]...)
	} else {
		b = append(b, bytes.Repeat([]byte{0x42}, 32)...)
	}
	b = append(b, 32)
	b = append(b, bytes.Repeat([]byte{7}, 32)...)
	b = append(b, byte(cipher>>8), byte(cipher), 0)
	if exts != nil {
		b = append(b, withLen16(bytes.Join(exts, nil))...)
	}
	return hsMessage(hsServerHello, b)
}

func plainRecord(typ uint8, body []byte) tlsRecord {
	return tlsRecord{typ: typ, vers: 0x0303, body: body}
}

// tls13Flight is SH(x25519) then EE, CR, Certificate (one leaf with the
// given extensions), CertificateVerify and Finished, encrypted with secret.
func tls13Flight(t testing.TB, suite uint16, secret []byte, leafExts []byte) []tlsRecord {
	t.Helper()
	sh := shMessage(0x0303, suite, false,
		tlsExtBytes(extSupportedVers, []byte{3, 4}),
		tlsExtBytes(extKeyShare, append([]byte{0, 29, 0, 32}, make([]byte, 32)...)))
	enc, err := newTLS13Decrypter(suite, secret)
	if err != nil {
		t.Fatal(err)
	}
	ee := hsMessage(hsEncryptedExts, withLen16(bytes.Join([][]byte{
		tlsExtBytes(extALPN, []byte{0, 3, 2, 'h', '2'}),
		tlsExtBytes(extServerName, nil),
	}, nil)))
	cr := hsMessage(hsCertRequest, append([]byte{0}, withLen16(tlsExtBytes(extSigAlgs, []byte{0, 2, 4, 3}))...))
	leaf := []byte("not really DER")
	entry := append([]byte{0, byte(len(leaf) >> 8), byte(len(leaf))}, leaf...)
	entry = append(entry, withLen16(leafExts)...)
	list := append([]byte{0, byte(len(entry) >> 8), byte(len(entry))}, entry...)
	cert := hsMessage(hsCertificate, append([]byte{0}, list...))
	cv := hsMessage(15, []byte{4, 3, 0, 0})
	fin := hsMessage(hsFinished, make([]byte, 32))
	// EE and half of CR in one record, the rest split across two.
	stream := bytes.Join([][]byte{ee, cr, cert, cv, fin}, nil)
	cut1, cut2 := len(ee)+3, len(ee)+len(cr)+10
	return []tlsRecord{
		plainRecord(recHandshake, sh),
		plainRecord(recChangeCipher, []byte{1}),
		enc.seal(recHandshake, stream[:cut1]),
		enc.seal(recHandshake, stream[cut1:cut2]),
		enc.seal(recHandshake, stream[cut2:]),
		// After Finished: application keys, never decrypted.
		{typ: recApplication, vers: 0x0303, body: bytes.Repeat([]byte{9}, 40)},
	}
}

func TestTranscriptTLS13(t *testing.T) {
	secret := bytes.Repeat([]byte{0x5a}, 48)
	for _, suite := range []uint16{0x1301, 0x1302, 0x1303} {
		recs := tls13Flight(t, suite, secret, tlsExtBytes(extStatusRequest, []byte{1, 0, 0, 1, 0}))
		tr := parseTranscript(recs, secret)
		want := fmt.Sprintf("771_%x_43.AwQ-51.29_16.AAMCaDI-0._13.AAIEAw__5.", suite)
		if got := tr.atsfString(); got != want {
			t.Errorf("suite %04x:\n got %q\nwant %q", suite, got, want)
		}
		if tr.chainLen != 1 || string(tr.chain[0]) != "not really DER" || tr.undecrypted {
			t.Errorf("suite %04x: chain %d %q undecrypted=%v", suite, tr.chainLen, tr.chain, tr.undecrypted)
		}
		// Without the secret the encrypted part is a recorded gap.
		tr = parseTranscript(recs, nil)
		if got := tr.atsfString(); got != fmt.Sprintf("771_%x_43.AwQ-51.29____", suite) || !tr.undecrypted {
			t.Errorf("suite %04x without secret: %q undecrypted=%v", suite, got, tr.undecrypted)
		}
		// A wrong secret is a gap too, never garbage.
		if tr = parseTranscript(recs, bytes.Repeat([]byte{1}, 32)); !tr.undecrypted || tr.ee.seen {
			t.Errorf("suite %04x wrong secret: undecrypted=%v ee=%v", suite, tr.undecrypted, tr.ee.seen)
		}
	}
}

func TestTranscriptStrings(t *testing.T) {
	alert := func(code byte) tlsRecord { return plainRecord(recAlert, []byte{2, code}) }
	tests := []struct {
		name string
		recs []tlsRecord
		want string
	}{
		{"nothing", nil, ""},
		{"alert only", []tlsRecord{alert(120)}, "______<120"},
		{"two alerts in one record", []tlsRecord{plainRecord(recAlert, []byte{1, 112, 2, 40})}, "______<112-40"},
		{"tls 1.2 dhe", []tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0x9f, false, tlsExtBytes(1, []byte{1})))}, "771_9f_1.AQ____"},
		{"no extension block", []tlsRecord{plainRecord(recHandshake, shMessage(0x0301, 0xc009, false))}, "769_c009_____"},
		{"empty extension block", []tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0x3c, false, []byte{}))}, "771_3c_-____"},
		{"presence-only and static values", []tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0xc013, false,
			tlsExtBytes(extRenegotiation, []byte{0}), tlsExtBytes(extPointFormats, []byte{3, 0, 1, 2}), tlsExtBytes(extSessionTicket, nil)))},
			"771_c013_65281.-11.AwABAg-35.____"},
		{"hrr only", []tlsRecord{plainRecord(recHandshake, shMessage(0x0303, 0x1302, true,
			tlsExtBytes(extSupportedVers, []byte{3, 4}), tlsExtBytes(extKeyShare, []byte{1, 0}))), alert(80)},
			"771_1302____43.AwQ-51.256_<80"},
		{"server hello split over records, then alert", []tlsRecord{
			plainRecord(recHandshake, shMessage(0x0303, 0xc02b, false, tlsExtBytes(extALPN, []byte{0, 3, 2, 'h', '2'}))[:20]),
			plainRecord(recHandshake, shMessage(0x0303, 0xc02b, false, tlsExtBytes(extALPN, []byte{0, 3, 2, 'h', '2'}))[20:]),
			alert(40)},
			"771_c02b_16.AAMCaDI____<40"},
		{"truncated server hello is no server hello", []tlsRecord{plainRecord(recHandshake, hsMessage(hsServerHello, []byte{3, 3, 1}))}, ""},
		{"truncated extension list keeps what parsed", []tlsRecord{plainRecord(recHandshake, hsMessage(hsServerHello,
			bytes.Join([][]byte{{3, 3}, make([]byte, 32), {0, 0xc0, 0x2f, 0}, {0, 50}, {0xff, 1, 0, 1, 0}, {0, 35, 0}}, nil)))},
			"771_c02f_65281.____"},
	}
	for _, tc := range tests {
		if got := parseTranscript(tc.recs, nil).atsfString(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestCombineATSF(t *testing.T) {
	raws := []string{"771_1301_43.AwQ-51.23_5.-16.AAMCaDI-0.__43.AwQ-51.23_5.", "______<40"}
	fp, id := CombineATSF(raws)
	want := "771_1301_43.AwQ-51.23_16.AAMCaDI-0.__43.AwQ-51.23_|______<40"
	if fp != want {
		t.Errorf("combined %q, want %q", fp, want)
	}
	if sum := sha256.Sum256([]byte(want)); id != hex.EncodeToString(sum[:]) {
		t.Errorf("id %s", id)
	}
	if fp, id := CombineATSF([]string{"771_3c_35.____", ""}); fp != "" || id != "" {
		t.Errorf("a missing answer must drop the fingerprint: %q %q", fp, id)
	}
	for in, out := range map[string]string{
		"_18.-5._":     "_18._",
		"_5.-18._":     "_18._",
		"_5._":         "__",
		"_65281.-5.<5": "_65281.<5",
		"_51.5-5.":     "_51.5",
	} {
		if got := stripStatusRequest(in); got != out {
			t.Errorf("stripStatusRequest(%q) = %q, want %q", in, got, out)
		}
	}
}

func TestKeyLog(t *testing.T) {
	var k keyLog
	_, _ = k.Write([]byte("CLIENT_HANDSHAKE_TRAFFIC_SECRET 00 aa\nSERVER_HANDSHAKE_TRAFFIC_SECRET 00 0102\n"))
	if got := k.secret(serverHSLabel); !bytes.Equal(got, []byte{1, 2}) {
		t.Errorf("secret %x", got)
	}
	if _, err := k.Write(make([]byte, keyLogCap)); err == nil {
		t.Error("key log is unbounded")
	}
}

func TestATSFDefinitions(t *testing.T) {
	defs, err := loadATSFDefs()
	if err != nil {
		t.Fatal(err)
	}
	// docs/ATSF.md §1.2: observed key shares and psk modes.
	wantShares := map[string]string{"random6306": "[{29 false}]", "random7225": "[{2570 true}]", "random7590": "[{2570 true} {29 false}]", "random9428": "[{29 false}]"}
	for _, d := range defs {
		got := fmt.Sprint(d.KeyShares)
		want := wantShares[d.Name]
		if want == "" {
			want = "[]"
		}
		if got != want {
			t.Errorf("%s key shares %s, want %s", d.Name, got, want)
		}
		if d.Name == "random6306" && !bytes.Equal(d.PSKModes, []byte{1}) {
			t.Errorf("random6306 psk modes %v, want [1] (reference override)", d.PSKModes)
		}
		if d.Name == "random7590" && !bytes.Equal(d.PSKModes, []byte{0}) {
			t.Errorf("random7590 psk modes %v, want [0]", d.PSKModes)
		}
	}
	if n := ATSFNotice(); !bytes.Contains([]byte(n), []byte("CC BY 4.0")) || !bytes.Contains([]byte(n), []byte("Sosnowski")) {
		t.Errorf("NOTICE lost its attribution: %q", n)
	}
	if _, err := parseATSFDef("x", []byte(`{"Ciphers":[4865],"CompressionMethods":"AA==","Version":771,"Bogus":1}`)); err == nil {
		t.Error("unknown field accepted")
	}
	if _, err := parseATSFDef("x", []byte(`{"Ciphers":[4865],"CompressionMethods":"AA==","Version":771,"Padding":1}`)); err == nil {
		t.Error("unsupported padding accepted")
	}
}
