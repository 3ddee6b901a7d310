package probe

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// The ten ATSF ClientHello definitions, unchanged, with their attribution
// (CC BY 4.0, Sosnowski et al., tumi8/active-tls-fingerprinting): the
// NOTICE must travel with every copy, so it is embedded next to them.
//
//go:embed atsfdata/NOTICE atsfdata/*.json
var atsfData embed.FS

// ATSFNotice returns the attribution that must accompany the embedded
// ClientHello definitions.
func ATSFNotice() string {
	b, err := atsfData.ReadFile("atsfdata/NOTICE")
	if err != nil {
		return "ATSF ClientHello definitions: Sosnowski et al. (TU Munich), tumi8/active-tls-fingerprinting, CC BY 4.0"
	}
	return string(b)
}

// ATSFHelloNames returns the ClientHello names in fingerprint order (the
// lexicographic order the combined string uses).
func ATSFHelloNames() []string {
	defs, err := loadATSFDefs()
	if err != nil {
		return nil
	}
	names := make([]string, len(defs))
	for i, d := range defs {
		names[i] = d.Name
	}
	return names
}

// atsfPreset mirrors the authors' JSON preset format. Unknown fields are an
// error so a changed definition cannot be half-understood.
type atsfPreset struct {
	Ciphers                []uint16
	CompressionMethods     []byte
	RenegotiationInfo      bool
	Renegotiation          int // client behaviour after the handshake only
	SignatureAlgorithms    []uint16
	StatusRequest          bool
	Sct                    bool
	SessionTicket          bool
	Alpn                   []string
	EcPointFormats         []byte
	PskKeyExchangeModes    []byte
	SupportedVersions      []uint16
	SupportedGroups        []uint16
	Padding                int
	RecordSizeLimit        uint16
	Version                uint16
	ExtendedMasterSecret   bool
	MaxFragmentLength      uint8
	KeyShares              int
	GreaseExtension        uint16
	ReversedExtensionOrder bool
}

// atsfDef is one ClientHello as it goes on the wire (docs/ATSF.md §1.2).
type atsfDef struct {
	Name              string
	Ciphers           []uint16
	Version           uint16 // legacy_version, sent as is
	SupportedVersions []uint16
	Groups            []uint16
	KeyShares         []atsfShare // the key_share plan
	ALPN              []string
	SigAlgs           []uint16
	PointFormats      []byte // nil: extension absent
	PSKModes          []byte // nil: extension absent; after the override rule
	StatusRequest     bool
	SCT               bool
	SessionTicket     bool
	RenegotiationInfo bool
	RecordSizeLimit   uint16
	MaxFragmentLength uint8
	GreaseExt         uint16
	Reversed          bool
}

// atsfShare is one planned key share: a GREASE dummy (1 byte) or a real one.
type atsfShare struct {
	Group uint16
	Dummy bool
}

// Extension ids the definitions use.
const (
	extServerName      = 0
	extMaxFragment     = 1
	extStatusRequest   = 5
	extGroups          = 10
	extPointFormats    = 11
	extSigAlgs         = 13
	extALPN            = 16
	extSCT             = 18
	extRecordSizeLimit = 28
	extSessionTicket   = 35
	extSupportedVers   = 43
	extCookie          = 44
	extPSKModes        = 45
	extKeyShare        = 51
	extRenegotiation   = 0xff01
)

func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

// realShareGroup reports whether utls can make a key share for g.
func realShareGroup(g uint16) bool {
	switch g {
	case 23, 24, 25, 29: // P-256, P-384, P-521, x25519
		return true
	}
	return false
}

// loadATSFDefs parses the embedded definitions in name order.
func loadATSFDefs() ([]*atsfDef, error) {
	entries, err := atsfData.ReadDir("atsfdata")
	if err != nil {
		return nil, fmt.Errorf("atsf: read embedded definitions: %w", err)
	}
	var defs []*atsfDef
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := atsfData.ReadFile(path.Join("atsfdata", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("atsf: read %s: %w", e.Name(), err)
		}
		d, err := parseATSFDef(strings.TrimSuffix(e.Name(), ".json"), b)
		if err != nil {
			return nil, err
		}
		defs = append(defs, d)
	}
	slices.SortFunc(defs, func(a, b *atsfDef) int { return strings.Compare(a.Name, b.Name) })
	if len(defs) != 10 {
		return nil, fmt.Errorf("atsf: %d embedded definitions, want 10", len(defs))
	}
	return defs, nil
}

// parseATSFDef turns one JSON preset into its wire description.
func parseATSFDef(name string, b []byte) (*atsfDef, error) {
	var p atsfPreset
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("atsf: definition %s: %w", name, err)
	}
	// Features no definition uses are not implemented; refuse rather than
	// send something else.
	switch {
	case p.Padding != 0, p.ExtendedMasterSecret:
		return nil, fmt.Errorf("atsf: definition %s: padding/extended_master_secret not supported", name)
	case !bytes.Equal(p.CompressionMethods, []byte{0}):
		return nil, fmt.Errorf("atsf: definition %s: compression methods %x not supported", name, p.CompressionMethods)
	case p.Version < 0x0300 || p.Version > 0x0304:
		return nil, fmt.Errorf("atsf: definition %s: version %#04x", name, p.Version)
	case len(p.Ciphers) == 0:
		return nil, fmt.Errorf("atsf: definition %s: no ciphers", name)
	}
	d := &atsfDef{
		Name:              name,
		Ciphers:           p.Ciphers,
		Version:           p.Version,
		SupportedVersions: p.SupportedVersions,
		Groups:            p.SupportedGroups,
		ALPN:              p.Alpn,
		SigAlgs:           p.SignatureAlgorithms,
		StatusRequest:     p.StatusRequest,
		SCT:               p.Sct,
		SessionTicket:     p.SessionTicket,
		RenegotiationInfo: p.RenegotiationInfo,
		RecordSizeLimit:   p.RecordSizeLimit,
		MaxFragmentLength: p.MaxFragmentLength,
		GreaseExt:         p.GreaseExtension,
		Reversed:          p.ReversedExtensionOrder,
	}
	if len(p.EcPointFormats) > 0 {
		d.PointFormats = p.EcPointFormats
	}
	if len(p.PskKeyExchangeModes) > 0 {
		d.PSKModes = p.PskKeyExchangeModes
		// The reference overwrites the modes with psk_dhe_ke when tickets
		// are on and TLS 1.3 is the first version offered (random6306).
		if p.SessionTicket && len(p.SupportedVersions) > 0 && p.SupportedVersions[0] == 0x0304 {
			d.PSKModes = []byte{1}
		}
	}
	// The key-share walk: GREASE groups get a 1-byte dummy and do not
	// count; the walk ends once KeyShares real shares exist (checked before
	// each real group, so KeyShares 0 still keeps a leading GREASE dummy);
	// groups utls cannot make a key for (ffdhe*) are skipped.
	nReal := 0
	for _, g := range p.SupportedGroups {
		if isGREASE(g) {
			d.KeyShares = append(d.KeyShares, atsfShare{Group: g, Dummy: true})
			continue
		}
		if nReal >= p.KeyShares {
			break
		}
		if !realShareGroup(g) {
			continue
		}
		d.KeyShares = append(d.KeyShares, atsfShare{Group: g})
		nReal++
	}
	return d, nil
}

// firstRealShare is the group of the first planned real key share, 0 if
// none.
func (d *atsfDef) firstRealShare() uint16 {
	for _, s := range d.KeyShares {
		if !s.Dummy {
			return s.Group
		}
	}
	return 0
}

// realShares counts the planned real (non-dummy) key shares.
func (d *atsfDef) realShares() int {
	n := 0
	for _, s := range d.KeyShares {
		if !s.Dummy {
			n++
		}
	}
	return n
}

// wireOrder is the extension order the reference sends, including its
// "reversed" quirk: the reversal loop is right only for an odd count; with
// an even count only the first and last extensions swap. withCookie gives
// the second ClientHello after a HelloRetryRequest with a cookie: the
// reference puts cookie (44) at its default place, right before key_share,
// and then applies the quirk to the n+1 extensions (docs/ATSF.md §2.2.1).
func (d *atsfDef) wireOrder(withSNI, withCookie bool) []uint16 {
	var o []uint16
	add := func(ok bool, id uint16) {
		if ok {
			o = append(o, id)
		}
	}
	add(withSNI, extServerName)
	add(d.StatusRequest, extStatusRequest)
	add(len(d.Groups) > 0, extGroups)
	add(d.PointFormats != nil, extPointFormats)
	add(d.SessionTicket, extSessionTicket)
	add(len(d.SigAlgs) > 0, extSigAlgs)
	add(d.RenegotiationInfo, extRenegotiation)
	add(len(d.ALPN) > 0, extALPN)
	add(d.SCT, extSCT)
	add(len(d.SupportedVersions) > 0, extSupportedVers)
	add(withCookie, extCookie)
	add(true, extKeyShare) // always present, possibly with an empty list
	add(d.RecordSizeLimit != 0, extRecordSizeLimit)
	add(d.GreaseExt != 0, d.GreaseExt)
	add(d.PSKModes != nil, extPSKModes)
	add(d.MaxFragmentLength != 0, extMaxFragment)
	if d.Reversed && len(o) > 1 {
		if len(o)%2 == 1 {
			slices.Reverse(o)
		} else {
			o[0], o[len(o)-1] = o[len(o)-1], o[0]
		}
	}
	return o
}
