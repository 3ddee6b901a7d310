package probe

import (
	"bytes"
	"crypto"
	"crypto/dsa" // deprecated, but old servers still present DSA keys; only the size is read
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/stackprint/stackprint"
)

// Limits on what a hostile certificate can put into a result.
const (
	maxSANs      = 100
	maxNameBytes = 1024
)

// CertFactsFromChain describes chain[0], the leaf a server sent, with
// chain as the server sent it. The hashes and chain length are always set
// for a non-empty leaf; when the leaf does not parse, ParseError says why
// and the other fields stay empty, so a certificate Go rejects still
// matches by hash (abuse.ch SSLBL lists SHA-1 of the DER).
func CertFactsFromChain(chain [][]byte) (*stackprint.CertFacts, error) {
	if len(chain) == 0 || len(chain[0]) == 0 {
		return nil, errors.New("cert: no certificate")
	}
	return certFacts(chain[0], len(chain)), nil
}

func certFacts(leaf []byte, chainLen int) *stackprint.CertFacts {
	return certFactsParsed(leaf, chainLen, nil)
}

// certFactsParsed is certFacts with the leaf already parsed by the TLS
// client (used only when it is these very bytes), which saves parsing it
// twice.
func certFactsParsed(leaf []byte, chainLen int, parsed *x509.Certificate) *stackprint.CertFacts {
	s256 := sha256.Sum256(leaf)
	s1 := sha1.Sum(leaf)
	f := &stackprint.CertFacts{
		SHA256:   hex.EncodeToString(s256[:]),
		SHA1:     hex.EncodeToString(s1[:]),
		ChainLen: chainLen,
	}
	c := parsed
	if c == nil || !bytes.Equal(c.Raw, leaf) {
		var err error
		if c, err = x509.ParseCertificate(leaf); err != nil {
			f.ParseError = shortError(err)
			return f
		}
	}
	f.Subject = boundedString(c.Subject.String())
	f.Issuer = boundedString(c.Issuer.String())
	if c.SerialNumber != nil {
		f.Serial = boundedString(hex.EncodeToString(c.SerialNumber.Bytes()))
		if c.SerialNumber.Sign() < 0 {
			f.Serial = "-" + f.Serial
		}
	}
	f.NotBefore, f.NotAfter = c.NotBefore.UTC(), c.NotAfter.UTC()
	f.SigAlg = c.SignatureAlgorithm.String()
	f.KeyType, f.KeyBits = keyTypeBits(c.PublicKey)
	spki := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	f.SPKISHA256 = hex.EncodeToString(spki[:])
	f.SANs = sans(c)
	f.SelfSigned = selfSigned(c)
	return f
}

func keyTypeBits(pub any) (string, int) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ECDSA", k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	case *dsa.PublicKey:
		return "DSA", k.P.BitLen()
	}
	return "unknown", 0
}

// sans lists DNS names, IPs, e-mail addresses and URIs, at most maxSANs.
func sans(c *x509.Certificate) []string {
	var out []string
	add := func(s string) {
		if len(out) < maxSANs {
			out = append(out, boundedString(s))
		}
	}
	for _, n := range c.DNSNames {
		add(n)
	}
	for _, ip := range c.IPAddresses {
		add(ip.String())
	}
	for _, e := range c.EmailAddresses {
		add(e)
	}
	for _, u := range c.URIs {
		add(u.String())
	}
	return out
}

// selfSigned: issuer equals subject and the certificate's own key verifies
// its signature. x509 refuses SHA-1 signatures, which self-signed malware
// certificates still use, so those are checked by hand.
func selfSigned(c *x509.Certificate) bool {
	if !bytes.Equal(c.RawIssuer, c.RawSubject) {
		return false
	}
	err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature)
	if err == nil {
		return true
	}
	var insecure x509.InsecureAlgorithmError
	if !errors.As(err, &insecure) {
		return false
	}
	digest := sha1.Sum(c.RawTBSCertificate)
	switch c.SignatureAlgorithm {
	case x509.SHA1WithRSA:
		k, ok := c.PublicKey.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, crypto.SHA1, digest[:], c.Signature) == nil
	case x509.ECDSAWithSHA1:
		k, ok := c.PublicKey.(*ecdsa.PublicKey)
		return ok && ecdsa.VerifyASN1(k, digest[:], c.Signature)
	}
	return false
}

// boundedString makes attacker-chosen text safe to log: valid UTF-8,
// bounded length.
func boundedString(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxNameBytes {
		cut := maxNameBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// certError explains why no certificate facts exist.
func certError(tr *transcript, herr error) string {
	switch {
	case tr.undecrypted:
		return "cert: TLS 1.3 Certificate not decrypted: " + shortError(herr)
	case herr != nil:
		return "cert: no certificate: " + shortError(herr)
	}
	return fmt.Sprintf("cert: server sent no certificate (version %04x)", tr.negotiated)
}
