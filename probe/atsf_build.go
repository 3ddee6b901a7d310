package probe

import (
	"crypto/ecdh"
	"fmt"
	"io"
	"net"
	"slices"

	utls "github.com/refraction-networking/utls"
)

// shadowKeyShare makes utls's TLS 1.3 client accept a ClientHello whose
// key_share list is empty on the wire. utls refuses to read any answer
// unless hello.keyShares is non-empty; this extension writes nothing
// (Len 0) but, applied after the real key_share, sets that list to one
// dummy group. The real (empty) *utls.KeyShareExtension stays in the list
// because utls's HelloRetryRequest code fills exactly that type for the
// second ClientHello. The embedding promotes utls's unexported
// writeToUConn, which is what makes this a utls.TLSExtension.
type shadowKeyShare struct {
	*utls.KeyShareExtension
}

func (shadowKeyShare) Len() int                 { return 0 }
func (shadowKeyShare) Read([]byte) (int, error) { return 0, io.EOF }

// shadowGroup is a private-use group id nobody selects.
const shadowGroup = 0xfe33

// atsfClient is one prepared ClientHello: the utls client plus what the
// hooks that run while it reads need to change in place.
type atsfClient struct {
	uc     *utls.UConn
	def    *atsfDef
	sni    bool
	shadow utls.TLSExtension   // nil unless the key_share list is empty
	alpn   *utls.ALPNExtension // nil when no ALPN is offered
}

// atsfUConn prepares a utls client that sends d exactly as docs/ATSF.md §1.2
// describes (see the package doc for what still differs). sni "" sends no
// server_name. dummy is any ECDHE key: utls insists on one before it reads
// a ServerHello, even when the ClientHello carried no real share. x25519,
// when not nil, is the key pair of a real X25519 share (one per target:
// the share's value is no feature, and utls would make a fresh one per
// connection); shares of other groups are made by utls.
func atsfUConn(conn net.Conn, d *atsfDef, sni string, keyLog io.Writer, dummy, x25519 *ecdh.PrivateKey) (*atsfClient, error) {
	cfg := &utls.Config{
		ServerName:         sni,
		InsecureSkipVerify: true, // facts, not trust: the answer is recorded whatever the certificate
		KeyLogWriter:       keyLog,
		// No ClientSessionCache: utls must not add a PSK or a ticket.
	}
	uc := utls.UClient(conn, cfg, utls.HelloCustom)

	var ks *utls.KeyShareExtension
	var ecdhe *ecdh.PrivateKey // the key of a share filled in here
	var curves *utls.SupportedCurvesExtension
	var exts []utls.TLSExtension
	ac := &atsfClient{uc: uc, def: d, sni: sni != ""}
	for _, id := range d.wireOrder(sni != "", false) {
		var e utls.TLSExtension
		switch id {
		case extServerName:
			e = &utls.SNIExtension{ServerName: sni}
		case extStatusRequest:
			e = &utls.StatusRequestExtension{}
		case extGroups:
			curves = &utls.SupportedCurvesExtension{Curves: curveIDs(d.Groups)}
			e = curves
		case extPointFormats:
			e = &utls.SupportedPointsExtension{SupportedPoints: slices.Clone(d.PointFormats)}
		case extSessionTicket:
			e = &utls.SessionTicketExtension{}
		case extSigAlgs:
			e = &utls.SignatureAlgorithmsExtension{SupportedSignatureAlgorithms: sigSchemes(d.SigAlgs)}
		case extRenegotiation:
			e = &utls.RenegotiationInfoExtension{Renegotiation: utls.RenegotiateOnceAsClient}
		case extALPN:
			ac.alpn = &utls.ALPNExtension{AlpnProtocols: slices.Clone(d.ALPN)}
			e = ac.alpn
		case extSCT:
			e = &utls.SCTExtension{}
		case extSupportedVers:
			e = &utls.SupportedVersionsExtension{Versions: slices.Clone(d.SupportedVersions)}
		case extKeyShare:
			ks = &utls.KeyShareExtension{KeyShares: []utls.KeyShare{}}
			for _, s := range d.KeyShares {
				k := utls.KeyShare{Group: utls.CurveID(s.Group)}
				switch {
				case s.Dummy:
					k.Data = []byte{0}
				case s.Group == uint16(utls.X25519) && x25519 != nil:
					// utls keeps a share with data as it is.
					k.Data = x25519.PublicKey().Bytes()
					if ecdhe == nil {
						ecdhe = x25519
					}
				}
				ks.KeyShares = append(ks.KeyShares, k)
			}
			e = ks
		case extRecordSizeLimit:
			e = &utls.FakeRecordSizeLimitExtension{Limit: d.RecordSizeLimit}
		case extPSKModes:
			e = &utls.PSKKeyExchangeModesExtension{Modes: slices.Clone(d.PSKModes)}
		case extMaxFragment:
			// utls has no type for max_fragment_length.
			e = &utls.GenericExtension{Id: extMaxFragment, Data: []byte{d.MaxFragmentLength}}
		case d.GreaseExt:
			// Not UtlsGREASEExtension: its value would be re-randomised.
			e = &utls.GenericExtension{Id: d.GreaseExt}
		default:
			return nil, fmt.Errorf("atsf: %s: no builder for extension %d", d.Name, id)
		}
		exts = append(exts, e)
	}
	if len(d.KeyShares) == 0 {
		ac.shadow = shadowKeyShare{&utls.KeyShareExtension{KeyShares: []utls.KeyShare{{Group: shadowGroup, Data: []byte{0}}}}}
		exts = append(exts, ac.shadow)
	}
	spec := &utls.ClientHelloSpec{
		CipherSuites:       slices.Clone(d.Ciphers),
		CompressionMethods: []uint8{0},
		Extensions:         exts,
	}
	if err := uc.ApplyPreset(spec); err != nil {
		return nil, fmt.Errorf("atsf: %s: apply preset: %w", d.Name, err)
	}

	// ApplyPreset re-randomises every GREASE value and derives
	// legacy_version from the version range; put the definition back.
	hello := uc.HandshakeState.Hello
	hello.CipherSuites = slices.Clone(d.Ciphers)
	hello.Vers = d.Version
	if curves != nil {
		curves.Curves = curveIDs(d.Groups)
	}
	for i, s := range d.KeyShares {
		if s.Dummy {
			ks.KeyShares[i].Group = utls.CurveID(s.Group)
		}
	}
	if ecdhe != nil && d.firstRealShare() == uint16(utls.X25519) {
		// What utls sets for the first real share it makes itself.
		if uc.HandshakeState.State13.KeyShareKeys == nil {
			uc.HandshakeState.State13.KeyShareKeys = &utls.KeySharePrivateKeys{}
		}
		uc.HandshakeState.State13.KeyShareKeys.Ecdhe = ecdhe
	}
	if d.realShares() == 0 {
		// Never used for key agreement: utls rejects a ServerHello share
		// it did not offer, and an HRR replaces this key.
		if uc.HandshakeState.State13.KeyShareKeys == nil {
			uc.HandshakeState.State13.KeyShareKeys = &utls.KeySharePrivateKeys{}
		}
		uc.HandshakeState.State13.KeyShareKeys.Ecdhe = dummy
	}
	return ac, nil
}

func curveIDs(gs []uint16) []utls.CurveID {
	out := make([]utls.CurveID, len(gs))
	for i, g := range gs {
		out[i] = utls.CurveID(g)
	}
	return out
}

func sigSchemes(ss []uint16) []utls.SignatureScheme {
	out := make([]utls.SignatureScheme, len(ss))
	for i, s := range ss {
		out[i] = utls.SignatureScheme(s)
	}
	return out
}

// orderForCookie rebuilds the extension list for the second ClientHello
// after a HelloRetryRequest with a cookie, in the order the reference
// sends it (wireOrder with cookie). utls fills the empty cookie from the
// HelloRetryRequest; without one in the list it would insert its own at a
// random position. The shadow key share writes nothing and stays last.
func (ac *atsfClient) orderForCookie() {
	uc := ac.uc
	for _, e := range uc.Extensions {
		if _, ok := e.(*utls.CookieExtension); ok {
			return
		}
	}
	// uc.Extensions is still the first hello's list, in its wire order.
	first := ac.def.wireOrder(ac.sni, false)
	n := len(first)
	if ac.shadow != nil {
		n++
	}
	if len(uc.Extensions) != n {
		return // not the list built here; leave it to utls
	}
	byID := make(map[uint16]utls.TLSExtension, len(first))
	for i, id := range first {
		byID[id] = uc.Extensions[i]
	}
	exts := make([]utls.TLSExtension, 0, n+1)
	for _, id := range ac.def.wireOrder(ac.sni, true) {
		if id == extCookie {
			exts = append(exts, &utls.CookieExtension{})
			continue
		}
		exts = append(exts, byID[id])
	}
	if ac.shadow != nil {
		exts = append(exts, uc.Extensions[len(first)])
	}
	uc.Extensions = exts
}

// acceptALPN makes utls accept the server's ALPN choice proto although it
// was not offered, as the reference's client (a Go 1.16 fork) does: it
// only refuses an ALPN answer to a ClientHello without ALPN. utls checks
// against the offered list it marshalled, which shares its backing array
// with the ALPN extension, so one entry is overwritten in place; the
// ClientHellos are already sent by then.
func (ac *atsfClient) acceptALPN(proto string) bool {
	if ac.alpn == nil || len(ac.alpn.AlpnProtocols) == 0 || proto == "" || slices.Contains(ac.alpn.AlpnProtocols, proto) {
		return false
	}
	ac.alpn.AlpnProtocols[0] = proto
	return true
}
