package probe

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha1" // SHA-1 signatures of TLS 1.2 servers
	"crypto/x509"
	"slices"
)

// tls12Completes reports whether utls, having accepted the ServerHello of
// the TLS 1.2 flight in t, would also accept the rest of it (certificate,
// ServerKeyExchange) and so finish the handshake: what decides whether a
// version is reported for the ClientHello. It checks what utls checks —
// the leaf parses and carries a key of the kind the suite needs, the
// ECDHE group was offered and is one utls computes, the point is valid,
// the signature algorithm was offered and the signature verifies — but
// without the ECDHE key generation and agreement (a P-521 one costs more
// than the rest of the probe). It says false whenever it is not sure
// (TLS 1.0/1.1 signatures, a signature algorithm the ClientHello did not
// list, Ed25519, unusual keys): the handshake
// then runs to its end as before. clientRandom is the ClientHello's; leaves
// (may be nil) keeps the target's parsed leaf across its ClientHellos.
func tls12Completes(t *transcript, d *atsfDef, clientRandom []byte, leaves *leafCache) bool {
	if t.tls13 || t.negotiated != 0x0303 || len(clientRandom) != 32 || t.chainLen == 0 || len(t.chain) == 0 {
		return false
	}
	leaf, err := leaves.parse(t.chain[0])
	if err != nil {
		return false
	}
	rsaKey, isRSA := leaf.PublicKey.(*rsa.PublicKey)
	ecKey, isEC := leaf.PublicKey.(*ecdsa.PublicKey)
	if isRSA && (rsaKey.N.BitLen() < 1024 || rsaKey.N.BitLen() > 8192) {
		return false
	}
	if t.ske == nil {
		// RSA key exchange: the client encrypts to the leaf's RSA key.
		return slices.Contains(rsaKexSuites, t.cipher) && isRSA
	}
	ecdsaSuite := slices.Contains(ecdheECDSASuites, t.cipher)
	if !slices.Contains(ecdheRSASuites, t.cipher) && !ecdsaSuite || ecdsaSuite != isEC || !ecdsaSuite != isRSA {
		return false
	}
	s := byteString(t.ske)
	curveType, ok1 := s.u8()
	group, ok2 := s.u16()
	point, ok3 := s.vec8()
	if !ok1 || !ok2 || !ok3 || curveType != 3 || !slices.Contains(d.Groups, group) {
		return false
	}
	params := t.ske[:len(t.ske)-len(s)]
	var curve ecdh.Curve
	switch group {
	case 23:
		curve = ecdh.P256()
	case 24:
		curve = ecdh.P384()
	case 25:
		curve = ecdh.P521()
	case 29:
		curve = ecdh.X25519()
	default:
		return false
	}
	if _, err := curve.NewPublicKey(point); err != nil {
		return false
	}
	if group == 29 && x25519LowOrder(point) {
		return false // an all-zero secret, which utls refuses
	}
	alg, ok1 := s.u16()
	sig, ok2 := s.vec16()
	if !ok1 || !ok2 || len(s) != 0 || !slices.Contains(d.SigAlgs, alg) {
		return false
	}
	var h crypto.Hash
	switch alg {
	case 0x0201, 0x0203:
		h = crypto.SHA1 // utls takes it in TLS 1.2 when offered
	case 0x0401, 0x0403, 0x0804:
		h = crypto.SHA256
	case 0x0501, 0x0503, 0x0805:
		h = crypto.SHA384
	case 0x0601, 0x0603, 0x0806:
		h = crypto.SHA512
	default:
		return false
	}
	hh := h.New()
	hh.Write(clientRandom)
	hh.Write(t.serverRandom[:])
	hh.Write(params)
	digest := hh.Sum(nil)
	switch alg {
	case 0x0201, 0x0401, 0x0501, 0x0601:
		return isRSA && rsa.VerifyPKCS1v15(rsaKey, h, digest, sig) == nil
	case 0x0804, 0x0805, 0x0806:
		return isRSA && rsa.VerifyPSS(rsaKey, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}) == nil
	default:
		return isEC && ecdsa.VerifyASN1(ecKey, digest, sig)
	}
}

// leafCache is the last leaf certificate parsed for one target: its
// ClientHellos mostly get the same one, and parsing it cost more than the
// rest of the check. The zero value is ready; nil parses every time.
type leafCache struct {
	der  []byte
	cert *x509.Certificate
	err  error
}

func (c *leafCache) parse(der []byte) (*x509.Certificate, error) {
	if c == nil {
		return x509.ParseCertificate(der)
	}
	if c.der == nil || !bytes.Equal(c.der, der) {
		c.der = der
		c.cert, c.err = x509.ParseCertificate(der)
	}
	return c.cert, c.err
}

// x25519LowOrder reports whether X25519 with the public value u gives the
// all-zero secret for every private key (RFC 7748 §6.1: the points of small
// order), what crypto/ecdh's ECDH refuses, without a scalar multiplication.
// The top bit is ignored as X25519 ignores it; the rest is the value itself
// or, for the two non-canonical encodings of 0 and 1, the value plus p.
func x25519LowOrder(u []byte) bool {
	if len(u) != 32 {
		return false
	}
	var v [32]byte
	copy(v[:], u)
	v[31] &= 0x7f
	for _, bad := range &x25519SmallOrder {
		if v == bad {
			return true
		}
	}
	return false
}

// x25519SmallOrder lists the little-endian encodings (top bit clear) of the
// u-coordinates of small order: 0, 1, the two points of order 8, p-1, p and
// p+1 (p = 2^255-19).
var x25519SmallOrder = [7][32]byte{
	{},
	{1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// The TLS 1.2 suites utls implements, by key exchange.
var (
	rsaKexSuites     = []uint16{0x0005, 0x000a, 0x002f, 0x0035, 0x003c, 0x009c, 0x009d}
	ecdheRSASuites   = []uint16{0xc011, 0xc012, 0xc013, 0xc014, 0xc027, 0xc02f, 0xc030, 0xcca8}
	ecdheECDSASuites = []uint16{0xc007, 0xc009, 0xc00a, 0xc023, 0xc02b, 0xc02c, 0xcca9}
)
