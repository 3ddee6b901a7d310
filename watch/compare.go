package watch

import (
	"fmt"
	"slices"
	"strings"
)

// What a Change is about.
const (
	ChangeJARM       = "jarm"
	ChangeATSF       = "atsf"
	ChangeCert       = "cert"         // new key or new issuer: a stack change
	ChangeCertRotate = "cert_rotated" // re-issued with the same key and issuer: not a stack change
	ChangeHTTPServer = "http_server"
)

// Change is one difference between a baseline and a probe.
type Change struct {
	What     string
	From, To string
	// Hellos names the ATSF ClientHellos whose answers changed (ATSF
	// only; empty when the baseline has only the ATSF id).
	Hellos []string
	// Compared is how many ClientHellos both sides had an answer to.
	Compared int
	// Cert details (cert and cert_rotated): which parts changed.
	NewKey, NewIssuer    bool
	FromIssuer, ToIssuer string
	FromSerial, ToSerial string
	KeyUnknown           bool   // the baseline has the certificate hash only
	ToNotAfter           string // the new certificate's end, YYYY-MM-DD
}

// Stack reports whether c is a change of the server's stack (drift); a
// certificate rotation is not.
func (c Change) Stack() bool { return c.What != ChangeCertRotate }

// Compare lists what differs between base and cur, in a fixed order
// (JARM, ATSF, certificate, HTTP Server). A field is compared only when
// both sides measured it.
func Compare(base, cur Fingerprints) []Change {
	var out []Change
	if base.JARM != "" && cur.JARM != "" && base.JARM != cur.JARM {
		out = append(out, Change{What: ChangeJARM, From: base.JARM, To: cur.JARM})
	}
	if c, ok := compareATSF(base, cur); ok {
		out = append(out, c)
	}
	if b, c := base.Cert, cur.Cert; b != nil && c != nil && b.SHA256 != c.SHA256 {
		ch := Change{What: ChangeCert, From: b.SHA256, To: c.SHA256, FromIssuer: b.Issuer, ToIssuer: c.Issuer,
			FromSerial: b.Serial, ToSerial: c.Serial}
		switch {
		case b.SPKI == "" || c.SPKI == "":
			ch.KeyUnknown = true
		default:
			ch.NewKey = b.SPKI != c.SPKI
			ch.NewIssuer = b.Issuer != c.Issuer
			if !ch.NewKey && !ch.NewIssuer {
				ch.What = ChangeCertRotate
			}
		}
		if !c.NotAfter.IsZero() {
			ch.ToNotAfter = c.NotAfter.UTC().Format("2006-01-02")
		}
		out = append(out, ch)
	}
	if base.HTTP && cur.HTTP && base.HTTPServer != cur.HTTPServer {
		out = append(out, Change{What: ChangeHTTPServer, From: base.HTTPServer, To: cur.HTTPServer})
	}
	return out
}

// compareATSF compares the answers ClientHello by ClientHello when both
// sides have them, else the ids.
func compareATSF(base, cur Fingerprints) (Change, bool) {
	if len(base.Hellos) > 0 && len(cur.Hellos) > 0 {
		now := map[string]string{}
		for _, h := range cur.Hellos {
			now[h.Name] = h.Raw
		}
		c := Change{What: ChangeATSF, From: base.ATSF, To: cur.ATSF}
		for _, h := range base.Hellos {
			raw, ok := now[h.Name]
			if !ok || raw == "" || h.Raw == "" {
				continue // no answer on one side: nothing to compare
			}
			c.Compared++
			if raw != h.Raw {
				c.Hellos = append(c.Hellos, h.Name)
			}
		}
		slices.Sort(c.Hellos)
		return c, len(c.Hellos) > 0
	}
	if base.ATSF != "" && cur.ATSF != "" && base.ATSF != cur.ATSF {
		return Change{What: ChangeATSF, From: base.ATSF, To: cur.ATSF}, true
	}
	return Change{}, false
}

// Describe renders changes as one line that says exactly what changed.
func Describe(changes []Change) string {
	parts := make([]string, 0, len(changes))
	for _, c := range changes {
		parts = append(parts, c.String())
	}
	return strings.Join(parts, "; ")
}

func (c Change) String() string {
	switch c.What {
	case ChangeJARM:
		return fmt.Sprintf("JARM changed %s -> %s", c.From, c.To)
	case ChangeATSF:
		if len(c.Hellos) == 0 {
			return fmt.Sprintf("ATSF changed %s -> %s (the baseline has the ATSF id only, not the answers)", orNone(c.From), orNone(c.To))
		}
		return fmt.Sprintf("ATSF: the answers to %d of %d ClientHellos changed (%s)", len(c.Hellos), c.Compared, strings.Join(c.Hellos, ", "))
	case ChangeCert:
		var what string
		switch {
		case c.KeyUnknown:
			what = "certificate changed (the baseline has its hash only, so a rotation cannot be told from a new key)"
		case c.NewKey && c.NewIssuer:
			what = fmt.Sprintf("certificate replaced with a new key and a new issuer (%q -> %q)", c.FromIssuer, c.ToIssuer)
		case c.NewKey:
			what = fmt.Sprintf("certificate replaced with a new key (same issuer %q)", c.ToIssuer)
		default:
			what = fmt.Sprintf("certificate from a new issuer (%q -> %q), same key", c.FromIssuer, c.ToIssuer)
		}
		return what + fmt.Sprintf(", sha256 %s -> %s", c.From, c.To)
	case ChangeCertRotate:
		s := fmt.Sprintf("certificate re-issued with the same key and issuer %q (rotation, not a stack change): serial %s -> %s, sha256 %s -> %s",
			c.ToIssuer, orNone(c.FromSerial), orNone(c.ToSerial), c.From, c.To)
		if c.ToNotAfter != "" {
			s += ", valid until " + c.ToNotAfter
		}
		return s
	case ChangeHTTPServer:
		return fmt.Sprintf("HTTP Server header %q -> %q", c.From, c.To)
	}
	return c.What
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
