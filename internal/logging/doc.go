// Package logging builds stackprint's slog logger and its rate limit: a
// flood of identical warnings or errors (an unreadable file, a full disk)
// must not bury everything else or fill the journal. The daemon, the demo
// and the CLI log through it.
package logging
