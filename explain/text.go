package explain

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/db"
)

// Text writes rep for a person at a terminal. Text from the network or
// from DB lists is escaped so it cannot drive the terminal.
func Text(w io.Writer, rep Report) error {
	p := &printer{w: w}
	switch rep.Kind {
	case KindAlert:
		p.alert(rep.Alert)
	case KindFingerprint:
		p.fingerprint(rep.Fingerprint)
	}
	for i, s := range rep.Servers {
		if i > 0 || rep.Kind == KindAlert {
			p.line("")
		}
		p.server(s)
	}
	if !rep.NearIndexed {
		p.line("")
		p.line("note: this DB file has no near-match index yet (an older stackprint wrote it); a writable open builds it")
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) alert(a *AlertReport) {
	if a == nil {
		return
	}
	flags := ""
	if a.Retro {
		flags += "  [retro-hunt]"
	}
	if a.Backfill {
		flags += "  [backfill]"
	}
	if a.Simulated {
		flags += "  [simulated]"
	}
	p.line("alert %s  %s  rule %s  severity %s%s", a.ID, stamp(a.TS), safe(a.Rule), safe(a.Severity), flags)
	if a.RuleName != "" {
		p.line("  why      %s", safe(a.RuleName))
	}
	if r := a.RuleDef; r != nil {
		p.line("  when     %s", oneLine(r.When))
		if r.SeverityExpr != "" {
			p.line("  severity %s", oneLine(r.SeverityExpr))
		}
		if len(r.Params) > 0 {
			var ps []string
			for _, k := range slices.Sorted(maps.Keys(r.Params)) {
				ps = append(ps, fmt.Sprintf("%s=%v", k, r.Params[k]))
			}
			p.line("  params   %s", safe(strings.Join(ps, " ")))
		}
		if r.File != "" {
			p.line("  rule in  %s", safe(r.File))
		}
	}
	if len(a.Values) > 0 {
		p.line("  values it saw")
		for _, k := range slices.Sorted(maps.Keys(a.Values)) {
			p.line("    %-22s %s", safe(k), safe(a.Values[k]))
		}
	}
	if a.Match != nil {
		p.line("  match    %s", matchText(*a.Match))
	}
	if c := a.Client; c != nil {
		p.line("  conn     %s", clientText(*c))
	}
	p.line("  target   %s  status %s  %s", a.Target(), dash(string(a.Status)), fpsText(a.Fingerprints))
}

func (p *printer) server(s Server) {
	if !s.Observed {
		p.line("server %s: never probed (no observation in the DB)", safe(s.Target))
		return
	}
	o := s.Current
	p.line("server %s", safe(s.Target))
	p.line("  last probe     %s  %s%s  (%d probes)", stamp(o.LastProbe), o.Status, errText(o.Error), o.Probes)
	p.line("  fingerprints   %s", fpsText(o.Fingerprints))
	if len(o.Hellos) == db.ATSFHellos {
		p.line("  atsf answers")
		for i, h := range o.Hellos {
			p.line("    %-11s %s", db.ATSFHelloNames()[i], dash(safe(h)))
		}
	}
	p.line("  observations (probe log, oldest first)")
	if len(s.Probes) == 0 {
		p.line("    none logged")
	}
	for _, e := range s.Probes {
		extra := ""
		if e.Client != nil {
			extra = "  by " + clientText(*e.Client)
		}
		if e.Backfill {
			extra += "  [backfill]"
		}
		p.line("    %s  %-15s %s%s%s", stamp(e.Time), e.Status, fpsText(e.Fingerprints), errText(e.Error), extra)
	}
	p.line("  fingerprint history")
	for _, c := range s.History {
		p.line("    %s … %s  %s", stamp(c.From), stamp(c.Until), fpsText(c.Fingerprints))
	}
	p.line("    %s … %s  %s  (current)", stamp(o.Since), stamp(o.Seen), fpsText(o.Fingerprints))
	p.line("  exact DB matches")
	if len(s.Exact) == 0 {
		p.line("    none")
	}
	for _, m := range s.Exact {
		p.line("    %s", matchText(m))
	}
	p.line("  near DB matches")
	if len(s.Near) == 0 {
		p.line("    none")
	}
	for _, m := range s.Near {
		p.line("    %s", matchText(m))
	}
	p.line("  alerts")
	if len(s.Alerts) == 0 {
		p.line("    none")
	}
	for _, a := range s.Alerts {
		extra := ""
		if a.Client != nil {
			extra = "  " + clientText(*a.Client)
		}
		if a.Retro {
			extra += "  [retro-hunt]"
		}
		if a.Backfill {
			extra += "  [backfill]"
		}
		label := ""
		if a.Match != nil {
			label = "  " + safe(a.Match.Label)
		}
		p.line("    %s  %s  %s  %s%s%s", a.ID, stamp(a.TS), safe(a.Rule), safe(a.Severity), label, extra)
	}
	if len(s.Rules) > 0 {
		p.line("  rules fired    %s", safe(strings.Join(s.Rules, ", ")))
	}
	p.line("  clients that triggered probes")
	if len(s.Clients) == 0 {
		p.line("    none recorded")
	}
	for _, c := range s.Clients {
		p.line("    %s", clientText(c))
	}
}

func (p *printer) fingerprint(f *FingerprintReport) {
	if f == nil {
		return
	}
	p.line("fingerprint %s", safe(f.Value))
	p.line("  DB entries")
	if len(f.Entries) == 0 {
		p.line("    none")
	}
	for _, r := range f.Entries {
		p.line("    %s %s  %s  (%s)", r.Kind, r.Value, safe(r.Label), recordDetails(r))
		if len(r.Hellos) == db.ATSFHellos {
			p.line("      keeps its ten ClientHello answers (near matching)")
		}
	}
	p.line("  observed servers with it")
	if len(f.Servers) == 0 {
		p.line("    none")
	}
	for _, s := range f.Servers {
		p.line("    %s  carried it last %s  (last probe %s %s)", s.Target(), stamp(s.Carried), stamp(s.LastProbe), s.Status)
	}
}

func matchText(m stackprint.Match) string {
	s := m.Kind + " " + m.Value + "  " + safe(m.Label)
	var d []string
	for _, kv := range [][2]string{{"category", m.Category}, {"source", m.Source}, {"confidence", m.Confidence}} {
		if kv[1] != "" {
			d = append(d, kv[0]+" "+safe(kv[1]))
		}
	}
	if m.BlockCount+m.TopCount > 0 {
		d = append(d, fmt.Sprintf("block/top %d/%d", m.BlockCount, m.TopCount))
	}
	if len(d) > 0 {
		s += "  (" + strings.Join(d, ", ") + ")"
	}
	if m.Near != nil {
		s += "\n      " + safe(m.Near.Text(m.Label))
	}
	return s
}

func recordDetails(r db.Record) string {
	d := []string{"confidence " + r.Confidence}
	if r.Category != "" {
		d = append(d, "category "+safe(r.Category))
	}
	if r.Source != "" {
		d = append(d, "source "+safe(r.Source))
	}
	if r.BlockCount+r.TopCount > 0 {
		d = append(d, fmt.Sprintf("block/top %d/%d", r.BlockCount, r.TopCount))
	}
	if !r.LastSeen.IsZero() {
		d = append(d, "seen "+stamp(r.FirstSeen)+" … "+stamp(r.LastSeen))
	}
	return strings.Join(d, ", ")
}

func fpsText(f db.Fingerprints) string {
	var parts []string
	for _, kv := range [][2]string{{"jarm", f.JARM}, {"atsf", f.ATSF}, {"cert_sha256", f.CertSHA256}, {"cert_sha1", f.CertSHA1}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	if len(parts) == 0 {
		return "no fingerprint"
	}
	return strings.Join(parts, "  ")
}

func clientText(c db.Client) string {
	s := c.Orig.String()
	switch {
	case c.UID != "":
		s += " uid " + safe(c.UID)
	case c.FlowID != 0:
		s += " flow_id " + itoa(int(c.FlowID))
	}
	if c.Source != "" {
		s += " (" + safe(c.Source) + ")"
	}
	return s + " at " + stamp(c.TS)
}

func errText(e string) string {
	if e == "" {
		return ""
	}
	return "  error: " + safe(e)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLine(s string) string { return safe(strings.Join(strings.Fields(s), " ")) }

// safe escapes control and other non-printable characters.
func safe(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if unicode.IsPrint(r) || r == ' ' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "\\x%02x", r)
		}
	}
	return b.String()
}
