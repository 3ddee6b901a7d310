// Package cli runs a program from one table of commands: dispatch
// (COMMAND, GROUP SUBCOMMAND, help), `-h` on every command, the command
// list, and the bash and zsh completion scripts and the man page, all
// derived from the same rows, so they cannot disagree. It is the flag
// package and a few printers rather than a CLI library: commands parse
// their own flags (Parse lets flags follow arguments), and the table is
// all a new command adds.
package cli
