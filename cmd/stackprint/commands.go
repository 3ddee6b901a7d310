package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// command is one row of the command table. The dispatcher, `stackprint
// help`, each command's -h and the README's CLI section are all derived
// from the table, so they cannot disagree.
type command struct {
	name     string // "probe", or "db add" for a subcommand
	summary  string // one line
	usage    string // the synopsis, starting with "stackprint "
	examples []string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// group is a command with subcommands ("db"); its rows in the table are
// the commands named "db …".
type group struct {
	name, summary, note string
}

func groups() []group {
	return []group{
		{"db", "manage the fingerprint DB", "Common flags: -c FILE (config naming db.path and db.admin_socket) or --db PATH [--socket PATH].\n" +
			"While `stackprint run` owns the DB, these commands go through its admin socket\n" +
			"and apply at once; otherwise they open the file (waiting at most db.lock_timeout)."},
		{"rules", "check and list detection rules", ""},
		{"config", "check and show the configuration", ""},
	}
}

// commands is the command table, in the order `stackprint help` lists it.
func commands() []command {
	return []command{
		{
			name: "run", summary: "follow the configured logs (the daemon)",
			usage: "stackprint run [-c FILE]",
			examples: []string{
				"stackprint run                        # embedded default config (configs/stackprint.yaml)",
				"stackprint run -c /etc/stackprint/stackprint.yaml",
				"kill -HUP $(pidof stackprint)         # reload scope and rules from the config file",
			},
			run: cmdRun,
		},
		{
			name: "demo", summary: "run the whole pipeline against local test servers",
			usage: "stackprint demo [--keep] [-v]",
			examples: []string{
				"stackprint demo                       # TLS servers on 127.0.0.x, Zeek log, pipeline, alerts",
				"stackprint demo --keep -v             # keep the files and show the daemon's log",
			},
			run: cmdDemo,
		},
		{
			name: "probe", summary: "fingerprint one server (JARM, ATSF, certificate, HTTP Server)",
			usage: "stackprint probe [--json | --format text|json|goscanner] [--sni NAME] [--kinds LIST] [--starttls PROTO] [flags] HOST:PORT",
			examples: []string{
				"stackprint probe 192.0.2.10:443       # SNI for JARM = the IP literal, like jarm.py",
				"stackprint probe --json --sni example.org --kinds jarm,atsf 192.0.2.10:443",
				"stackprint probe example.org:443      # resolves once; SNI = example.org",
				"stackprint probe --starttls smtp 192.0.2.25:2525   # STARTTLS first (by default on 21 25 110 143 389 587 5222 5269 5432)",
				"stackprint probe --format goscanner --kinds atsf '[2001:db8::1]:443'   # the columns of goscanner's fingerprints.csv",
			},
			run: cmdProbe,
		},
		{
			name: "scan", summary: "one pass over existing logs: parse, scope, dedup (no network)",
			usage: scanSynopsis,
			examples: []string{
				"stackprint scan --no-probe conn.log ssl.log eve.json   # lines, events, parse errors, distinct targets, seconds",
			},
			run: cmdScan,
		},
		{
			name: "explain", summary: "what is known about a server, an alert or a fingerprint",
			usage: "stackprint explain [--json] [flags] TARGET|ALERT_ID|FINGERPRINT",
			examples: []string{
				"stackprint explain 192.0.2.10            # every observed port and name of the address",
				"stackprint explain 192.0.2.10:443/c2.example",
				"stackprint explain 360e468ec3a3c2333cf4b5dbad2bc5d8   # an alert id: its rule, the values it saw, its server",
				"stackprint explain --json 07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d",
			},
			run: cmdExplain,
		},
		{
			name: "hunt", summary: "fingerprint address lists, CIDRs and scanner outputs; match each target against the DB",
			usage: huntSynopsis,
			examples: []string{
				"masscan -p443 198.51.100.0/24 -oL open.txt && stackprint hunt --targets open.txt --state hunt.state --out hunt.jsonl",
				"stackprint hunt --targets 203.0.113.0/28 --ports 443,8443 --format csv --rate 20",
				"zmap -p 443 -O csv -f saddr,sport -o - | stackprint hunt --format zeek --sni-from names.txt",
				"stackprint hunt --allow 127.0.0.0/8 --targets lab.txt    # lab addresses: the scope allows only public unicast by default",
			},
			run: cmdHunt,
		},
		{
			name: "db add", summary: "add or replace one fingerprint",
			usage: "stackprint db add --kind K --value V --label L [--source S] [--confidence low|medium|high] [--category C] [--notes N] [flags]",
			examples: []string{
				"stackprint db add --kind jarm --value 07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d \\\n    --label cobalt-strike --source my-intel --confidence high",
			},
			run: cmdDBAdd,
		},
		{
			name: "db rm", summary: "remove one fingerprint",
			usage: "stackprint db rm --kind K --value V [flags]",
			examples: []string{
				"stackprint db rm --kind jarm --value 07d14d16d21d21d00042d43d000000aa99ce74e2c6d013c745aa52b5cc042d",
			},
			run: cmdDBRemove,
		},
		{
			name: "db list", summary: "list the fingerprints",
			usage: "stackprint db list [--kind K] [--value PREFIX] [--label TEXT] [--source S] [--category C] [--json] [flags]",
			examples: []string{
				"stackprint db list --kind jarm",
				"stackprint db list --category c2 --label cobalt --value 07d14d",
				"stackprint db list --json -c /etc/stackprint/stackprint.yaml",
			},
			run: cmdDBList,
		},
		{
			name: "db import", summary: "import fingerprint lists and scan outputs (all or nothing per file)",
			usage: "stackprint db import [--format csv|jsonl|jarm|sslbl|goscanner|jarmpy|tlsx] [--partial] [--replace] [--source S] [--label L] [flags] FILE...",
			examples: []string{
				"stackprint db import configs/seeds/jarm-intel.csv          # our CSV (header kind,value,label,source,confidence); entries of another source are kept unless --replace",
				"stackprint db import --format sslbl sslblacklist.csv        # abuse.ch SSLBL certificate SHA1s",
				"stackprint db import --source my-intel jarms.txt            # hash,label[,source] lines",
				"stackprint db import --label \"c2 scan\" --category c2 fingerprints.csv   # goscanner ATSF scan (also jarm.py -o CSV, tlsx -json)",
			},
			run: cmdDBImport,
		},
		{
			name: "db export", summary: "export the DB, or Zeek Intel / Suricata dataset feeds",
			usage: "stackprint db export --format jsonl|csv|zeek-intel|suricata-dataset [-o FILE] [--kind K] [--min-confidence C] [--since D] [flags]",
			examples: []string{
				"stackprint db export --format zeek-intel -o /opt/zeek/share/stackprint.intel",
				"stackprint db export --format suricata-dataset -o /etc/suricata/stackprint-bad.lst --since 168h",
				"stackprint db export --format jsonl -o fingerprints.jsonl   # for another sensor: db import fingerprints.jsonl",
			},
			run: cmdDBExport,
		},
		{
			name: "db stats", summary: "counts by kind, category, source and confidence",
			usage: "stackprint db stats [--json] [flags]",
			examples: []string{
				"stackprint db stats",
				"stackprint db stats --json -c /etc/stackprint/stackprint.yaml",
			},
			run: cmdDBStats,
		},
		{
			name: "db learn", summary: "learn fingerprints by probing a block list and a top list",
			usage: "stackprint db learn --blocklist FILE --toplist FILE [--label L] [--threshold 1.0] [--min-block 2] [--restart] [flags]",
			examples: []string{
				"stackprint db learn --blocklist ipblocklist.csv --toplist tranco.csv --label feodo-c2",
				"stackprint db learn --blocklist c2.txt --toplist top.txt          # ip[:port] or host[:port] lines; scores only",
			},
			run: cmdDBLearn,
		},
		{
			name: "db check", summary: "consistency check (through the daemon when it runs)",
			usage: "stackprint db check [flags]",
			examples: []string{
				"stackprint db check -c /etc/stackprint/stackprint.yaml",
			},
			run: cmdDBCheck,
		},
		{
			name: "db backup", summary: "consistent snapshot into FILE (online through the daemon)",
			usage: "stackprint db backup [flags] FILE",
			examples: []string{
				"stackprint db backup /var/backups/stackprint-$(date +%F).db",
			},
			run: cmdDBBackup,
		},
		{
			name: "db recover", summary: "copy what is readable of a damaged DB into NEWFILE (daemon stopped)",
			usage: "stackprint db recover [flags] NEWFILE",
			examples: []string{
				"stackprint db recover --db /var/lib/stackprint/fingerprints.db /var/lib/stackprint/recovered.db",
			},
			run: cmdDBRecover,
		},
		{
			name: "rules check", summary: "parse and type-check rule files (problems as FILE:LINE:COL)",
			usage: "stackprint rules check [-c CONFIG] [FILE...]",
			examples: []string{
				"stackprint rules check configs/rules/*.yaml",
				"stackprint rules check -c /etc/stackprint/stackprint.yaml   # the rules this config loads",
			},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return rulesCheck(args, stdout, stderr)
			},
		},
		{
			name: "rules list", summary: "the rules the config runs: id, severity, signature id, suppression",
			usage: "stackprint rules list [-c CONFIG]",
			examples: []string{
				"stackprint rules list -c /etc/stackprint/stackprint.yaml",
			},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return rulesList(args, stdout, stderr)
			},
		},
		{
			name: "config check", summary: "validate a config (and its conf.d/*.yaml) and exit",
			usage: "stackprint config check [-c FILE]",
			examples: []string{
				"stackprint config check -c /etc/stackprint/stackprint.yaml",
				"stackprint config check               # the embedded default",
			},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return cmdConfig("check", args, stdout, stderr)
			},
		},
		{
			name: "config show", summary: "print the effective config",
			usage: "stackprint config show [-c FILE]",
			examples: []string{
				"stackprint config show -c /etc/stackprint/stackprint.yaml   # default + file + conf.d/*.yaml",
			},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				return cmdConfig("show", args, stdout, stderr)
			},
		},
		{
			name: "version", summary: "print the version, commit and Go version",
			usage: "stackprint version",
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				if _, err := parseInterleaved(newFlagSet("version", stdout, stderr), args); err != nil {
					return err
				}
				fmt.Fprintln(stdout, versionString())
				return nil
			},
		},
	}
}

func lookupCommand(name string) (command, bool) {
	cmds := commands()
	i := slices.IndexFunc(cmds, func(c command) bool { return c.name == name })
	if i < 0 {
		return command{}, false
	}
	return cmds[i], true
}

func lookupGroup(name string) (group, bool) {
	gs := groups()
	i := slices.IndexFunc(gs, func(g group) bool { return g.name == name })
	if i < 0 {
		return group{}, false
	}
	return gs[i], true
}

func isHelpArg(s string) bool { return s == "help" || s == "-h" || s == "-help" || s == "--help" }

// run is the CLI: it finds the command named by args ("probe …", "db add …") in the
// table and runs it. A command's -h prints its help on stdout and is not an
// error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printCommandList(stderr)
		return flag.ErrHelp
	}
	name, rest := args[0], args[1:]
	switch {
	case name == "--version":
		name = "version"
	case isHelpArg(name):
		if len(rest) == 0 {
			printCommandList(stdout)
			return nil
		}
		return run(ctx, append(rest, "-h"), stdout, stderr) // help CMD = CMD -h
	}
	if g, ok := lookupGroup(name); ok {
		if len(rest) == 0 {
			printGroup(stderr, g)
			return fmt.Errorf("%s: missing subcommand", name)
		}
		if isHelpArg(rest[0]) {
			printGroup(stdout, g)
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
		if _, ok := lookupCommand(name); !ok {
			printGroup(stderr, g)
			return fmt.Errorf("%s: unknown subcommand %q", g.name, strings.TrimPrefix(name, g.name+" "))
		}
	}
	c, ok := lookupCommand(name)
	if !ok {
		printCommandList(stderr)
		return fmt.Errorf("unknown command %q", name)
	}
	err := c.run(ctx, rest, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h was asked for and printed
	}
	return err
}

// printCommandList is `stackprint help`.
func printCommandList(w io.Writer) {
	fmt.Fprint(w, "stackprint — active TLS server fingerprinting for Zeek and Suricata sensors\n\n"+
		"Usage: stackprint COMMAND [flags] [arguments]\n\nCommands:\n")
	cmds := commands()
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, "\nExamples:\n")
	for _, c := range cmds {
		if !strings.Contains(c.name, " ") && len(c.examples) > 0 { // the first of each top-level command
			fmt.Fprintf(w, "  %s\n", c.examples[0])
		}
	}
	fmt.Fprint(w, "\nRun \"stackprint COMMAND -h\" for the usage, flags and examples of a command.\n")
}

// printGroup is `stackprint db -h`: the group's subcommands and their usage.
func printGroup(w io.Writer, g group) {
	fmt.Fprintf(w, "stackprint %s: %s\n\nUsage:\n", g.name, g.summary)
	for _, c := range commands() {
		if strings.HasPrefix(c.name, g.name+" ") {
			fmt.Fprintf(w, "  %s\n      %s\n", c.usage, c.summary)
		}
	}
	if g.note != "" {
		fmt.Fprintf(w, "\n%s\n", g.note)
	}
	fmt.Fprintf(w, "\nRun \"stackprint %s COMMAND -h\" for the flags and examples of a command.\n", g.name)
}

// printCommandHelp is `stackprint CMD -h`: the table's usage, summary and
// examples around the flag set's defaults.
func printCommandHelp(w io.Writer, fs *flag.FlagSet) {
	c, ok := lookupCommand(fs.Name())
	if !ok { // a flag set outside the table is a programming error; still print its flags
		c = command{name: fs.Name(), usage: "stackprint " + fs.Name() + " [flags]"}
	}
	fmt.Fprintf(w, "Usage: %s\n", c.usage)
	if c.summary != "" {
		fmt.Fprintf(w, "\n%s.\n", upperFirst(c.summary))
	}
	// The defaults without the -h flag itself, each shown with its
	// declared default even after a partial parse.
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if _, isHelp := f.Value.(*helpFlag); !isHelp {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	fmt.Fprint(w, "\nFlags:\n")
	shown.SetOutput(w)
	shown.PrintDefaults()
	if len(c.examples) > 0 {
		fmt.Fprint(w, "\nExamples:\n")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// helpFlag is -h/-help: declared so that asking for help prints to the
// command's stdout and succeeds, where the flag package alone would print
// to stderr and return flag.ErrHelp like a parse error.
type helpFlag struct {
	set bool
	out io.Writer
}

func (h *helpFlag) String() string { return "false" }
func (h *helpFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	h.set = h.set || b
	return err
}
func (h *helpFlag) IsBoolFlag() bool { return true }

// newFlagSet is a command's flag set; name is its row in the table.
// Errors and usage after a bad flag go to stderr; -h prints the help to
// stdout (see parseInterleaved).
func newFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { printCommandHelp(fs.Output(), fs) }
	h := &helpFlag{out: stdout}
	fs.Var(h, "h", "print this help")
	fs.Var(h, "help", "print this help")
	return fs
}

// parseInterleaved lets flags follow positional arguments
// ("probe HOST:PORT --json"), which the flag package alone does not. After
// -h it prints the command's help to stdout and returns flag.ErrHelp,
// which the dispatcher turns into success.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if f := fs.Lookup("h"); f != nil {
		if h, ok := f.Value.(*helpFlag); ok && h.set {
			printCommandHelp(h.out, fs)
			return nil, flag.ErrHelp
		}
	}
	return pos, nil
}
