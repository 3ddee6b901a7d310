package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generated runs `stackprint ARGS` in process and returns its stdout.
func generated(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), args, &out, &errb); err != nil || errb.Len() > 0 {
		t.Fatalf("stackprint %s: %v %s", strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// TestCompletionBash sources the generated script in bash and completes
// command names, subcommands and each command's flags as a shell would.
func TestCompletionBash(t *testing.T) {
	script := filepath.Join(t.TempDir(), "stackprint.bash")
	if err := os.WriteFile(script, []byte(generated(t, "completion", "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		var q []string
		for _, w := range words {
			q = append(q, "'"+w+"'")
		}
		out, err := exec.Command("bash", "-c", `source "$0"; COMP_WORDS=(`+strings.Join(q, " ")+`); COMP_CWORD=$((${#COMP_WORDS[@]}-1)); _stackprint; echo "${COMPREPLY[*]}"`, script).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v %s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"stackprint", "pro"}, "probe"},
		{[]string{"stackprint", "c"}, "config completion"},
		{[]string{"stackprint", "db", "im"}, "import"},
		{[]string{"stackprint", "db", "add", "--ki"}, "--kind"},
		{[]string{"stackprint", "db", "export", "--min"}, "--min-confidence"},
		{[]string{"stackprint", "probe", "--st"}, "--starttls"},
		{[]string{"stackprint", "run", "-"}, "-c -h"},
		{[]string{"stackprint", "db", "add", "x"}, ""}, // not a flag: files, from bash itself
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("complete %q = %q, want %q", c.words, got, c.want)
		}
	}
}

// TestCompletionZsh loads the generated script in zsh with the
// completion system's _describe and _files replaced by printers, and
// checks what it offers.
func TestCompletionZsh(t *testing.T) {
	script := filepath.Join(t.TempDir(), "_stackprint")
	if err := os.WriteFile(script, []byte(generated(t, "completion", "zsh")), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("zsh", "-n", script).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v %s", err, out)
	}
	complete := func(prefix string, words ...string) string {
		t.Helper()
		var q []string
		for _, w := range words {
			q = append(q, "'"+w+"'")
		}
		prog := `_describe() { local -a a; a=("${(@P)${@[-1]}}"); print -rl -- "${a[@]}"; }
_files() { print FILES; }
source "$1" >/dev/null
words=(` + strings.Join(q, " ") + `); CURRENT=${#words}; PREFIX='` + prefix + `'
_stackprint`
		out, err := exec.Command("zsh", "-f", "-c", prog, "zsh", script).CombinedOutput()
		if err != nil {
			t.Fatalf("zsh: %v %s", err, out)
		}
		return string(out)
	}
	for _, c := range []struct {
		prefix string
		words  []string
		want   []string
	}{
		{"", []string{"stackprint", ""}, []string{"run:follow the configured logs (the daemon)", "db:manage the fingerprint DB", "help:show help"}},
		{"", []string{"stackprint", "db", ""}, []string{"add:add or replace one fingerprint", "learn:learn fingerprints"}},
		{"--", []string{"stackprint", "db", "add", "--"}, []string{"--kind:fingerprint kind: jarm", "--label:what the fingerprint identifies"}},
		{"", []string{"stackprint", "probe", "host"}, []string{"FILES"}},
	} {
		got := complete(c.prefix, c.words...)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("complete %q: %q missing from\n%s", c.words, w, got)
			}
		}
	}
}

// TestManPage renders the generated man page with groff, warnings on, and
// finds every command's usage and flags in it.
func TestManPage(t *testing.T) {
	page := generated(t, "man")
	cmd := exec.Command("groff", "-man", "-Tutf8", "-ww")
	cmd.Stdin = strings.NewReader(page)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || errb.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, errb.String())
	}
	// Strip the overstrike bold and underline.
	var plain strings.Builder
	rs := []rune(out.String())
	for i := 0; i < len(rs); i++ {
		if i+1 < len(rs) && rs[i+1] == '\b' {
			i++
			continue
		}
		plain.WriteRune(rs[i])
	}
	text := strings.Join(strings.Fields(plain.String()), " ")
	for _, c := range commands() {
		if !strings.Contains(text, strings.Join(strings.Fields(c.usage), " ")) {
			t.Errorf("man page lacks the usage %q", c.usage)
		}
	}
	for _, want := range []string{"--min-confidence string", "--blocklist string", "-c string", "db.lock_timeout", "kill -HUP $(pidof stackprint)"} {
		if !strings.Contains(text, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
}
