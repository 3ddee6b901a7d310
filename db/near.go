package db

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/stackprint/stackprint"
)

// Near matching (docs/ATSF.md §4).
//
// An ATSF entry that keeps its ten per-ClientHello strings (Record.Hellos)
// is indexed ten times, once per ClientHello position i, under a hash of
// the nine other strings ("leave one out"). A probe computes the same ten
// hashes and makes ten prefix lookups: an entry found under position i
// agrees with the probe on every answer but (perhaps) the i-th. Found under
// all ten it is the exact match; found under exactly one, it differs on
// that ClientHello only. Two positions cannot happen (agreeing on all but
// i and on all but j is agreeing on all). So a probe costs ten lookups and
// a count, never a scan, whatever the DB's size, and the index finds every
// entry with at least 9 of 10 equal answers. A lower agreement is not
// indexed: counting it would walk the posting lists of common answers
// (alerts a third of all servers send), a scan in disguise.
//
// A JARM entry is indexed under each of its halves: the first 30
// characters (the cipher and version chosen per ClientHello) and the last
// 32 (the hash of the extensions). A probe looks both up and reports the
// entries that share exactly one half.
const (
	bucketNearATSF = "near_atsf"
	bucketNearJARM = "near_jarm"
	// keyNearIndexed in meta records that the near buckets cover every
	// fingerprint (built by the writable Open that first saw the file).
	keyNearIndexed = "near_indexed"

	// ATSFHellos is the number of ATSF ClientHellos.
	ATSFHellos = 10
	// maxNearPerLookup bounds the entries read from one index lookup and
	// maxNear the near matches a probe returns (best first): a DB where
	// thousands of entries differ from a probe on one answer says nothing
	// more with all of them listed.
	maxNearPerLookup = 256
	maxNear          = 16
	jarmCipherHalf   = 30
)

// atsfHelloNames are the ClientHello names in fingerprint order
// (docs/ATSF.md §2.2; the same as probe.ATSFHelloNames, checked by a test).
var atsfHelloNames = [ATSFHellos]string{
	"random4520", "random458", "random6112", "random6306", "random6939",
	"random7225", "random7590", "random8273", "random9057", "random9428",
}

// ATSFHelloNames returns the ClientHello names in fingerprint order.
func ATSFHelloNames() []string { return slices.Clone(atsfHelloNames[:]) }

// StripStatusRequest removes status_request (5) entries from an ATSF
// string as the combined fingerprint does (docs/ATSF.md §2.2).
func StripStatusRequest(s string) string {
	s = strings.ReplaceAll(s, "-5.", "")
	s = strings.ReplaceAll(s, "_5.-", "_")
	return strings.ReplaceAll(s, "_5.", "_")
}

// HellosOf returns the ten per-ClientHello strings of a result as the DB
// keeps them (status_request removed; "" for a ClientHello without an
// answer), and false when the result has no ATSF part.
func HellosOf(a *stackprint.ATSF) ([]string, bool) {
	if a == nil || len(a.Hellos) != ATSFHellos {
		return nil, false
	}
	out := make([]string, ATSFHellos)
	n := 0
	for i, h := range a.Hellos {
		if h.Name != "" && h.Name != atsfHelloNames[i] {
			return nil, false
		}
		if h.Raw != "" {
			out[i] = StripStatusRequest(h.Raw)
			n++
		}
	}
	return out, n > 0
}

// ATSFID is the id of ten per-ClientHello strings: the sha256 hex of the
// combined string, "" when any is empty.
func ATSFID(hellos []string) string {
	if len(hellos) != ATSFHellos || slices.Contains(hellos, "") {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join(hellos, "|")))
	return hex.EncodeToString(sum[:])
}

// validateHellos checks the per-ClientHello strings of an ATSF record:
// ten, none empty, none with "|", status_request removed, and their
// combined hash equal to the record's value.
func validateHellos(r *Record) error {
	if len(r.Hellos) == 0 {
		r.Hellos = nil
		return nil
	}
	if r.Kind != KindATSF {
		return fmt.Errorf("hellos: only an atsf entry has per-ClientHello strings, not %s", r.Kind)
	}
	if len(r.Hellos) != ATSFHellos {
		return fmt.Errorf("hellos: %d strings, want %d (one per ClientHello, in the order %s)", len(r.Hellos), ATSFHellos, strings.Join(atsfHelloNames[:], ", "))
	}
	for i, h := range r.Hellos {
		switch {
		case h == "":
			return fmt.Errorf("hellos[%d] (%s): empty; an ATSF fingerprint needs all ten answers", i, atsfHelloNames[i])
		case strings.ContainsAny(h, "|\n"):
			return fmt.Errorf("hellos[%d] (%s): contains | or a newline", i, atsfHelloNames[i])
		case StripStatusRequest(h) != h:
			return fmt.Errorf("hellos[%d] (%s): keeps status_request (5.); remove it as the combined fingerprint does", i, atsfHelloNames[i])
		}
	}
	_, hexID := splitProto(r.Value)
	if id := ATSFID(r.Hellos); id != hexID {
		return fmt.Errorf("hellos: their combined sha256 is %s, not the value %s", id, hexID)
	}
	return nil
}

// splitProto splits a "smtp:hex" value into its STARTTLS prefix (with the
// colon) and the hex.
func splitProto(v string) (string, string) {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		return v[:i+1], v[i+1:]
	}
	return "", v
}

// leaveOneOut is the index hash of hellos without position skip, for
// STARTTLS prefix proto.
func leaveOneOut(proto string, hellos []string, skip int) [8]byte {
	h := fnv.New64a()
	h.Write([]byte(proto))
	for i, s := range hellos {
		h.Write([]byte{0xff})
		if i != skip {
			h.Write([]byte(s))
		}
	}
	var out [8]byte
	binary.BigEndian.PutUint64(out[:], h.Sum64())
	return out
}

// entryRef is how an index key names an entry: the value's 32 bytes, after
// its STARTTLS prefix when it has one.
func entryRef(value string) []byte {
	proto, h := splitProto(value)
	raw, err := hex.DecodeString(h)
	if err != nil {
		return []byte(value) // validated values are hex; never reached
	}
	return append([]byte(proto), raw...)
}

func refValue(ref []byte) string {
	if len(ref) < 32 {
		return string(ref)
	}
	return string(ref[:len(ref)-32]) + hex.EncodeToString(ref[len(ref)-32:])
}

// atsfIndexKey is position, hash, entry.
func atsfIndexKey(pos int, h [8]byte, ref []byte) []byte {
	k := make([]byte, 0, 9+len(ref))
	k = append(k, byte(pos))
	k = append(k, h[:]...)
	return append(k, ref...)
}

// jarmHalves returns the index prefixes of a JARM value: "c" + proto +
// the first 30 characters, and "e" + proto + the last 32, each ending in
// NUL.
func jarmHalves(value string) (ciphers, exts []byte) {
	proto, h := splitProto(value)
	if len(h) != 62 {
		return nil, nil
	}
	return []byte("c" + proto + h[:jarmCipherHalf] + "\x00"), []byte("e" + proto + h[jarmCipherHalf:] + "\x00")
}

// indexNear adds (add) or removes the near-index keys of r.
func indexNear(tx *bolt.Tx, r Record, add bool) error {
	var keys [][]byte
	var b *bolt.Bucket
	switch {
	case r.Kind == KindATSF && len(r.Hellos) == ATSFHellos:
		b = tx.Bucket([]byte(bucketNearATSF))
		proto, _ := splitProto(r.Value)
		ref := entryRef(r.Value)
		for i := range ATSFHellos {
			keys = append(keys, atsfIndexKey(i, leaveOneOut(proto, r.Hellos, i), ref))
		}
	case r.Kind == KindJARM:
		b = tx.Bucket([]byte(bucketNearJARM))
		c, e := jarmHalves(r.Value)
		if c == nil {
			return nil
		}
		keys = append(keys, append(c, r.Value...), append(e, r.Value...))
	default:
		return nil
	}
	if b == nil {
		return fmt.Errorf("near index of %s %s: bucket missing", r.Kind, r.Value)
	}
	for _, k := range keys {
		var err error
		if add {
			err = b.Put(k, nil)
		} else {
			err = b.Delete(k)
		}
		if err != nil {
			return fmt.Errorf("near index of %s %s: %w", r.Kind, r.Value, err)
		}
	}
	return nil
}

// ensureNearIndex builds the near buckets from the fingerprints once, for
// a file written before they existed (writable Open).
func ensureNearIndex(tx *bolt.Tx) error {
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil || meta.Get([]byte(keyNearIndexed)) != nil {
		return nil
	}
	for _, name := range []string{bucketNearATSF, bucketNearJARM} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	fp := tx.Bucket([]byte(bucketFingerprints))
	if fp != nil {
		err := fp.ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode key %q: %w", k, err)
			}
			return indexNear(tx, r, true)
		})
		if err != nil {
			return fmt.Errorf("build near index: %w", err)
		}
	}
	return meta.Put([]byte(keyNearIndexed), []byte("1"))
}

// NearIndexed reports whether the file's near index covers its
// fingerprints (false for a file only ever opened read-only since it was
// written by a stackprint without near matching).
func (d *DB) NearIndexed() bool {
	ok := false
	_ = d.view(func(tx *bolt.Tx) error {
		if m := tx.Bucket([]byte(bucketMeta)); m != nil {
			ok = m.Get([]byte(keyNearIndexed)) != nil
		}
		return nil
	})
	return ok
}

// Near returns the DB entries close to the fingerprints of r without being
// equal to them, best first (most answers equal, then confidence): ATSF
// entries with 9 of 10 answers equal and JARM entries with one equal half.
// The exact matches are Match's.
func (d *DB) Near(r stackprint.Result) ([]stackprint.Match, error) {
	var out []stackprint.Match
	err := d.view(func(tx *bolt.Tx) error {
		var err error
		out, err = nearIn(tx, r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("near matches of %s in %q: %w", r.Target, d.path, err)
	}
	return out, nil
}

func nearIn(tx *bolt.Tx, r stackprint.Result) ([]stackprint.Match, error) {
	proto := ""
	if r.StartTLS != "" {
		proto = r.StartTLS + ":"
	}
	var out []stackprint.Match
	if hellos, ok := HellosOf(r.ATSF); ok {
		ms, err := nearATSF(tx, proto, hellos)
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	if r.HasJARM() {
		ms, err := nearJARM(tx, proto+strings.ToLower(r.JARM))
		if err != nil {
			return nil, err
		}
		out = append(out, ms...)
	}
	slices.SortStableFunc(out, func(a, b stackprint.Match) int {
		if c := cmp.Compare(b.Near.Agree*b.Near.Of, a.Near.Agree*a.Near.Of); c != 0 {
			return c // 9 of 10 before 1 of 2
		}
		return cmp.Compare(confidenceRank(b.Confidence), confidenceRank(a.Confidence))
	})
	if len(out) > maxNear {
		out = out[:maxNear]
	}
	return out, nil
}

// nearATSF makes the ten leave-one-out lookups of a probe's answers.
func nearATSF(tx *bolt.Tx, proto string, hellos []string) ([]stackprint.Match, error) {
	b := tx.Bucket([]byte(bucketNearATSF))
	if b == nil {
		return nil, nil
	}
	type hit struct {
		n, pos int
	}
	hits := map[string]*hit{}
	var order []string
	c := b.Cursor()
	for i := range ATSFHellos {
		prefix := atsfIndexKey(i, leaveOneOut(proto, hellos, i), nil)
		n := 0
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && n < maxNearPerLookup; k, _ = c.Next() {
			n++
			ref := string(k[len(prefix):])
			h := hits[ref]
			if h == nil {
				h = &hit{pos: i}
				hits[ref] = h
				order = append(order, ref)
			}
			h.n++
		}
	}
	var out []stackprint.Match
	for _, ref := range order {
		h := hits[ref]
		if h.n != 1 {
			continue // found under every position: the exact match
		}
		value := refValue([]byte(ref))
		rec, ok, err := getRecord(tx, KindATSF, value)
		if err != nil {
			return nil, err
		}
		if !ok || len(rec.Hellos) != ATSFHellos {
			continue // removed since; the index entry is stale
		}
		agree := 0
		var differs, details []string
		for i := range ATSFHellos {
			if rec.Hellos[i] == hellos[i] {
				agree++
				continue
			}
			differs = append(differs, atsfHelloNames[i])
			details = append(details, DescribeATSFDiff(hellos[i], rec.Hellos[i]))
		}
		if agree < ATSFHellos-1 {
			continue // a hash collision
		}
		m := matchOf(rec)
		m.Near = &stackprint.Near{Agree: agree, Of: ATSFHellos, Differs: differs, Details: details}
		out = append(out, m)
	}
	return out, nil
}

// nearJARM looks up both halves of a JARM.
func nearJARM(tx *bolt.Tx, value string) ([]stackprint.Match, error) {
	b := tx.Bucket([]byte(bucketNearJARM))
	if b == nil {
		return nil, nil
	}
	ciphers, exts := jarmHalves(value)
	if ciphers == nil {
		return nil, nil
	}
	var out []stackprint.Match
	c := b.Cursor()
	for _, half := range []struct {
		prefix  []byte
		differs string
	}{{ciphers, stackprint.NearJARMExtensions}, {exts, stackprint.NearJARMCiphers}} {
		n := 0
		for k, _ := c.Seek(half.prefix); k != nil && bytes.HasPrefix(k, half.prefix) && n < maxNearPerLookup; k, _ = c.Next() {
			n++
			v := string(k[len(half.prefix):])
			if v == value {
				continue // the exact match
			}
			rec, ok, err := getRecord(tx, KindJARM, v)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			m := matchOf(rec)
			m.Near = &stackprint.Near{Agree: 1, Of: 2, Differs: []string{half.differs}}
			out = append(out, m)
		}
	}
	return out, nil
}

// extNames are the extensions an analyst knows by name.
var extNames = map[string]string{
	"0": "SNI ack", "1": "max_fragment_length", "10": "supported_groups", "11": "ec_point_formats",
	"13": "signature_algorithms", "15": "heartbeat", "16": "ALPN", "18": "SCT", "23": "extended_master_secret",
	"28": "record_size_limit", "35": "session_ticket", "43": "supported_versions", "44": "cookie",
	"45": "psk_key_exchange_modes", "47": "certificate_authorities", "50": "signature_algorithms_cert",
	"51": "key_share", "65281": "renegotiation_info",
}

// alertFeature names what an alert a server sends instead of a handshake
// says about the ClientHello.
var alertFeature = map[string]string{
	"40": "handshake_failure", "47": "illegal_parameter", "50": "decode_error", "70": "version",
	"71": "insufficient_security", "80": "internal_error", "86": "inappropriate_fallback",
	"109": "missing_extension", "110": "unsupported_extension", "112": "SNI", "120": "ALPN",
}

var atsfFields = [...]string{"version", "cipher", "", "EE", "CR", "HRR", "CT"}

// DescribeATSFDiff says in a few words what differs between two answers to
// one ClientHello (docs/ATSF.md §2.1): the extensions whose presence or
// value differ (by name: "ALPN"), prefixed with the message when not the
// ServerHello ("EE ALPN"), the version, the cipher, the alerts. An alert
// given instead of a handshake is named by what it refuses (alert 120:
// "ALPN").
func DescribeATSFDiff(a, b string) string {
	if a == b {
		return ""
	}
	if a == "" || b == "" {
		return "no answer"
	}
	ma, alertsA, _ := strings.Cut(a, "<")
	mb, alertsB, _ := strings.Cut(b, "<")
	var parts []string
	add := func(s string) {
		if s != "" && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	// An alert instead of a handshake: name the alert's cause.
	if ma == "______" || mb == "______" || ma == "" || mb == "" {
		for _, al := range []string{alertsA, alertsB} {
			for code := range strings.SplitSeq(al, "-") {
				if f, ok := alertFeature[code]; ok {
					add(f)
				} else if code != "" {
					add("alert " + code)
				}
			}
		}
		if len(parts) == 0 {
			add("handshake vs alert")
		}
		return strings.Join(parts, ", ")
	}
	fa, fb := strings.Split(ma, "_"), strings.Split(mb, "_")
	for i := range max(len(fa), len(fb)) {
		x, y := field(fa, i), field(fb, i)
		if x == y {
			continue
		}
		if i < 2 {
			add(atsfFields[i])
			continue
		}
		prefix := ""
		if i < len(atsfFields) && atsfFields[i] != "" {
			prefix = atsfFields[i] + " "
		}
		diff := extDiff(x, y)
		if len(diff) == 0 {
			add(prefix + "extension order")
		}
		for _, d := range diff {
			add(prefix + d)
		}
	}
	if alertsA != alertsB {
		add("alerts")
	}
	return strings.Join(parts, ", ")
}

func field(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

// extDiff names the extension types whose entries differ between two
// lists "type.value-type.value".
func extDiff(a, b string) []string {
	parse := func(s string) map[string][]string {
		m := map[string][]string{}
		if s == "-" || s == "" {
			return m
		}
		for e := range strings.SplitSeq(s, "-") {
			t, v, _ := strings.Cut(e, ".")
			m[t] = append(m[t], v)
		}
		return m
	}
	ma, mb := parse(a), parse(b)
	var types []string
	for t := range ma {
		types = append(types, t)
	}
	for t := range mb {
		if _, ok := ma[t]; !ok {
			types = append(types, t)
		}
	}
	slices.SortFunc(types, func(x, y string) int {
		nx, _ := strconv.Atoi(x)
		ny, _ := strconv.Atoi(y)
		return cmp.Compare(nx, ny)
	})
	var out []string
	for _, t := range types {
		if slices.Equal(ma[t], mb[t]) {
			continue
		}
		name := extNames[t]
		if name == "" {
			name = "extension " + t
		}
		out = append(out, name)
	}
	return out
}

// NearSighting is an observed target whose last ATSF answers are near a
// DB entry's.
type NearSighting struct {
	Sighting
	Near *stackprint.Near `json:"near"`
}

// NearTo compares an entry's ten answers with a target's: nil unless at
// least 9 of 10 are equal and not all (the exact match is not near).
func NearTo(rec Record, hellos []string) *stackprint.Near {
	if len(rec.Hellos) != ATSFHellos || len(hellos) != ATSFHellos {
		return nil
	}
	n := &stackprint.Near{Of: ATSFHellos}
	for i := range ATSFHellos {
		if rec.Hellos[i] == hellos[i] {
			n.Agree++
			continue
		}
		n.Differs = append(n.Differs, atsfHelloNames[i])
		n.Details = append(n.Details, DescribeATSFDiff(hellos[i], rec.Hellos[i]))
	}
	if n.Agree < ATSFHellos-1 || n.Agree == ATSFHellos {
		return nil
	}
	return n
}
