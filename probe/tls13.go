package probe

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// keyLog receives the NSS key log lines of one handshake (Config.KeyLogWriter).
// The TLS client writes the handshake traffic secrets right after it
// processed the final ServerHello, before it reads EncryptedExtensions, so
// every later failure leaves them here. Only the handshake's own goroutine
// writes to it.
type keyLog struct {
	buf []byte
	// The last secret looked up, for as long as nothing was written:
	// the ATSF prober asks before every record.
	seenLen     int
	seenLabel   string
	seenSecret  []byte
	seenIsValid bool
}

// keyLogCap bounds the log; one handshake writes four lines of < 300 bytes.
const keyLogCap = 4096

func (k *keyLog) Write(p []byte) (int, error) {
	if len(k.buf)+len(p) > keyLogCap {
		return 0, errors.New("key log full")
	}
	k.buf = append(k.buf, p...)
	return len(p), nil
}

// secret returns the last secret logged under label, or nil.
func (k *keyLog) secret(label string) []byte {
	if k.seenIsValid && k.seenLen == len(k.buf) && k.seenLabel == label {
		return k.seenSecret
	}
	out := k.lookup(label)
	k.seenLen, k.seenLabel, k.seenSecret, k.seenIsValid = len(k.buf), label, out, true
	return out
}

func (k *keyLog) lookup(label string) []byte {
	var out []byte
	for line := range bytes.SplitSeq(k.buf, []byte("\n")) {
		f := bytes.Fields(line)
		if len(f) != 3 || string(f[0]) != label {
			continue
		}
		if s, err := hex.DecodeString(string(f[2])); err == nil {
			out = s
		}
	}
	return out
}

// tls13Suite describes a TLS 1.3 cipher suite enough to decrypt records.
type tls13Suite struct {
	hash   func() hash.Hash
	keyLen int
	aead   func(key []byte) (cipher.AEAD, error)
}

func aesGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// tls13SuiteByID knows the suites utls can negotiate; CCM (1304, 1305)
// never gets handshake secrets, so it needs no decryptor.
func tls13SuiteByID(id uint16) (tls13Suite, bool) {
	switch id {
	case 0x1301:
		return tls13Suite{sha256.New, 16, aesGCM}, true
	case 0x1302:
		return tls13Suite{sha512.New384, 32, aesGCM}, true
	case 0x1303:
		return tls13Suite{sha256.New, chacha20poly1305.KeySize, chacha20poly1305.New}, true
	}
	return tls13Suite{}, false
}

// hkdfExpandLabel is RFC 8446 §7.1 HKDF-Expand-Label with an empty context.
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, length int) ([]byte, error) {
	full := "tls13 " + label
	info := make([]byte, 0, 2+1+len(full)+1)
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(len(full)))
	info = append(info, full...)
	info = append(info, 0) // empty context
	return hkdf.Expand(h, secret, string(info), length)
}

// tls13Decrypter opens the records protected by one traffic secret.
type tls13Decrypter struct {
	aead cipher.AEAD
	iv   []byte
	seq  uint64
}

func newTLS13Decrypter(suiteID uint16, secret []byte) (*tls13Decrypter, error) {
	s, ok := tls13SuiteByID(suiteID)
	if !ok {
		return nil, fmt.Errorf("no decryptor for suite %04x", suiteID)
	}
	key, err := hkdfExpandLabel(s.hash, secret, "key", s.keyLen)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	iv, err := hkdfExpandLabel(s.hash, secret, "iv", 12)
	if err != nil {
		return nil, fmt.Errorf("derive iv: %w", err)
	}
	a, err := s.aead(key)
	if err != nil {
		return nil, fmt.Errorf("aead: %w", err)
	}
	return &tls13Decrypter{aead: a, iv: iv}, nil
}

// open decrypts one application_data record and returns the inner content
// type and the plaintext without padding.
func (d *tls13Decrypter) open(rec tlsRecord) (uint8, []byte, error) {
	if len(rec.body) < d.aead.Overhead() {
		return 0, nil, errors.New("record shorter than the AEAD tag")
	}
	nonce := make([]byte, len(d.iv))
	copy(nonce, d.iv)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], d.seq)
	for i := range seq {
		nonce[len(nonce)-8+i] ^= seq[i]
	}
	aad := []byte{rec.typ, byte(rec.vers >> 8), byte(rec.vers), byte(len(rec.body) >> 8), byte(len(rec.body))}
	pt, err := d.aead.Open(nil, nonce, rec.body, aad)
	if err != nil {
		return 0, nil, fmt.Errorf("decrypt record %d: %w", d.seq, err)
	}
	d.seq++
	i := len(pt) - 1
	for i >= 0 && pt[i] == 0 {
		i--
	}
	if i < 0 {
		return 0, nil, errors.New("decrypted record has no content type")
	}
	return pt[i], pt[:i], nil
}

// seal is open's inverse; tests and the fuzz seed corpus build encrypted
// flights with it.
func (d *tls13Decrypter) seal(inner uint8, pt []byte) tlsRecord {
	nonce := make([]byte, len(d.iv))
	copy(nonce, d.iv)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], d.seq)
	for i := range seq {
		nonce[len(nonce)-8+i] ^= seq[i]
	}
	d.seq++
	n := len(pt) + 1 + d.aead.Overhead()
	aad := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	body := d.aead.Seal(nil, nonce, append(append([]byte(nil), pt...), inner), aad)
	return tlsRecord{typ: 23, vers: 0x0303, body: body}
}
