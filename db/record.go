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

// Kinds lists the fingerprint kinds in key order.
func Kinds() []string { return []string{KindATSF, KindCertSHA1, KindCertSHA256, KindJARM} }

// Confidence levels of a record.
const (
	ConfidenceLow    = "low"
	ConfidenceMedium = "medium"
	ConfidenceHigh   = "high"
)

// Field length limits: labels, categories and sources end up in TSV logs,
// Zeek Intel files and on terminals.
const (
	maxShortField = 256
	maxNotes      = 4096
)

// Record is one DB entry: a fingerprint and what the operator knows about it
// (schema version 2, see the package doc).
type Record struct {
	Kind       string `json:"kind"`
	Value      string `json:"value"`
	Label      string `json:"label"`
	Category   string `json:"category"`
	Source     string `json:"source"`
	Confidence string `json:"confidence"`
	Notes      string `json:"notes"`
	// BlockCount and TopCount are the block-listed and top-list (benign)
	// targets `stackprint db learn` saw with this fingerprint.
	BlockCount uint64 `json:"block_count"`
	TopCount   uint64 `json:"top_count"`
	// FirstSeen and LastSeen bound when the fingerprint was seen in the
	// wild: a feed's listing date, a learn run, or a probe by the daemon.
	// Zero when never seen.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	// Added and Updated are when the entry was created and last curated.
	Added   time.Time `json:"added,omitzero"`
	Updated time.Time `json:"updated,omitzero"`
	// Hellos are the ten per-ClientHello strings of an atsf entry, in
	// fingerprint order, status_request removed (docs/ATSF.md §2.2): what
	// near matching compares answer by answer. Empty when the source gave
	// only the combined id.
	Hellos []string `json:"hellos,omitempty"`
}

// Key is the identity of a record: kind and normalised value.
type Key struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (k Key) String() string { return k.Kind + " " + k.Value }

// Key returns the identity of r.
func (r Record) Key() Key { return Key{Kind: r.Kind, Value: r.Value} }

// Score returns B/(B+T) (docs/ATSF.md §3) and whether there is any observation
// behind it.
func (r Record) Score() (float64, bool) { return score(r.BlockCount, r.TopCount) }

func score(block, top uint64) (float64, bool) {
	if block+top == 0 {
		return 0, false
	}
	return float64(block) / float64(block+top), true
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
		if len(f.v) > maxShortField {
			return fmt.Errorf("%s %.40q…: %d bytes, at most %d", f.name, f.v, len(f.v), maxShortField)
		}
	}
	if len(r.Notes) > maxNotes {
		return fmt.Errorf("notes: %d bytes, at most %d", len(r.Notes), maxNotes)
	}

	r.Confidence = strings.ToLower(strings.TrimSpace(r.Confidence))
	switch r.Confidence {
	case "":
		r.Confidence = ConfidenceMedium
	case ConfidenceLow, ConfidenceMedium, ConfidenceHigh:
	default:
		return fmt.Errorf("confidence %q: want low, medium or high", r.Confidence)
	}
	if err := validateHellos(r); err != nil {
		return err
	}
	if !r.FirstSeen.IsZero() && !r.LastSeen.IsZero() && r.LastSeen.Before(r.FirstSeen) {
		return fmt.Errorf("last_seen %s: before first_seen %s", r.LastSeen.Format(time.RFC3339), r.FirstSeen.Format(time.RFC3339))
	}
	return nil
}

// NormaliseKey validates a kind and value and returns the key they are
// stored under (lower-case hex, no colons).
func NormaliseKey(kind, value string) (Key, error) {
	k, v, err := normaliseKey(kind, value)
	return Key{Kind: k, Value: v}, err
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
	// A JARM or ATSF taken through STARTTLS is its own fingerprint: the
	// same stack answers differently behind a mail server's greeting, so
	// it is stored and matched as "PROTOCOL:hex" (smtp:2ad2…), apart from
	// direct TLS. A certificate is the same either way.
	proto := ""
	if p, rest, ok := strings.Cut(v, ":"); ok && (kind == KindJARM || kind == KindATSF) {
		switch {
		case stackprint.IsStartTLSProtocol(p):
			proto, v = p+":", rest
		case strings.IndexFunc(p, func(c rune) bool { return !isHex(c) }) >= 0:
			return "", "", fmt.Errorf("value %q: %q is no STARTTLS protocol (want %s, or no prefix for direct TLS)", value, p, strings.Join(stackprint.StartTLSProtocols(), ", "))
		}
	}
	if kind == KindCertSHA256 || kind == KindCertSHA1 {
		// openssl and Suricata print certificate hashes as aa:bb:…
		v = strings.ReplaceAll(v, ":", "")
	}
	if len(v) != want {
		hint := ""
		if kind == KindATSF {
			hint = " (the sha256 of the combined ATSF string)"
		}
		return "", "", fmt.Errorf("value %q: a %s must be %d hex characters%s, got %d", value, kind, want, hint, len(v))
	}
	if i := strings.IndexFunc(v, func(c rune) bool { return !isHex(c) }); i >= 0 {
		return "", "", fmt.Errorf("value %q: not hex at character %d", value, i+1)
	}
	if kind == KindJARM && v == stackprint.ZeroJARM {
		return "", "", fmt.Errorf("value %q: the all-zero JARM means no server answered; it is never a fingerprint", value)
	}
	if strings.Trim(v, "0") == "" {
		return "", "", fmt.Errorf("value %q: all zeros is not a %s", value, kind)
	}
	return kind, proto + v, nil
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

// confidenceRank orders confidences; unknown is 0.
func confidenceRank(c string) int {
	switch c {
	case ConfidenceLow:
		return 1
	case ConfidenceMedium:
		return 2
	case ConfidenceHigh:
		return 3
	}
	return 0
}
