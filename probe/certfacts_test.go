package probe

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

func mustCreateCert(t testing.TB, tmpl, parent *x509.Certificate, pub, priv any) []byte {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, priv)
	if err != nil {
		t.Fatalf("create certificate: %v", err)
	}
	return der
}

func ed25519Cert(t testing.TB) []byte {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "ed"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, EmailAddresses: []string{"a@b.test"}}
	return mustCreateCert(t, tmpl, tmpl, pub, priv)
}

// sha1SelfSigned is what much C2 tooling still presents: self-signed with
// SHA1WithRSA, which crypto/x509 no longer verifies.
func sha1SelfSigned(t testing.TB) []byte {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "c2"}, NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1e9, 0),
		SignatureAlgorithm: x509.SHA1WithRSA}
	return mustCreateCert(t, tmpl, tmpl, &k.PublicKey, k)
}

func TestCertFacts(t *testing.T) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ca := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "Test CA", Organization: []string{"Org"}},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(2e9, 0), IsCA: true, BasicConstraintsValid: true}
	caDER := mustCreateCert(t, ca, ca, caKey.Public(), caKey)
	ca, _ = x509.ParseCertificate(caDER)
	leafKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	leafDER := mustCreateCert(t, &x509.Certificate{SerialNumber: big.NewInt(0x1234), Subject: pkix.Name{CommonName: "leaf.test"},
		NotBefore: time.Unix(100, 0), NotAfter: time.Unix(200, 0), DNSNames: []string{"leaf.test", "www.leaf.test"}}, ca, &leafKey.PublicKey, caKey)

	tests := []struct {
		name  string
		chain [][]byte
		check func(t *testing.T, f string)
		want  string // substring of the rendered facts
	}{
		{"ca-signed rsa leaf", [][]byte{leafDER, caDER}, nil, "subject=CN=leaf.test issuer=CN=Test CA,O=Org serial=1234 sans=[leaf.test www.leaf.test] self=false key=RSA/2048 sig=ECDSA-SHA384 chain=2 nb=1970-01-01T00:01:40Z na=1970-01-01T00:03:20Z"},
		{"self-signed ecdsa ca", [][]byte{caDER}, nil, "self=true key=ECDSA/384 sig=ECDSA-SHA384 chain=1"},
		{"ed25519 with ip and mail", [][]byte{ed25519Cert(t)}, nil, "sans=[127.0.0.1 a@b.test] self=true key=Ed25519/256"},
		{"sha1 self-signed", [][]byte{sha1SelfSigned(t)}, nil, "self=true key=RSA/1024 sig=SHA1-RSA"},
		{"garbage keeps hashes", [][]byte{[]byte("garbage")}, nil, "parse_error=x509:"},
	}
	for _, tc := range tests {
		f, err := CertFactsFromChain(tc.chain)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		s256, s1 := sha256.Sum256(tc.chain[0]), sha1.Sum(tc.chain[0])
		if f.SHA256 != hex.EncodeToString(s256[:]) || f.SHA1 != hex.EncodeToString(s1[:]) {
			t.Errorf("%s: hashes %s %s", tc.name, f.SHA256, f.SHA1)
		}
		got := "subject=" + f.Subject + " issuer=" + f.Issuer + " serial=" + f.Serial + " sans=" + strings.Join([]string{"[", strings.Join(f.SANs, " "), "]"}, "") +
			" self=" + map[bool]string{true: "true", false: "false"}[f.SelfSigned] + " key=" + f.KeyType + "/" + itoaT(f.KeyBits) +
			" sig=" + f.SigAlg + " chain=" + itoaT(f.ChainLen) + " nb=" + f.NotBefore.Format(time.RFC3339) + " na=" + f.NotAfter.Format(time.RFC3339) +
			" parse_error=" + f.ParseError
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s:\n got %s\nwant …%s…", tc.name, got, tc.want)
		}
	}
	if _, err := CertFactsFromChain(nil); err == nil {
		t.Error("empty chain accepted")
	}
}

func itoaT(i int) string { return big.NewInt(int64(i)).String() }

func TestCertFactsBounds(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var names []string
	for i := range 300 {
		names = append(names, strings.Repeat("a", 60)+itoaT(i)+".test")
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: strings.Repeat("x", 60), Organization: []string{strings.Repeat("o", 2000)}},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1, 0), DNSNames: names}
	f, err := CertFactsFromChain([][]byte{mustCreateCert(t, tmpl, tmpl, k.Public(), k)})
	if err != nil {
		t.Fatal(err)
	}
	if len(f.SANs) != maxSANs || len(f.Subject) > maxNameBytes+len("…") {
		t.Errorf("unbounded facts: %d SANs, subject %d bytes", len(f.SANs), len(f.Subject))
	}
}
