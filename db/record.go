package db

import (
	"fmt"
	"strings"
	"time"

	"github.com/stackprint/stackprint"
)

// Fingerprint kinds the DB stores.
const (
	KindJARM       = "jarm"
	KindATSF       = "atsf"
	KindCertSHA256 = "cert_sha256"
	KindCertSHA1   = "cert_sha1"
)

// Confidence levels of a record.
const (
	ConfidenceLow    = "low"
	ConfidenceMedium = "medium"
	ConfidenceHigh   = "high"
)

// Record is one DB entry: a fingerprint and what the operator knows about it.
type Record struct {
	Kind       string    `json:"kind"`
	Value      string    `json:"value"`
	Label      string    `json:"label"`
	Category   string    `json:"category"`
	Source     string    `json:"source"`
	Confidence string    `json:"confidence"`
	Notes      string    `json:"notes"`
	BlockCount uint64    `json:"block_count"`
	TopCount   uint64    `json:"top_count"`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
}

// hexLen returns the number of hex digits a value of kind has, 0 for an
// unknown kind.
func hexLen(kind string) int {
	switch kind {
	case KindJARM:
		return 62
	case KindATSF, KindCertSHA256:
		return 64
	case KindCertSHA1:
		return 40
	}
	return 0
}

// ValidateRecord normalises r in place (trimmed fields, lower-case kind,
// value and confidence, colons stripped from certificate hashes, confidence
// defaulted to medium) and reports the first invalid field, naming the field
// and its value.
func ValidateRecord(r *Record) error {
	kind, value, err := normaliseKey(r.Kind, r.Value)
	if err != nil {
		return err
	}
	r.Kind, r.Value = kind, value

	r.Label = strings.TrimSpace(r.Label)
	r.Category = strings.TrimSpace(r.Category)
	r.Source = strings.TrimSpace(r.Source)
	if r.Label == "" {
		return fmt.Errorf("label: required")
	}
	// Labels, categories and sources end up in TSV logs and on terminals;
	// a control character there is a broken list, not data.
	for _, f := range []struct{ name, v string }{
		{"label", r.Label}, {"category", r.Category}, {"source", r.Source},
	} {
		if i := strings.IndexFunc(f.v, isControl); i >= 0 {
			return fmt.Errorf("%s %q: control character at byte %d", f.name, f.v, i)
		}
	}

	r.Confidence = strings.ToLower(strings.TrimSpace(r.Confidence))
	switch r.Confidence {
	case "":
		r.Confidence = ConfidenceMedium
	case ConfidenceLow, ConfidenceMedium, ConfidenceHigh:
	default:
		return fmt.Errorf("confidence %q: want low, medium or high", r.Confidence)
	}
	return nil
}

// normaliseKey validates kind and value and returns them in the form used in
// keys: lower-case hex, no colons.
func normaliseKey(kind, value string) (string, string, error) {
	kind = strings.ToLower(strings.TrimSpace(kind))
	want := hexLen(kind)
	if want == 0 {
		return "", "", fmt.Errorf("kind %q: unknown, want jarm, atsf, cert_sha256 or cert_sha1", kind)
	}
	v := strings.ToLower(strings.TrimSpace(value))
	if kind == KindCertSHA256 || kind == KindCertSHA1 {
		// openssl and Suricata print certificate hashes as aa:bb:…
		v = strings.ReplaceAll(v, ":", "")
	}
	if len(v) != want {
		return "", "", fmt.Errorf("value %q: a %s must be %d hex characters, got %d", value, kind, want, len(v))
	}
	if i := strings.IndexFunc(v, func(c rune) bool { return !isHex(c) }); i >= 0 {
		return "", "", fmt.Errorf("value %q: not hex at character %d", value, i+1)
	}
	if kind == KindJARM && v == stackprint.ZeroJARM {
		return "", "", fmt.Errorf("value %q: the all-zero JARM means no server answered; it is never a fingerprint", value)
	}
	return kind, v, nil
}

func isHex(c rune) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func isControl(c rune) bool { return c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) }

// key returns the bucket key of a normalised kind and value.
func key(kind, value string) []byte {
	k := make([]byte, 0, len(kind)+1+len(value))
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, value...)
}
