package output

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/stackprint/stackprint"
	"github.com/stackprint/stackprint/internal/fileio"
	"github.com/stackprint/stackprint/zeeklog"
)

// FeedKind is the format of a server feed file.
type FeedKind string

// The feed formats the sensors read.
const (
	// FeedZeekIntel is a Zeek Intel framework input file of Intel::ADDR
	// items (redef Intel::read_files += {...}).
	FeedZeekIntel FeedKind = "zeek_intel"
	// FeedSuricataDataset is a Suricata dataset file of type ip, one
	// address per line (dataset:isset,NAME, type ip, load FILE).
	FeedSuricataDataset FeedKind = "suricata_dataset"
)

// FeedOptions configures a ServerFeed.
type FeedOptions struct {
	// Source is the Intel meta.source of every item; default "stackprint".
	Source string
	// DoNotice adds meta.do_notice T so Zeek's
	// frameworks/intel/do_notice raises Intel::Notice on a hit.
	DoNotice bool
}

// ServerFeed maintains a file listing every server an alert was raised
// for, so the sensor itself flags later connections to them. The file is
// rewritten whole (temp file, fsync, rename, directory fsync) whenever a
// server is added: Zeek re-reads an Intel file when its inode changes and
// Suricata reloads a dataset on rule reload, and neither ever sees half a
// file. Servers are kept until the file is edited or removed; the feed
// reloads the file when it is opened. It is safe for concurrent use.
type ServerFeed struct {
	mu      sync.Mutex
	path    string
	kind    FeedKind
	opts    FeedOptions
	entries map[netip.Addr]string // server → Intel meta.desc
}

// OpenServerFeed loads path if it exists (keeping its servers) and
// otherwise writes an empty feed, so sensor configs naming it load from
// the start.
func OpenServerFeed(path string, kind FeedKind, opts FeedOptions) (*ServerFeed, error) {
	if kind != FeedZeekIntel && kind != FeedSuricataDataset {
		return nil, fmt.Errorf("feed %s: unknown kind %q", path, kind)
	}
	if opts.Source == "" {
		opts.Source = "stackprint"
	}
	f := &ServerFeed{path: path, kind: kind, opts: opts, entries: map[netip.Addr]string{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := f.writeLocked(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("read feed: %w", err)
	default:
		if err := f.load(data); err != nil {
			return nil, fmt.Errorf("feed %s: %w", path, err)
		}
	}
	return f, nil
}

func (f *ServerFeed) load(data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cols map[string]int
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if f.kind == FeedSuricataDataset {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			a, err := netip.ParseAddr(line)
			if err != nil {
				return fmt.Errorf("line %d: %q is not an address", n, line)
			}
			f.entries[a.Unmap()] = ""
			continue
		}
		if rest, ok := strings.CutPrefix(line, "#fields\t"); ok {
			cols = map[string]int{}
			for i, c := range strings.Split(rest, "\t") {
				cols[c] = i
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if cols == nil {
			return fmt.Errorf("line %d: data before the #fields header", n)
		}
		vals := strings.Split(line, "\t")
		get := func(name string) string {
			if i, ok := cols[name]; ok && i < len(vals) {
				return vals[i]
			}
			return ""
		}
		if get("indicator_type") != "Intel::ADDR" {
			continue // another tool's line: not ours to keep or drop
		}
		a, err := netip.ParseAddr(get("indicator"))
		if err != nil {
			return fmt.Errorf("line %d: indicator %q is not an address", n, get("indicator"))
		}
		f.entries[a.Unmap()] = get("meta.desc")
	}
	return sc.Err()
}

// Add lists the server of a and rewrites the file when it was not listed
// yet; added reports that. Simulated alerts are never added: simulation
// must not change what the sensor flags.
func (f *ServerFeed) Add(a stackprint.Alert) (added bool, err error) {
	ip := a.Event.Resp.Addr().Unmap()
	if a.Simulated || !ip.IsValid() {
		return false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.entries[ip]; ok {
		return false, nil
	}
	f.entries[ip] = zeeklog.EscapeInput(feedDesc(a))
	if err := f.writeLocked(); err != nil {
		delete(f.entries, ip) // retried with the next alert for it
		return false, err
	}
	return true, nil
}

// Len is the number of servers listed.
func (f *ServerFeed) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.entries)
}

func feedDesc(a stackprint.Alert) string {
	d := "stackprint " + a.Rule
	if a.Match.Label != "" {
		d += ": " + a.Match.Label
	} else if a.RuleName != "" {
		d += ": " + a.RuleName
	}
	if a.Event.SNI != "" {
		d += " (" + a.Event.SNI + ")"
	}
	return d
}

func (f *ServerFeed) render() []byte {
	ips := make([]netip.Addr, 0, len(f.entries))
	for ip := range f.entries {
		ips = append(ips, ip)
	}
	slices.SortFunc(ips, func(a, b netip.Addr) int { return a.Compare(b) })
	var b bytes.Buffer
	if f.kind == FeedSuricataDataset {
		for _, ip := range ips {
			b.WriteString(ip.String() + "\n")
		}
		return b.Bytes()
	}
	b.WriteString("#fields\tindicator\tindicator_type\tmeta.source\tmeta.desc\tmeta.url")
	if f.opts.DoNotice {
		b.WriteString("\tmeta.do_notice")
	}
	b.WriteByte('\n')
	src := zeeklog.EscapeInput(f.opts.Source)
	for _, ip := range ips {
		desc := f.entries[ip]
		if desc == "" {
			desc = zeeklog.UnsetField
		}
		fmt.Fprintf(&b, "%s\tIntel::ADDR\t%s\t%s\t-", ip, src, desc)
		if f.opts.DoNotice {
			b.WriteString("\tT")
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func (f *ServerFeed) writeLocked() error {
	if err := fileio.WriteFileAtomic(f.path, f.render(), 0o644); err != nil {
		return fmt.Errorf("write feed: %w", err)
	}
	return nil
}
