package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update", false, "rewrite the README's CLI section from the command table")

const (
	readmeBegin = "<!-- commands:begin (generated from cmd/stackprint/commands.go: go test ./cmd/stackprint -run TestREADMECommands -update) -->\n"
	readmeEnd   = "<!-- commands:end -->\n"
)

// readmeCommands is the README's CLI section as the command table gives it.
func readmeCommands() string {
	var b strings.Builder
	b.WriteString(readmeBegin)
	b.WriteString("```sh\n")
	for _, c := range commands() {
		b.WriteString(c.usage + "\n    # " + c.summary + "\n")
	}
	b.WriteString("```\n\nExamples:\n\n```sh\n")
	for _, c := range commands() {
		for _, ex := range c.examples {
			b.WriteString(ex + "\n")
		}
	}
	b.WriteString("```\n")
	b.WriteString(readmeEnd)
	return b.String()
}

// The README's CLI section is generated from the table; when either
// drifts, this fails until -update rewrites the section.
func TestREADMECommands(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	i, j := strings.Index(text, readmeBegin), strings.Index(text, readmeEnd)
	if i < 0 || j < i {
		t.Fatalf("%s: no %q … %q section", path, strings.TrimSpace(readmeBegin), strings.TrimSpace(readmeEnd))
	}
	got, want := text[i:j+len(readmeEnd)], readmeCommands()
	if got == want {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(text[:i]+want+text[j+len(readmeEnd):]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the CLI section of %s", path)
		return
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(want, "\n")
	for k := range max(len(gl), len(wl)) {
		g, w := "", ""
		if k < len(gl) {
			g = gl[k]
		}
		if k < len(wl) {
			w = wl[k]
		}
		if g != w {
			t.Fatalf("%s: CLI section differs from the command table at its line %d:\nREADME: %q\ntable:  %q\nrun: go test ./cmd/stackprint -run TestREADMECommands -update", path, k+1, g, w)
		}
	}
}

// Every command of the table answers -h on stdout with its table usage,
// its flags and its examples, and succeeds; so do help CMD and the groups.
func TestHelpFromTable(t *testing.T) {
	ctx := context.Background()
	call := func(args ...string) (string, string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, args, &out, &errb)
		return out.String(), errb.String(), err
	}
	for _, c := range commands() {
		args := append(strings.Fields(c.name), "-h")
		for _, form := range [][]string{args, append([]string{"help"}, args[:len(args)-1]...), append(args[:len(args)-1:len(args)-1], "--help")} {
			out, errOut, err := call(form...)
			if err != nil || errOut != "" {
				t.Errorf("stackprint %s: err %v, stderr %q", strings.Join(form, " "), err, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: "+c.usage+"\n") {
				t.Errorf("stackprint %s: help does not start with the table's usage line:\n%s", strings.Join(form, " "), out)
			}
			if !strings.Contains(out, "\nFlags:\n") || strings.Contains(out, "-help") {
				t.Errorf("stackprint %s: flags missing, or -h listed among them:\n%s", strings.Join(form, " "), out)
			}
			for _, ex := range c.examples {
				if !strings.Contains(out, "  "+ex+"\n") {
					t.Errorf("stackprint %s: example %q missing:\n%s", strings.Join(form, " "), ex, out)
				}
			}
		}
	}

	out, _, err := call("help")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range commands() {
		if !strings.Contains(out, "\n  "+c.name+" ") || !strings.Contains(out, c.summary) {
			t.Errorf("stackprint help does not list %q", c.name)
		}
	}
	if _, errOut, err := call(); err != flag.ErrHelp || !strings.Contains(errOut, "Commands:") {
		t.Errorf("stackprint with no command: err %v, want the list on stderr and flag.ErrHelp (exit 2)", err)
	}

	for _, g := range groups() {
		out, _, err := call(g.name, "-h")
		if err != nil {
			t.Errorf("stackprint %s -h: %v", g.name, err)
		}
		n := 0
		for _, c := range commands() {
			if strings.HasPrefix(c.name, g.name+" ") {
				n++
				if !strings.Contains(out, "  "+c.usage+"\n") {
					t.Errorf("stackprint %s -h lacks %q", g.name, c.usage)
				}
			}
		}
		if n == 0 {
			t.Errorf("group %s has no command in the table", g.name)
		}
		if _, errOut, err := call(g.name); err == nil || !strings.Contains(errOut, "Usage:") {
			t.Errorf("stackprint %s alone: err %v, stderr %q", g.name, err, errOut)
		}
		if _, _, err := call(g.name, "nosuch"); err == nil || !strings.Contains(err.Error(), `unknown subcommand "nosuch"`) {
			t.Errorf("stackprint %s nosuch: %v", g.name, err)
		}
	}

	// A bad flag is still an error, with the usage on stderr.
	_, errOut, err := call("db", "add", "--nosuch")
	if err == nil || !strings.Contains(errOut, "flag provided but not defined: -nosuch") || !strings.Contains(errOut, "Usage: stackprint db add") {
		t.Errorf("db add --nosuch: err %v, stderr %q", err, errOut)
	}
	if _, _, err := call("nosuch"); err == nil || !strings.Contains(err.Error(), `unknown command "nosuch"`) {
		t.Errorf("stackprint nosuch: %v", err)
	}
}
