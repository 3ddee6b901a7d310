package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/stackprint/stackprint/daemon"
	"github.com/stackprint/stackprint/internal/cli"
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
		{"watch", "watch own servers for drift, reachability and certificate expiry", "Common flags: -c FILE (config naming db.path and db.admin_socket) or --db PATH [--socket PATH].\n" +
			"The watch list lives in the DB; while `stackprint run` owns it, these commands go through its\n" +
			"admin socket and the daemon re-probes at once. Watching a server allow-lists it in scope\n" +
			"(scope.deny still wins): the daemon probes it on its schedule whatever scope.allow and scope.ports say."},
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
			name: "scan", summary: "backfill: judge the connections of old logs (through the running daemon if one runs); --no-probe: parse, scope, dedup only",
			usage: scanSynopsis,
			examples: []string{
				"stackprint scan ssl.log.2.gz ssl.log.1   # judge old logs, alerts marked backfill; run again to resume",
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
			name: "db compact", summary: "rewrite the DB without its free pages (daemon stopped)",
			usage: "stackprint db compact [flags]",
			examples: []string{
				"stackprint db compact -c /etc/stackprint/stackprint.yaml    # after lowering db.observations_max",
			},
			run: cmdDBCompact,
		},
		{
			name: "watch add", summary: "watch a server: re-probed on its schedule, drift and reachability alerts",
			usage: "stackprint watch add [--sni NAME] [--every 1h] [--label L] [--starttls PROTO] [flags] HOST:PORT",
			examples: []string{
				"stackprint watch add --label web-prod --every 30m 192.0.2.10:443",
				"stackprint watch add --starttls smtp --label mx 192.0.2.25:2525   # SMTP STARTTLS first (by default on 21 25 110 143 389 587 5222 5269 5432)",
				"stackprint watch add www.example.org:443    # resolved once; SNI = www.example.org",
			},
			run: cmdWatchAdd,
		},
		{
			name: "watch list", summary: "the watched servers: status, last probe, baseline JARM",
			usage: "stackprint watch list [--json] [flags]",
			examples: []string{
				"stackprint watch list",
				"stackprint watch list --json    # baselines and state, one object per line",
			},
			run: cmdWatchList,
		},
		{
			name: "watch rm", summary: "stop watching a server",
			usage: "stackprint watch rm [--sni NAME] [flags] TARGET",
			examples: []string{
				"stackprint watch rm 192.0.2.10:443",
				"stackprint watch rm 192.0.2.10:443/www.example.org",
			},
			run: cmdWatchRemove,
		},
		{
			name: "watch accept", summary: "take a server's current fingerprints as its new baseline",
			usage: "stackprint watch accept [--sni NAME] [flags] TARGET",
			examples: []string{
				"stackprint watch accept 192.0.2.10:443   # after an intended upgrade raised watch_drift",
			},
			run: cmdWatchAccept,
		},
		{
			name: "watch import", summary: "add servers from a file (CSV target,sni,every,label,starttls; all or nothing)",
			usage: "stackprint watch import [--replace] [flags] FILE",
			examples: []string{
				"stackprint watch import own-servers.csv   # lines: 192.0.2.10:443,www.example.org,30m,web-prod  or  192.0.2.25:2525,mx.example.org,,mx,smtp",
			},
			run: cmdWatchImport,
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
			name: "completion", summary: "print the bash or zsh completion script",
			usage: "stackprint completion bash|zsh",
			examples: []string{
				"stackprint completion bash > /etc/bash_completion.d/stackprint",
				"stackprint completion zsh > \"${fpath[1]}/_stackprint\"",
			},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				pos, err := parseInterleaved(newFlagSet("completion", stdout, stderr), args)
				if err != nil {
					return err
				}
				if len(pos) != 1 {
					return fmt.Errorf("completion: want the shell, bash or zsh")
				}
				return app().Completion(stdout, pos[0])
			},
		},
		{
			name: "man", summary: "print the man page (roff), generated from this table",
			usage:    "stackprint man",
			examples: []string{"stackprint man > /usr/share/man/man1/stackprint.1 && man stackprint"},
			run: func(_ context.Context, args []string, stdout, stderr io.Writer) error {
				if _, err := parseInterleaved(newFlagSet("man", stdout, stderr), args); err != nil {
					return err
				}
				v, _, _ := daemon.BuildInfo()
				app().Man(stdout, v)
				return nil
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

// app is the CLI the table describes: dispatch, help, completion and the
// man page all come from it.
func app() *cli.App {
	a := &cli.App{Name: "stackprint", Title: "active TLS server fingerprinting for Zeek and Suricata sensors"}
	for _, g := range groups() {
		a.Groups = append(a.Groups, cli.Group{Name: g.name, Summary: g.summary, Note: g.note})
	}
	for _, c := range commands() {
		a.Commands = append(a.Commands, cli.Command{Name: c.name, Summary: c.summary, Usage: c.usage, Examples: c.examples, Run: c.run})
	}
	return a
}

// run is the CLI: the command args name, run from the table.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return app().Run(ctx, args, stdout, stderr)
}

// newFlagSet is a command's flag set; name is its row in the table.
func newFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	return app().NewFlagSet(name, stdout, stderr)
}

// parseInterleaved parses flags that may follow positional arguments;
// after -h it prints the help and returns flag.ErrHelp.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) { return cli.Parse(fs, args) }
