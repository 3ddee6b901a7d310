package output

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stackprint/stackprint"
)

// FormatAlertText renders a for a person at a terminal (stackprint demo):
// a short block of lines, each ending in a newline, e.g.
//
//	ALERT high  rule db_match  2025-03-04T05:06:07Z  [simulated]  (+3 suppressed)
//	  why    TLS server fingerprint in the fingerprint DB
//	  conn   10.0.0.5:51234 → 203.0.113.7:443  sni evil.example  uid CHhAvVGS1DHFjwGM9
//	  jarm   2ad2ad0002ad2ad00042d42d00000069d641f34fe76acdc05c40262f8815e5
//	  cert   sha1 6affac1f…  CN=evil.example
//	  http   Server: Microsoft-IIS/10.0
//	  match  cobalt-strike  (source salesforce/jarm, confidence high)
//
// The why, cert and http lines appear when known; the match line when the
// alert is about a DB entry.
//
// Text that came from the network or a DB list is shown with control and
// other non-printable characters escaped, so it cannot drive the terminal.
func FormatAlertText(a stackprint.Alert) string {
	var b strings.Builder

	b.WriteString("ALERT")
	if a.Severity != "" {
		b.WriteString(" " + safe(a.Severity))
	}
	b.WriteString("  rule " + orDash(a.Rule))
	if !a.TS.IsZero() {
		b.WriteString("  " + a.TS.UTC().Format(time.RFC3339))
	}
	if a.Simulated {
		b.WriteString("  [simulated]")
	}
	if a.Retro {
		b.WriteString("  [retro-hunt]")
	}
	if a.Suppressed > 0 {
		fmt.Fprintf(&b, "  (+%d suppressed)", a.Suppressed)
	}
	b.WriteByte('\n')
	if a.RuleName != "" {
		b.WriteString("  why    " + safe(a.RuleName) + "\n")
	}
	if a.Detail != "" {
		b.WriteString("  what   " + safe(a.Detail) + "\n")
	}

	fmt.Fprintf(&b, "  conn   %s → %s", orDash(addrPort(a.Event.Orig)), orDash(addrPort(a.Event.Resp)))
	if a.Event.SNI != "" {
		b.WriteString("  sni " + safe(a.Event.SNI))
	}
	if id := a.Event.ConnID(); id != "" {
		if a.Event.UID != "" {
			b.WriteString("  uid " + safe(id))
		} else {
			b.WriteString("  flow_id " + id)
		}
	}
	b.WriteByte('\n')

	b.WriteString("  jarm   " + orDash(a.Result.JARM) + "\n")
	if c := a.Result.Cert; c != nil && c.SHA1 != "" {
		b.WriteString("  cert   sha1 " + safe(c.SHA1))
		if c.Subject != "" {
			b.WriteString("  " + safe(c.Subject))
		}
		b.WriteByte('\n')
	}
	if h := a.Result.HTTP; h != nil {
		b.WriteString("  http   Server: " + orDash(h.Server) + "\n")
	}
	if !hasMatch(a.Match) {
		return b.String()
	}

	b.WriteString("  match  " + orDash(a.Match.Label))
	var details []string
	if a.Match.Kind != "" && a.Match.Kind != "jarm" {
		details = append(details, safe(a.Match.Kind)+" "+safe(a.Match.Value))
	}
	if a.Match.Source != "" {
		details = append(details, "source "+safe(a.Match.Source))
	}
	if a.Match.Confidence != "" {
		details = append(details, "confidence "+safe(a.Match.Confidence))
	}
	if len(details) > 0 {
		b.WriteString("  (" + strings.Join(details, ", ") + ")")
	}
	b.WriteByte('\n')
	if n := a.Match.Near; n != nil {
		b.WriteString("  near   " + safe(n.Text(a.Match.Label)) + "\n")
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return safe(s)
}

// safe escapes what a terminal would interpret or hide: control
// characters (ESC starts colour and cursor sequences), invalid UTF-8 and
// invisible formatting such as bidi overrides.
func safe(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case !unicode.IsPrint(r):
			if r < 0x80 {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				fmt.Fprintf(&b, `\u%04x`, r)
			}
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
