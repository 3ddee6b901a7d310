package cli

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

// Command is one row of the command table.
type Command struct {
	Name     string // "probe", or "db add" for a subcommand
	Summary  string // one line
	Usage    string // the synopsis, starting with the program's name
	Examples []string
	Run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Group is a command with subcommands ("db"); its rows in the table are
// the commands named "db …".
type Group struct {
	Name, Summary, Note string
}

// App is a program's command table.
type App struct {
	Name     string // the program, "stackprint"
	Title    string // one line under which help lists the commands
	Groups   []Group
	Commands []Command // in the order help lists them
}

func (a *App) lookup(name string) (Command, bool) {
	i := slices.IndexFunc(a.Commands, func(c Command) bool { return c.Name == name })
	if i < 0 {
		return Command{}, false
	}
	return a.Commands[i], true
}

func (a *App) group(name string) (Group, bool) {
	i := slices.IndexFunc(a.Groups, func(g Group) bool { return g.Name == name })
	if i < 0 {
		return Group{}, false
	}
	return a.Groups[i], true
}

func isHelpArg(s string) bool { return s == "help" || s == "-h" || s == "-help" || s == "--help" }

// Run finds the command named by args ("probe …", "db add …") in the
// table and runs it. A command's -h prints its help on stdout and is not
// an error; no command at all prints the list on stderr and returns
// flag.ErrHelp (exit 2).
func (a *App) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		a.PrintCommandList(stderr)
		return flag.ErrHelp
	}
	name, rest := args[0], args[1:]
	switch {
	case name == "--version":
		name = "version"
	case isHelpArg(name):
		if len(rest) == 0 {
			a.PrintCommandList(stdout)
			return nil
		}
		return a.Run(ctx, append(rest, "-h"), stdout, stderr) // help CMD = CMD -h
	}
	if g, ok := a.group(name); ok {
		if len(rest) == 0 {
			a.printGroup(stderr, g)
			return fmt.Errorf("%s: missing subcommand", name)
		}
		if isHelpArg(rest[0]) {
			a.printGroup(stdout, g)
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
		if _, ok := a.lookup(name); !ok {
			a.printGroup(stderr, g)
			return fmt.Errorf("%s: unknown subcommand %q", g.Name, strings.TrimPrefix(name, g.Name+" "))
		}
	}
	c, ok := a.lookup(name)
	if !ok {
		a.PrintCommandList(stderr)
		return fmt.Errorf("unknown command %q", name)
	}
	err := c.Run(ctx, rest, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil // -h was asked for and printed
	}
	return err
}

// PrintCommandList is `PROGRAM help`.
func (a *App) PrintCommandList(w io.Writer) {
	fmt.Fprintf(w, "%s — %s\n\nUsage: %s COMMAND [flags] [arguments]\n\nCommands:\n", a.Name, a.Title, a.Name)
	for _, c := range a.Commands {
		fmt.Fprintf(w, "  %-14s %s\n", c.Name, c.Summary)
	}
	fmt.Fprint(w, "\nExamples:\n")
	for _, c := range a.Commands {
		if !strings.Contains(c.Name, " ") && len(c.Examples) > 0 { // the first of each top-level command
			fmt.Fprintf(w, "  %s\n", c.Examples[0])
		}
	}
	fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" for the usage, flags and examples of a command.\n", a.Name)
}

// printGroup is `PROGRAM db -h`: the group's subcommands and their usage.
func (a *App) printGroup(w io.Writer, g Group) {
	fmt.Fprintf(w, "%s %s: %s\n\nUsage:\n", a.Name, g.Name, g.Summary)
	for _, c := range a.Commands {
		if strings.HasPrefix(c.Name, g.Name+" ") {
			fmt.Fprintf(w, "  %s\n      %s\n", c.Usage, c.Summary)
		}
	}
	if g.Note != "" {
		fmt.Fprintf(w, "\n%s\n", g.Note)
	}
	fmt.Fprintf(w, "\nRun \"%s %s COMMAND -h\" for the flags and examples of a command.\n", a.Name, g.Name)
}

// printCommandHelp is `PROGRAM CMD -h`: the table's usage, summary and
// examples around the flag set's defaults.
func (a *App) printCommandHelp(w io.Writer, fs *flag.FlagSet) {
	c, ok := a.lookup(fs.Name())
	if !ok { // a flag set outside the table is a programming error; still print its flags
		c = Command{Name: fs.Name(), Usage: a.Name + " " + fs.Name() + " [flags]"}
	}
	fmt.Fprintf(w, "Usage: %s\n", c.Usage)
	if c.Summary != "" {
		fmt.Fprintf(w, "\n%s.\n", upperFirst(c.Summary))
	}
	fmt.Fprint(w, "\nFlags:\n")
	shown := visibleFlags(fs)
	shown.SetOutput(w)
	shown.PrintDefaults()
	if len(c.Examples) > 0 {
		fmt.Fprint(w, "\nExamples:\n")
		for _, ex := range c.Examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
}

// visibleFlags are fs's flags without -h itself, each with its declared
// default even after a partial parse.
func visibleFlags(fs *flag.FlagSet) *flag.FlagSet {
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) {
		if _, isHelp := f.Value.(*helpFlag); !isHelp {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	return shown
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
	app *App
}

func (h *helpFlag) String() string { return "false" }
func (h *helpFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	h.set = h.set || b
	return err
}
func (h *helpFlag) IsBoolFlag() bool { return true }

// NewFlagSet is a command's flag set; name is its row in the table.
// Errors and usage after a bad flag go to stderr; -h prints the help to
// stdout (see Parse).
func (a *App) NewFlagSet(name string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { a.printCommandHelp(fs.Output(), fs) }
	h := &helpFlag{out: stdout, app: a}
	fs.Var(h, "h", "print this help")
	fs.Var(h, "help", "print this help")
	return fs
}

// Parse lets flags follow positional arguments ("probe HOST:PORT
// --json"), which the flag package alone does not. After -h it prints the
// command's help to stdout and returns flag.ErrHelp, which Run turns into
// success.
func Parse(fs *flag.FlagSet, args []string) ([]string, error) {
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
			if fc, ok := h.out.(*flagCapture); ok {
				fc.fs = fs // completion or the man page asks for the flags
				return nil, flag.ErrHelp
			}
			h.app.printCommandHelp(h.out, fs)
			return nil, flag.ErrHelp
		}
	}
	return pos, nil
}
